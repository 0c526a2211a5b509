"""Values of NetCDF variables at lon/lat points: the Datasets API's ``query-point`` and ``query-points``.

A batch is answered with one index computation for all its points and a few window reads: the cells the
points need are read as one window when it is small, else one window per 256x256 tile they touch (never one
OPeNDAP request per point). Grids:

- 1-D ``lon``/``lat`` axes, ascending or descending, longitudes in any 360° convention (a query at -170 finds
  190 on a 0..360 grid: the query is wrapped to the grid's own longitude range);
- 1-D projected ``x``/``y`` axes with a CF ``grid_mapping`` (the point is projected with pyproj);
- swaths of 2-D ``lat``/``lon`` (nearest on the sphere: a KD-tree on unit vectors, on a subsampled grid refined
  at full resolution around each hit when the swath is large; fractional indices from the local Jacobian).

A point is inside a grid when it falls within the outer cell edges; outside, its values are null. ``nearest``
takes the cell whose centre is nearest in index space (= the nearest coordinate on 1-D axes), ``bilinear``
weighs the four surrounding cell centres, renormalising over those that hold a value (null when none does).
A time dimension is reduced to the step nearest to ``time`` (default the first); one more leading dimension
(depth levels, spectral bands) gives a list of values per variable.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import numpy as np
from pydantic import BaseModel, Field
from sqlmodel import Session

from georeg.core.config import Settings
from georeg.core.errors import GeoregError, InvalidInput, NotFound, PayloadTooLarge, UpstreamError
from georeg.core.fetch import check_host, host_allowed
from georeg.core.models import Raster
from georeg.core.netcdf.georef import (
    GridAxes,
    attr,
    coordinate_values,
    filled,
    grid_axes,
    is_time,
    time_label,
    unit_scale,
)
from georeg.core.netcdf.source import NetcdfSource, list_variables, open_netcdf, url_kind
from georeg.core.netcdf.to_geotiff import MAX_VARIABLES, clean_variables, layout, select_variables
from georeg.core.rasters.profiles import profile_for
from georeg.core.rasters.service import get_raster
from georeg.core.registry.objects import NETCDF_SUFFIXES, resolve_mounted

Method = Literal["nearest", "bilinear"]
EARTH_RADIUS_M = 6_371_008.8
TILE = 256
MAX_WINDOW_CELLS = 1_000_000
MAX_SWATH_CELLS = 4_000_000
MAX_POINTS_SCHEMA = 1_000_000


# --- requests and answers --------------------------------------------------------------------------------------


class QueryPoint(BaseModel):
    lon: float = Field(ge=-360, le=360, allow_inf_nan=False, description="longitude (degrees east, WGS 84)")
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False, description="latitude (degrees north, WGS 84)")


class QueryOptions(BaseModel):
    variables: list[str] | None = Field(
        default=None, max_length=MAX_VARIABLES,
        description="variables to read (default: the dataset's own variable or its platform profile's point-query "
                    "variables, else every georeferenced data variable)")
    time: datetime | None = Field(default=None, description="the time step nearest to this (default: the first)")
    method: Method = Field(default="nearest", description="nearest cell, or bilinear between the four around")


class PointQuery(QueryOptions):
    lon: float = Field(ge=-360, le=360, allow_inf_nan=False, description="longitude (degrees east, WGS 84)")
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False, description="latitude (degrees north, WGS 84)")

    @property
    def points(self) -> list[QueryPoint]:
        return [QueryPoint(lon=self.lon, lat=self.lat)]


class PointsQuery(QueryOptions):
    points: list[QueryPoint] = Field(min_length=1, max_length=MAX_POINTS_SCHEMA,
                                     description="the points, answered in this order; at most "
                                                 "GEOREG_QUERY_MAX_POINTS (default 10 000), more is 413")


SOURCE_URL = Field(min_length=1, max_length=2048,
                   description="an OPeNDAP or NetCDF URL on an allowed host (GEOREG_DOWNLOAD_HOSTS), or a NetCDF "
                               "path under GEOREG_MOUNT_ROOTS")


class UrlPointQuery(PointQuery):
    url: str = SOURCE_URL


class UrlPointsQuery(PointsQuery):
    url: str = SOURCE_URL


class GridCell(BaseModel):
    """The grid cell nearest to the point: its indices (by dimension name), centre and distance."""

    indices: dict[str, int]
    lon: float
    lat: float
    distance_m: float


class VariableValue(BaseModel):
    value: float | list[float | None] | None = Field(
        description="the value (a list along a band or level dimension); null for fill/missing or outside the grid")
    units: str | None = None
    long_name: str | None = None
    grid: GridCell | None = Field(default=None, description="only for a variable on another grid than the point's")


class PointValues(BaseModel):
    lon: float
    lat: float
    values: dict[str, VariableValue]
    grid: GridCell | None = Field(description="the cell of the first variable's grid; null outside it")
    time: str | None = Field(description="the time step read (ISO-8601), null without a time dimension")


class PointsValues(BaseModel):
    count: int
    points: list[PointValues]
    source: str
    method: Method


# --- locating points on a grid ---------------------------------------------------------------------------------


@dataclass
class Located:
    """Where points fall on a grid: fractional (row, column) indices, inside or not, and the nearest cell."""

    dims: tuple[str, str]
    shape: tuple[int, int]
    rows: np.ndarray
    cols: np.ndarray
    inside: np.ndarray
    near_rows: np.ndarray
    near_cols: np.ndarray
    cell_lon: np.ndarray
    cell_lat: np.ndarray
    distance_m: np.ndarray

    def cell(self, k: int) -> GridCell | None:
        if not self.inside[k]:
            return None
        return GridCell(indices={self.dims[0]: int(self.near_rows[k]), self.dims[1]: int(self.near_cols[k])},
                        lon=float(self.cell_lon[k]), lat=float(self.cell_lat[k]),
                        distance_m=round(float(self.distance_m[k]), 3))


def great_circle_m(lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray, lat2: np.ndarray) -> np.ndarray:
    """Haversine distance in metres."""
    lon1, lat1, lon2, lat2 = (np.radians(np.asarray(value, dtype="f8")) for value in (lon1, lat1, lon2, lat2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def axis_edges(values: np.ndarray, bounds: np.ndarray | None) -> tuple[float, float]:
    """The outer edges (low, high) of a monotonic 1-D axis of cell centres."""
    if bounds is not None and bounds.shape == (len(values), 2) and np.all(np.isfinite(bounds)):
        return float(bounds.min()), float(bounds.max())
    ordered = np.sort(values)
    if len(ordered) == 1:
        return -math.inf, math.inf
    return (float(ordered[0] - (ordered[1] - ordered[0]) / 2),
            float(ordered[-1] + (ordered[-1] - ordered[-2]) / 2))


def axis_fraction(values: np.ndarray, edges: tuple[float, float], query: np.ndarray,
                  *, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(fractional array index, inside) of each query value on a monotonic axis of cell centres."""
    if not np.all(np.isfinite(values)):
        raise InvalidInput(f"coordinate {name!r} has missing values", code="invalid_coordinates")
    inside = (query >= edges[0]) & (query <= edges[1])
    if len(values) == 1:
        return np.zeros_like(query), inside
    steps = np.diff(values)
    if not (np.all(steps > 0) or np.all(steps < 0)):
        raise InvalidInput(f"coordinate {name!r} is not monotonic", code="invalid_coordinates")
    order = np.argsort(values)
    return np.interp(query, values[order], order.astype("f8")), inside


def wrap_longitudes(lons: np.ndarray, edges: tuple[float, float]) -> np.ndarray:
    """Each longitude shifted by whole turns into the 360° window centred on the grid (-170 -> 190 on 0..360)."""
    centre = (edges[0] + edges[1]) / 2 if math.isfinite(edges[0]) else 0.0
    return centre + np.mod(lons - centre + 180.0, 360.0) - 180.0


def locate(dataset: Any, variable: Any, lons: np.ndarray, lats: np.ndarray) -> Located:
    """Where the points fall on ``variable``'s grid (its last two dimensions)."""
    axes = grid_axes(dataset, variable)
    if axes is None:
        raise InvalidInput(f"variable {variable.name!r} is not on a georeferenced grid", code="variable_not_gridded")
    dims = (variable.dimensions[-2], variable.dimensions[-1])
    shape = (int(variable.shape[-2]), int(variable.shape[-1]))
    if axes.kind == "swath":
        return _locate_swath(axes, dims, shape, lons, lats)
    xs, xbounds = coordinate_values(dataset, axes.x, unit_scale(axes.x, axes.crs))
    ys, ybounds = coordinate_values(dataset, axes.y, unit_scale(axes.y, axes.crs))
    xedges, yedges = axis_edges(xs, xbounds), axis_edges(ys, ybounds)
    if axes.kind == "lonlat":
        qx, qy = wrap_longitudes(lons, xedges), lats
    else:
        from pyproj import Transformer

        forward = Transformer.from_crs("EPSG:4326", axes.crs, always_xy=True)
        qx, qy = (np.asarray(value, dtype="f8") for value in forward.transform(lons, lats))
    cols, inside_x = axis_fraction(xs, xedges, qx, name=axes.x.name)
    rows, inside_y = axis_fraction(ys, yedges, qy, name=axes.y.name)
    near_rows = np.clip(np.rint(rows), 0, shape[0] - 1).astype(np.int64)
    near_cols = np.clip(np.rint(cols), 0, shape[1] - 1).astype(np.int64)
    cx, cy = xs[near_cols], ys[near_rows]
    if axes.kind == "projected":
        from pyproj import Transformer

        inverse = Transformer.from_crs(axes.crs, "EPSG:4326", always_xy=True)
        cx, cy = (np.asarray(value, dtype="f8") for value in inverse.transform(cx, cy))
    return Located(dims=dims, shape=shape, rows=rows, cols=cols, inside=inside_x & inside_y, near_rows=near_rows,
                   near_cols=near_cols, cell_lon=cx, cell_lat=cy, distance_m=great_circle_m(lons, lats, cx, cy))


def unit_vectors(lons: np.ndarray, lats: np.ndarray) -> np.ndarray:
    lon, lat = np.radians(lons), np.radians(lats)
    return np.column_stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])


class _SwathCoordinates:
    """A swath's 2-D lat/lon at any cells: from memory when the swath is small, else by window reads."""

    def __init__(self, axes: GridAxes, shape: tuple[int, int]) -> None:
        self.axes, self.shape = axes, shape
        self.stride = max(1, math.ceil(math.sqrt(shape[0] * shape[1] / MAX_SWATH_CELLS)))
        self.lat = filled(axes.y[:: self.stride, :: self.stride])
        self.lon = filled(axes.x[:: self.stride, :: self.stride])

    def at(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.stride == 1:
            return self.lon[rows, cols], self.lat[rows, cols]
        return read_cells(self.axes.x, (), rows, cols)[0], read_cells(self.axes.y, (), rows, cols)[0]


def _locate_swath(axes: GridAxes, dims: tuple[str, str], shape: tuple[int, int], lons: np.ndarray,
                  lats: np.ndarray) -> Located:
    from scipy.spatial import cKDTree

    coords = _SwathCoordinates(axes, shape)
    valid = np.isfinite(coords.lat) & np.isfinite(coords.lon)
    if not valid.any():
        raise InvalidInput(f"the swath coordinates of {axes.y.name!r}/{axes.x.name!r} are all missing",
                           code="invalid_coordinates")
    tree = cKDTree(unit_vectors(coords.lon[valid], coords.lat[valid]))
    _, nearest = tree.query(unit_vectors(lons, lats))
    flat = np.flatnonzero(valid)[nearest]
    rows = (flat // coords.lat.shape[1]) * coords.stride
    cols = (flat % coords.lat.shape[1]) * coords.stride
    if coords.stride > 1:
        rows, cols = _refine(coords, rows, cols, lons, lats)
    frac_rows, frac_cols, inside = _fractional_swath_indices(coords, rows, cols, lons, lats)
    cell_lon, cell_lat = coords.at(rows, cols)
    return Located(dims=dims, shape=shape, rows=frac_rows, cols=frac_cols, inside=inside, near_rows=rows,
                   near_cols=cols, cell_lon=cell_lon, cell_lat=cell_lat,
                   distance_m=great_circle_m(lons, lats, cell_lon, cell_lat))


def _refine(coords: _SwathCoordinates, rows: np.ndarray, cols: np.ndarray, lons: np.ndarray,
            lats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The nearest full-resolution cell within a stride of each subsampled hit."""
    offsets = np.arange(-coords.stride, coords.stride + 1)
    dr, dc = (grid.ravel() for grid in np.meshgrid(offsets, offsets, indexing="ij"))
    cand_rows = np.clip(rows[:, None] + dr[None, :], 0, coords.shape[0] - 1)
    cand_cols = np.clip(cols[:, None] + dc[None, :], 0, coords.shape[1] - 1)
    cand_lon, cand_lat = coords.at(cand_rows.ravel(), cand_cols.ravel())
    distance = great_circle_m(np.repeat(lons, len(dr)), np.repeat(lats, len(dr)), cand_lon, cand_lat)
    best = np.argmin(np.where(np.isfinite(distance), distance, np.inf).reshape(len(rows), -1), axis=1)
    pick = np.arange(len(rows))
    return cand_rows[pick, best], cand_cols[pick, best]


def _fractional_swath_indices(coords: _SwathCoordinates, rows: np.ndarray, cols: np.ndarray, lons: np.ndarray,
                              lats: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fractional indices from the swath's local Jacobian at the nearest cell (east/north metres per row and
    column); a point is inside when they fall within half a cell beyond the outer cells."""
    height, width = coords.shape
    row_lo, row_hi = np.maximum(rows - 1, 0), np.minimum(rows + 1, height - 1)
    col_lo, col_hi = np.maximum(cols - 1, 0), np.minimum(cols + 1, width - 1)
    all_rows = np.concatenate([rows, row_lo, row_hi, rows, rows])
    all_cols = np.concatenate([cols, cols, cols, col_lo, col_hi])
    lon, lat = (values.reshape(5, -1) for values in coords.at(all_rows, all_cols))
    scale = np.radians(1.0) * EARTH_RADIUS_M
    cos0 = np.cos(np.radians(lat[0]))

    def east_north(lon_a: np.ndarray, lat_a: np.ndarray) -> np.ndarray:
        return np.stack([(np.mod(lon_a - lon[0] + 180.0, 360.0) - 180.0) * cos0, lat_a - lat[0]]) * scale

    d_row = (east_north(lon[2], lat[2]) - east_north(lon[1], lat[1])) / np.maximum(row_hi - row_lo, 1)
    d_col = (east_north(lon[4], lat[4]) - east_north(lon[3], lat[3])) / np.maximum(col_hi - col_lo, 1)
    target = east_north(lons, lats)
    det = d_row[0] * d_col[1] - d_col[0] * d_row[1]
    ok = np.isfinite(det) & (np.abs(det) > 1e-12)
    safe = np.where(ok, det, 1.0)
    step_row = np.where(ok, (target[0] * d_col[1] - d_col[0] * target[1]) / safe, 0.0)
    step_col = np.where(ok, (d_row[0] * target[1] - target[0] * d_row[1]) / safe, 0.0)
    frac_rows, frac_cols = rows + step_row, cols + step_col
    inside = ((frac_rows >= -0.5) & (frac_rows <= height - 0.5) & (frac_cols >= -0.5) & (frac_cols <= width - 0.5)
              & np.isfinite(lon[0]) & np.isfinite(lat[0]))
    return (np.clip(frac_rows, rows - 1, rows + 1).clip(0, height - 1),
            np.clip(frac_cols, cols - 1, cols + 1).clip(0, width - 1), inside)


# --- reading values --------------------------------------------------------------------------------------------


def _as_float(block: Any) -> np.ndarray:
    return np.ma.filled(np.ma.masked_invalid(np.ma.asarray(block, dtype="f8")), np.nan)


def read_cells(variable: Any, prefix: tuple, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Values at cells ``(rows[k], cols[k])`` of the last two dimensions, after ``prefix`` picks the leading ones
    (a slice keeps one as bands): shape (bands, n), float, NaN where missing. One window read when the cells' box
    is small, else one per 256x256 tile holding cells."""
    rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
    bands = int(np.prod([variable.shape[i] for i, item in enumerate(prefix) if isinstance(item, slice)], dtype=int))
    out = np.full((bands, len(rows)), np.nan)
    if not len(rows):
        return out
    box = (int(rows.max() - rows.min()) + 1) * (int(cols.max() - cols.min()) + 1)
    if box <= MAX_WINDOW_CELLS:
        groups = [np.arange(len(rows))]
    else:
        tiles = (rows // TILE) * (variable.shape[-1] // TILE + 1) + cols // TILE
        order = np.argsort(tiles, kind="stable")
        groups = np.split(order, np.flatnonzero(np.diff(tiles[order])) + 1)
    for group in groups:
        r, c = rows[group], cols[group]
        r0, r1, c0, c1 = int(r.min()), int(r.max()) + 1, int(c.min()), int(c.max()) + 1
        block = _as_float(variable[(*prefix, slice(r0, r1), slice(c0, c1))]).reshape(bands, r1 - r0, c1 - c0)
        out[:, group] = block[:, r - r0, c - c0]
    return out


def sample(variable: Any, prefix: tuple, located: Located, method: Method) -> np.ndarray:
    """Values (bands, points) at the located points: NaN outside the grid or where the data are missing."""
    inside = np.flatnonzero(located.inside)
    bands = int(np.prod([variable.shape[i] for i, item in enumerate(prefix) if isinstance(item, slice)], dtype=int))
    result = np.full((bands, len(located.rows)), np.nan)
    if not len(inside):
        return result
    if method == "nearest":
        result[:, inside] = read_cells(variable, prefix, located.near_rows[inside], located.near_cols[inside])
        return result
    height, width = located.shape
    frac_rows, frac_cols = located.rows[inside], located.cols[inside]
    row0 = np.clip(np.floor(frac_rows), 0, max(height - 2, 0)).astype(np.int64)
    col0 = np.clip(np.floor(frac_cols), 0, max(width - 2, 0)).astype(np.int64)
    t_row = np.clip(frac_rows - row0, 0.0, 1.0)
    t_col = np.clip(frac_cols - col0, 0.0, 1.0)
    row1, col1 = np.minimum(row0 + 1, height - 1), np.minimum(col0 + 1, width - 1)
    corners = [(row0, col0, (1 - t_row) * (1 - t_col)), (row0, col1, (1 - t_row) * t_col),
               (row1, col0, t_row * (1 - t_col)), (row1, col1, t_row * t_col)]
    values = read_cells(variable, prefix, np.concatenate([item[0] for item in corners]),
                        np.concatenate([item[1] for item in corners])).reshape(bands, 4, -1)
    weights = np.stack([item[2] for item in corners])[None, :, :] * np.isfinite(values)
    total = weights.sum(axis=1)
    weighted = np.nansum(np.where(weights > 0, values, 0.0) * weights, axis=1)
    result[:, inside] = np.where(total > 0, weighted / np.where(total > 0, total, 1.0), np.nan)
    return result


def time_step(dataset: Any, variable: Any, when: datetime | None) -> tuple[str | None, int | None]:
    """(time dimension, index of the step nearest to ``when``; the first without one) of a variable."""
    import netCDF4

    for dim in variable.dimensions[:-2]:
        if not is_time(dataset, dim):
            continue
        if when is None:
            return dim, 0
        coordinate = dataset.variables.get(dim)
        units = attr(coordinate, "units")
        if coordinate is None or not units or " since " not in str(units):
            raise InvalidInput(f"the times of {variable.name!r} ({dim}) cannot be decoded to choose by time",
                               code="invalid_time")
        naive = (when.astimezone(UTC) if when.tzinfo else when).replace(tzinfo=None)
        try:
            target = netCDF4.date2num(naive, units, attr(coordinate, "calendar", "standard"))
        except (ValueError, TypeError, OverflowError) as exc:
            raise InvalidInput(f"time {when.isoformat()} cannot be placed on {dim!r}: {exc}",
                               code="invalid_time") from exc
        return dim, int(np.nanargmin(np.abs(filled(coordinate[:]) - target)))
    return None, None


# --- answering -------------------------------------------------------------------------------------------------


@dataclass
class _Read:
    located: Located
    values: np.ndarray
    time: str | None
    units: str | None
    long_name: str | None


def _grid_key(variable: Any) -> tuple:
    return (tuple(variable.dimensions[-2:]), attr(variable, "grid_mapping"), attr(variable, "coordinates"))


def _value(column: np.ndarray) -> float | list[float | None] | None:
    if len(column) == 1:
        return float(column[0]) if np.isfinite(column[0]) else None
    return [float(item) if np.isfinite(item) else None for item in column]


def query_source(source: NetcdfSource, points: list[QueryPoint], options: QueryOptions, *,
                 defaults: list[str]) -> PointsValues:
    """The values of the chosen variables at every point, in order."""
    dataset = source.dataset
    lons = np.array([point.lon for point in points], dtype="f8")
    lats = np.array([point.lat for point in points], dtype="f8")
    try:
        names = select_variables(list_variables(source), clean_variables(options.variables), defaults,
                                 location=source.location)
        grids: dict[tuple, Located] = {}
        reads: dict[str, _Read] = {}
        for name in names:
            variable = dataset.variables[name]
            key = _grid_key(variable)
            if key not in grids:
                grids[key] = locate(dataset, variable, lons, lats)
            time_dim, time_index = time_step(dataset, variable, options.time)
            plan = layout(dataset, variable, time_index)
            reads[name] = _Read(
                located=grids[key], values=sample(variable, plan.index, grids[key], options.method),
                time=time_label(dataset, time_dim, time_index) if time_dim else None,
                units=_text(attr(variable, "units")), long_name=_text(attr(variable, "long_name")))
    except GeoregError:
        raise
    except (OSError, RuntimeError, IndexError, ValueError) as exc:
        raise source.read_error(exc, "point values") from exc
    first = reads[names[0]]
    answered = []
    for k, point in enumerate(points):
        values = {name: VariableValue(value=_value(read.values[:, k]), units=read.units, long_name=read.long_name,
                                      grid=read.located.cell(k) if read.located is not first.located else None)
                  for name, read in reads.items()}
        time = next((read.time for read in reads.values() if read.time), None)
        answered.append(PointValues(lon=point.lon, lat=point.lat, values=values, grid=first.located.cell(k),
                                    time=time))
    return PointsValues(count=len(answered), points=answered, source=source.location, method=options.method)


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def check_point_count(settings: Settings, count: int) -> None:
    if count > settings.query_max_points:
        raise PayloadTooLarge(f"{count} points are over the limit of {settings.query_max_points} per call "
                              "(GEOREG_QUERY_MAX_POINTS)", code="too_many_points")


@contextmanager
def open_location(settings: Settings, location: str | Path) -> Iterator[NetcdfSource]:
    """A NetCDF source from an http(s) URL on an allowed host (no internal address unless listed) or a path
    under the mounted roots; any other URL scheme (``file:``, ``ftp:`` ...) is refused."""
    if isinstance(location, str):
        scheme = urlsplit(location).scheme.lower()
        if scheme in ("http", "https"):
            check_host(location, settings.download_hosts)
        elif scheme:
            raise InvalidInput(f"URL scheme {scheme!r} is not supported: give an http(s) OPeNDAP or NetCDF URL, or a "
                               "path under the mounted roots", code="unsupported_url")
        else:
            location = resolve_mounted(settings, location)
    with ExitStack() as stack:
        try:
            source = stack.enter_context(open_netcdf(settings, location))
        except UpstreamError as exc:
            if (exc.details or {}).get("status") in (404, 410):
                raise NotFound(f"no OPeNDAP dataset or NetCDF file at {location}", code="source_not_found") from exc
            raise
        yield source


def _one(answer: PointsValues) -> PointValues:
    point = answer.points[0]
    if point.grid is None:
        raise InvalidInput(f"point ({point.lon}, {point.lat}) is outside the grid of {answer.source}",
                           code="point_outside_grid")
    return point


def query_url(settings: Settings, request: UrlPointQuery | UrlPointsQuery) -> PointsValues:
    """``POST /datasets/query-point(s)``: the request's points against its ``url``."""
    points = request.points
    check_point_count(settings, len(points))
    with open_location(settings, request.url) as source:
        return query_source(source, points, request, defaults=[])


def query_url_point(settings: Settings, request: UrlPointQuery) -> PointValues:
    """One point against a URL; 400 ``point_outside_grid`` when it misses the grid."""
    return _one(query_url(settings, request))


def linked_location(settings: Settings, raster: Raster) -> str | Path:
    """The NetCDF source behind a registered raster: the OPeNDAP/NetCDF reference kept at registration (the first
    on an allowed host), else its own mounted ``.nc`` file; 404 ``no_netcdf_source`` when it has none."""
    meta = raster.meta or {}
    candidates: list[str] = []
    reference = meta.get("reference_url")
    if isinstance(reference, str) and url_kind(reference):
        candidates.append(reference)
    references = [item for item in meta.get("references") or [] if isinstance(item, dict) and item.get("url")]
    candidates += [item["url"] for item in references if item.get("kind") == "opendap"]
    candidates += [item["url"] for item in references
                   if item.get("kind") == "download" and url_kind(item["url"]) == "download"]
    candidates = list(dict.fromkeys(candidates))
    for url in candidates:
        if host_allowed(url, settings.download_hosts):
            return url
    if raster.source_path and Path(raster.source_path).suffix.lower() in NETCDF_SUFFIXES:
        return raster.source_path
    if candidates:
        check_host(candidates[0], settings.download_hosts)
    raise NotFound(f"dataset {raster.public_id!r} has no linked NetCDF or OPeNDAP source", code="no_netcdf_source")


def linked_defaults(raster: Raster) -> list[str]:
    """The variables a dataset-linked query reads by default: the variable the raster was written from, else its
    platform profile's point-query variables (S1: ``Amplitude_VH``, ``Amplitude_VV``)."""
    written = ((raster.meta or {}).get("netcdf") or {}).get("variable")
    if written:
        return [str(written)]
    return profile_for(raster.platform).point_query_variables


def query_dataset(session: Session, settings: Settings, *, public_id: str,
                  request: PointQuery | PointsQuery) -> PointsValues:
    """``POST /datasets/{id}/query-point(s)``: the points against the dataset's linked NetCDF source."""
    points = request.points
    check_point_count(settings, len(points))
    raster = get_raster(session, public_id=public_id)
    location, defaults = linked_location(settings, raster), linked_defaults(raster)
    session.close()
    with open_location(settings, location) as source:
        return query_source(source, points, request, defaults=defaults)


def query_dataset_point(session: Session, settings: Settings, *, public_id: str, request: PointQuery) -> PointValues:
    """One point against a dataset's NetCDF source; 400 ``point_outside_grid`` when it misses the grid."""
    return _one(query_dataset(session, settings, public_id=public_id, request=request))
