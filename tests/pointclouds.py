"""Point clouds for the gridding tests (LAS/LAZ written with laspy, XYZ text, NetCDF x/y/z) and the expected
rasters, computed by brute force cell by cell (no code shared with ``georeg.core.pointclouds``)."""

from __future__ import annotations

import math
from pathlib import Path

import laspy
import numpy as np

SCALE = 1 / 1024  # coordinates on a binary grid: exact in LAS integers, in text and in float64 arithmetic
BOUNDS = (100.0, 200.0, 120.0, 210.0)
CRS = "EPSG:25833"


def make_points(count: int = 3000, seed: int = 13) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random points over :data:`BOUNDS`, plus points on interior cell edges (resolution 1), on every outer edge,
    at the corners and exactly at cell centres; z in [0, 100), all multiples of :data:`SCALE`."""
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = BOUNDS
    x = rng.uniform(minx, maxx, count)
    y = rng.uniform(miny, maxy, count)
    special = [  # on interior cell edges, on every outer edge, at the corners, exactly at cell centres
        (103.0, 204.0), (107.0, 209.0), (113.0, 203.0), (110.0, 205.0), (minx, 206.0), (maxx, 201.0), (maxx, 207.5),
        (104.25, miny), (111.0, miny), (115.5, maxy), (minx, miny), (maxx, miny), (minx, maxy), (maxx, maxy),
        (102.5, 205.5), (110.5, 200.5), (119.5, 209.5), (110.5, 200.5),
    ]
    x = np.concatenate([x, [px for px, _ in special]])
    y = np.concatenate([y, [py for _, py in special]])
    z = rng.uniform(0, 100, x.size)
    quantize = lambda values: np.round(values / SCALE) * SCALE  # noqa: E731
    return quantize(x), quantize(y), quantize(z)


def write_las(path: Path, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> Path:
    """A LAS 1.2 (or LAZ, by the suffix) file of the points, scale :data:`SCALE`."""
    header = laspy.LasHeader(point_format=3, version="1.2")
    header.scales = np.array([SCALE] * 3)
    header.offsets = np.array([0.0, 0.0, 0.0])
    data = laspy.LasData(header)
    data.x, data.y, data.z = x, y, z
    path.parent.mkdir(parents=True, exist_ok=True)
    data.write(str(path))
    return path


def write_xyz(path: Path, x: np.ndarray, y: np.ndarray, z: np.ndarray, *, separator: str = ",",
              header: str | None = "x,y,z") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [header] if header else []
    lines += [separator.join(repr(float(v)) for v in row) for row in zip(x, y, z, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_netcdf(path: Path, x: np.ndarray, y: np.ndarray, z: np.ndarray, *,
                 names: tuple[str, str, str] = ("x", "y", "z")) -> Path:
    import netCDF4

    path.parent.mkdir(parents=True, exist_ok=True)
    with netCDF4.Dataset(path, "w") as dataset:
        dataset.createDimension("point", x.size)
        for name, values in zip(names, (x, y, z), strict=True):
            variable = dataset.createVariable(name, "f8", ("point",))
            variable[:] = values
    return path


def expected(x: np.ndarray, y: np.ndarray, z: np.ndarray, *, bounds: tuple[float, float, float, float],
             resolution: float, output_type: str, nodata: float = -9999.0, radius: float | None = None,
             power: float = 1.0) -> np.ndarray:
    """The raster the config should give, cell by cell: cell (i, j) holds the points with
    ``minx + j*res <= x < minx + (j+1)*res`` and ``maxy - (i+1)*res < y <= maxy - i*res``, the last column also
    ``x == maxx`` and the last row ``y == miny``; idw over the points within ``radius`` of the cell centre."""
    minx, miny, maxx, maxy = bounds
    width = max(1, math.ceil((maxx - minx) / resolution))
    height = max(1, math.ceil((maxy - miny) / resolution))
    inside = (x >= minx) & (x <= maxx) & (y >= miny) & (y <= maxy)
    x, y, z = x[inside], y[inside], z[inside]
    radius = resolution * math.sqrt(2) if radius is None else radius
    out = np.zeros((height, width), dtype=np.float64)
    for i in range(height):
        for j in range(width):
            left, right = minx + j * resolution, minx + (j + 1) * resolution
            top, bottom = maxy - i * resolution, maxy - (i + 1) * resolution
            in_x = (x >= left) & ((x < right) | ((j == width - 1) & (x == maxx)))
            in_y = (y <= top) & ((y > bottom) | ((i == height - 1) & (y == miny)))
            values = z[in_x & in_y]
            if output_type == "count":
                out[i, j] = values.size
            elif output_type == "idw":
                cx, cy = minx + (j + 0.5) * resolution, maxy - (i + 0.5) * resolution
                distance = np.array([math.hypot(px - cx, py - cy) for px, py in zip(x, y, strict=True)])
                near = distance <= radius
                if (distance == 0).any():
                    out[i, j] = z[distance == 0].mean()
                elif near.any():
                    weights = 1 / distance[near] ** power
                    out[i, j] = (weights * z[near]).sum() / weights.sum()
                else:
                    out[i, j] = nodata
            elif values.size == 0:
                out[i, j] = nodata
            else:
                out[i, j] = {"min": np.min, "max": np.max, "mean": np.mean}[output_type](values)
    return out
