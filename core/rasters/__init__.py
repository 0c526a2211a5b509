"""The raster registry (Datasets API): reading rasters, registration and search, thumbnails, tiles,
SLD styles, WMS/WFS and the platform profiles."""
