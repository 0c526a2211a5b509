"""NetCDF and OPeNDAP sources: opening, CF georeferencing and conversion to GeoTIFF."""
