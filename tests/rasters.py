"""Real raster files for tests, written with rasterio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin


def write_geotiff(
    path: Path,
    *,
    width: int = 64,
    height: int = 48,
    count: int = 1,
    dtype: str = "uint16",
    crs: str | None = "EPSG:4326",
    origin: tuple[float, float] = (10.0, 61.0),
    pixel: float = 0.01,
    nodata: float | None = 0,
    tiled: bool = False,
) -> Path:
    """A GeoTIFF with a deterministic gradient; ``crs=None`` writes one without georeferencing."""
    data = (np.arange(width * height * count, dtype="float64").reshape(count, height, width) % 250 + 1).astype(dtype)
    profile = {
        "driver": "GTiff", "width": width, "height": height, "count": count, "dtype": dtype, "nodata": nodata,
    }
    if crs is not None:
        profile.update(crs=crs, transform=from_origin(origin[0], origin[1], pixel, pixel))
    if tiled:
        profile.update(tiled=True, blockxsize=16, blockysize=16)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path
