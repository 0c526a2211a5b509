"""STAC 1.1.0: a Catalog that is also a STAC API landing page, one collection per Registry dataset and one of the
Datasets API's rasters, items per georeferenced entry or raster, and item search (bbox, datetime, ids, collections,
intersects) with ``next`` links. ``documents`` builds the JSON; ``items`` finds what a caller may see."""
