"""Real raster files for tests, written with rasterio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.control import GroundControlPoint
from rasterio.transform import from_origin
from rasterio.warp import transform as warp_transform


def gradient(count: int, height: int, width: int, dtype: str) -> np.ndarray:
    """The deterministic pixel values every fixture raster holds unless told otherwise."""
    return (np.arange(width * height * count, dtype="float64").reshape(count, height, width) % 250 + 1).astype(dtype)


def gcp_grid(transform, crs: str, gcp_crs: str, *, width: int, height: int, steps: int = 6) -> list[GroundControlPoint]:
    """Ground control points on a ``steps`` x ``steps`` grid over the raster, placed by ``transform`` in ``crs`` and
    expressed in ``gcp_crs`` (like Sentinel-1 GRD GCPs in lon/lat)."""
    rows, cols = np.meshgrid(np.linspace(0, height, steps), np.linspace(0, width, steps), indexing="ij")
    xs, ys = transform @ (cols.ravel(), rows.ravel())
    if gcp_crs != crs:
        xs, ys = warp_transform(crs, gcp_crs, list(xs), list(ys))
    return [GroundControlPoint(row=float(r), col=float(c), x=float(x), y=float(y))
            for r, c, x, y in zip(rows.ravel(), cols.ravel(), xs, ys, strict=True)]


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
    data: np.ndarray | None = None,
    gcp_crs: str | None = None,
) -> Path:
    """A GeoTIFF with a deterministic gradient (or ``data``); ``crs=None`` writes one without georeferencing and
    ``gcp_crs`` one georeferenced only by GCPs in that CRS (no geotransform), placed as ``crs``/``origin`` say."""
    data = gradient(count, height, width, dtype) if data is None else data.astype(dtype)
    count, height, width = data.shape
    profile = {
        "driver": "GTiff", "width": width, "height": height, "count": count, "dtype": dtype, "nodata": nodata,
    }
    if crs is not None:
        transform = from_origin(origin[0], origin[1], pixel, pixel)
        if gcp_crs is None:
            profile.update(crs=crs, transform=transform)
        else:
            profile.update(gcps=gcp_grid(transform, crs, gcp_crs, width=width, height=height), crs=gcp_crs)
    if tiled:
        profile.update(tiled=True, blockxsize=16, blockysize=16)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def write_int16_dem(path: Path, *, width: int = 120, height: int = 80, nodata: int = -32768) -> Path:
    """A 1-band int16 elevation model (-400..2 000 m, below sea level on the west side) with a nodata block in the
    north-east corner, in UTM 33N."""
    cols = np.linspace(-400, 2000, width)
    rows = np.linspace(0, 300, height)[:, None]
    dem = np.round(cols[None, :] + rows).astype("int16")
    dem[: height // 4, -width // 4:] = nodata
    return write_geotiff(path, dtype="int16", nodata=nodata, data=dem[None], crs="EPSG:32633",
                         origin=(500000, 7000000), pixel=25)
