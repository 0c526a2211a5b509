"""The grid of a point-cloud raster and the per-cell reductions, accumulated chunk by chunk.

Cell (row i, column j) covers ``[minx + j*res, minx + (j+1)*res) x (maxy - (i+1)*res, maxy - i*res]``;
``width = ceil((maxx - minx) / res)``, ``height = ceil((maxy - miny) / res)`` (at least 1). Points inside the
bounds, edges included, are gridded: those on the right edge (``x == maxx``) land in the last column and those on
the bottom edge (``y == miny``) in the last row, even when the edge is a cell boundary.

Memory is per cell, not per point: min/max keep one float64 a cell, mean a float64 sum and a uint32 count, idw
two float64 sums plus a count and a sum for points exactly at a cell centre; chunks are added with
``np.bincount`` when the grid is small next to the chunk and with the ``ufunc.at`` methods otherwise (numpy 2's
fast path; a bincount would allocate the whole grid for every chunk).

idw follows PDAL's ``writers.gdal``: a cell's value is ``sum(z / d^p) / sum(1 / d^p)`` over the points whose
distance ``d`` to the cell centre is at most ``radius``; a point exactly at the centre gives its value (the mean of
them when there are several); cells no point reaches are nodata. Each point visits only the few cells whose
centres can be within ``radius`` of it, one vectorized pass per cell offset."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from georeg.core.errors import PayloadTooLarge
from georeg.core.pointclouds.schemas import OutputType

BINCOUNT_RATIO = 4


@dataclass(frozen=True)
class GridSpec:
    minx: float
    miny: float
    maxx: float
    maxy: float
    resolution: float
    width: int
    height: int

    @property
    def cells(self) -> int:
        return self.width * self.height

    @property
    def transform(self) -> tuple[float, float, float, float, float, float]:
        """The GDAL-order affine coefficients (a, b, c, d, e, f) of the top-left anchored grid."""
        return (self.resolution, 0.0, self.minx, 0.0, -self.resolution, self.maxy)


def grid_spec(bounds: tuple[float, float, float, float] | list[float], resolution: float, *,
              max_cells: int) -> GridSpec:
    """The grid over ``bounds`` at ``resolution``; 413 ``grid_too_large`` past ``max_cells``."""
    minx, miny, maxx, maxy = (float(v) for v in bounds)
    columns, rows = (maxx - minx) / resolution, (maxy - miny) / resolution
    if not (math.isfinite(columns) and math.isfinite(rows)) or max(1.0, columns) * max(1.0, rows) > 2 * max_cells:
        raise PayloadTooLarge(f"the grid would be about {columns:.4g} x {rows:.4g} cells, over the limit of "
                              f"{max_cells} (GEOREG_POINTCLOUD_MAX_CELLS): use a coarser resolution or smaller bounds",
                              code="grid_too_large", details={"max_cells": max_cells})
    width, height = max(1, math.ceil(columns)), max(1, math.ceil(rows))
    if width * height > max_cells:
        raise PayloadTooLarge(f"the grid would be {width} x {height} = {width * height} cells, over the limit of "
                              f"{max_cells} (GEOREG_POINTCLOUD_MAX_CELLS): use a coarser resolution or smaller bounds",
                              code="grid_too_large",
                              details={"width": width, "height": height, "max_cells": max_cells})
    return GridSpec(minx, miny, maxx, maxy, float(resolution), width, height)


def _add(target: np.ndarray, index: np.ndarray, values: np.ndarray | float) -> None:
    """``target[index] += values`` with repeated indices summed."""
    if index.size == 0:
        return
    if target.size <= BINCOUNT_RATIO * index.size:
        weights = None if np.isscalar(values) and values == 1 else np.broadcast_to(values, index.shape)
        np.add(target, np.bincount(index, weights, minlength=target.size), out=target, casting="unsafe")
    else:
        np.add.at(target, index, values)


class Accumulator:
    """Per-cell reductions of the points added so far."""

    def __init__(self, spec: GridSpec, output_type: OutputType, *, radius: float | None = None,
                 power: float = 1.0) -> None:
        self.spec, self.output_type, self.radius, self.power = spec, output_type, radius, power
        self.points = 0
        self.outside = 0
        cells = spec.cells
        if output_type == "min":
            self.value = np.full(cells, np.inf)
        elif output_type == "max":
            self.value = np.full(cells, -np.inf)
        elif output_type in ("mean", "count"):
            self.count = np.zeros(cells, np.uint32)
            if output_type == "mean":
                self.sum = np.zeros(cells)
        else:
            self.weights, self.weighted = np.zeros(cells), np.zeros(cells)
            self.exact_count, self.exact_sum = np.zeros(cells, np.uint32), np.zeros(cells)

    def add(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> None:
        spec = self.spec
        keep = (np.isfinite(x) & np.isfinite(y) & np.isfinite(z) & (x >= spec.minx) & (x <= spec.maxx)
                & (y >= spec.miny) & (y <= spec.maxy))
        inside = int(np.count_nonzero(keep))
        self.points += inside
        self.outside += x.size - inside
        if not inside:
            return
        if inside < x.size:
            x, y, z = x[keep], y[keep], z[keep]
        if self.output_type == "idw":
            self._add_idw(x, y, z)
            return
        col = np.floor((x - spec.minx) / spec.resolution).astype(np.int64)
        row = np.floor((spec.maxy - y) / spec.resolution).astype(np.int64)
        np.clip(col, 0, spec.width - 1, out=col)
        np.clip(row, 0, spec.height - 1, out=row)
        index = row * spec.width + col
        if self.output_type == "min":
            np.minimum.at(self.value, index, z)
        elif self.output_type == "max":
            np.maximum.at(self.value, index, z)
        else:
            _add(self.count, index, 1)
            if self.output_type == "mean":
                _add(self.sum, index, z)

    def _add_idw(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> None:
        spec, res, radius = self.spec, self.spec.resolution, self.radius
        col0 = np.floor((x - spec.minx) / res).astype(np.int64)
        row0 = np.floor((spec.maxy - y) / res).astype(np.int64)
        reach = math.ceil(radius / res) + 1
        for di in range(-reach, reach + 1):
            for dj in range(-reach, reach + 1):
                # the nearest a point of cell (0, 0) can be to the centre of cell (di, dj)
                if math.hypot(max(0.0, abs(dj) - 0.5), max(0.0, abs(di) - 0.5)) * res > radius:
                    continue
                row, col = row0 + di, col0 + dj
                ok = (row >= 0) & (row < spec.height) & (col >= 0) & (col < spec.width)
                distance = np.hypot(x - (spec.minx + (col + 0.5) * res), y - (spec.maxy - (row + 0.5) * res))
                ok &= distance <= radius
                if not ok.any():
                    continue
                index = row * spec.width + col
                exact = ok & (distance == 0)
                if exact.any():
                    _add(self.exact_count, index[exact], 1)
                    _add(self.exact_sum, index[exact], z[exact])
                    ok &= ~exact
                weight = np.maximum(distance[ok], res * 1e-9) ** -self.power
                _add(self.weights, index[ok], weight)
                _add(self.weighted, index[ok], weight * z[ok])

    def result(self, nodata: float | None) -> tuple[np.ndarray, int]:
        """The (height, width) raster (float32, or uint32 counts) and how many cells have a value."""
        shape = (self.spec.height, self.spec.width)
        if self.output_type == "count":
            return self.count.reshape(shape), int(np.count_nonzero(self.count))
        if self.output_type in ("min", "max"):
            has = np.isfinite(self.value)
            values = self.value
        elif self.output_type == "mean":
            has = self.count > 0
            values = np.divide(self.sum, self.count, out=np.zeros_like(self.sum), where=has)
        else:
            exact = self.exact_count > 0
            has = exact | (self.weights > 0)
            values = np.divide(self.weighted, self.weights, out=np.zeros_like(self.weighted), where=self.weights > 0)
            values[exact] = self.exact_sum[exact] / self.exact_count[exact]
        output = np.where(has, values, nodata).astype(np.float32)
        return output.reshape(shape), int(np.count_nonzero(has))
