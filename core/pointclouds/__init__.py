"""Rasters from point clouds: LAS/LAZ files, XYZ text files and NetCDF x/y/z variables gridded (min, max, mean,
idw, count) into registered Cloud-Optimized GeoTIFFs.

``schemas`` (the grid config and its answer), ``readers`` (points in chunks, whatever the source), ``grid``
(the cell convention and the per-cell reductions), ``service`` (config -> registered COG)."""
