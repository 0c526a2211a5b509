"""CF georeferencing of NetCDF variables: where a variable's last two dimensions (rows, columns) sit.

A ``grid_mapping`` becomes a pyproj CRS (``CRS.from_cf``); regular 1-D x/y or lon/lat coordinates become a
north-up geotransform (cell centres, or edges from ``bounds``; descending axes flipped, kilometres scaled);
irregular 1-D axes and 2-D lat/lon swaths become GCPs on a subsampled grid (at pixel centres).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import numpy as np

from georeg.core.errors import InvalidInput

Axis = Literal["x", "y", "lon", "lat"]
GCP_STEPS = 20
REGULAR_TOLERANCE = 0.01
LON_UNITS = {"degrees_east", "degree_east", "degrees_e", "degree_e", "degreee", "degreese"}
LAT_UNITS = {"degrees_north", "degree_north", "degrees_n", "degree_n", "degreen", "degreesn"}
KM_UNITS = {"km", "kilometre", "kilometres", "kilometer", "kilometers"}
METRE_UNITS = {"m", "metre", "metres", "meter", "meters"}


def attr(variable: Any, name: str, default: Any = None) -> Any:
    """A NetCDF attribute as a plain Python value (strings stripped, 1-element arrays unwrapped)."""
    if variable is None or name not in variable.ncattrs():
        return default
    value = variable.getncattr(name)
    if isinstance(value, str):
        return value.strip()
    array = np.asarray(value)
    if array.ndim == 0 or array.size == 1:
        return array.reshape(-1)[0].item()
    return array.tolist()


def names_in(value: Any) -> list[str]:
    """Variable names listed in an attribute (``coordinates``, or ``grid_mapping``'s extended form)."""
    return str(value).replace(":", " ").split() if value else []


@dataclass
class Georef:
    """Where a variable's last two dimensions (rows, columns) sit: a north-up geotransform or GCPs."""

    crs: str
    method: Literal["geotransform", "gcps"]
    transform: tuple[float, ...] | None = None
    gcps: list = field(default_factory=list)
    flip_rows: bool = False
    flip_cols: bool = False
    grid_mapping: str | None = None


def axis_of(variable: Any, *, ndim: int = 1) -> Axis | None:
    """x / y (projected) or lon / lat, from standard_name, units, axis and (with degree units) the name."""
    if variable is None or variable.ndim != ndim:
        return None
    standard = str(attr(variable, "standard_name") or "").lower()
    units = str(attr(variable, "units") or "").lower().replace(" ", "")
    axis = str(attr(variable, "axis") or "").upper()
    name = variable.name.lower()
    if standard == "longitude" or units in LON_UNITS or (units.startswith("degree") and name in ("lon", "longitude")):
        return "lon"
    if standard == "latitude" or units in LAT_UNITS or (units.startswith("degree") and name in ("lat", "latitude")):
        return "lat"
    if standard in ("projection_x_coordinate", "grid_longitude") or axis == "X":
        return "x"
    if standard in ("projection_y_coordinate", "grid_latitude") or axis == "Y":
        return "y"
    return None


def is_time(dataset: Any, dim: str) -> bool:
    """Whether a dimension is time (its coordinate says so, or it is called ``time``)."""
    coordinate = dataset.variables.get(dim)
    units = str(attr(coordinate, "units") or "")
    return (dim.lower() == "time" or str(attr(coordinate, "standard_name") or "") == "time"
            or str(attr(coordinate, "axis") or "").upper() == "T" or " since " in units)


def time_label(dataset: Any, dim: str, index: int) -> str | None:
    """The time at ``index`` of a time dimension as ISO-8601 (None when it cannot be decoded)."""
    import netCDF4

    coordinate = dataset.variables.get(dim)
    units = attr(coordinate, "units")
    if coordinate is None or not units:
        return None
    try:
        value = netCDF4.num2date(coordinate[index], units, attr(coordinate, "calendar", "standard"))
        return value.isoformat()
    except (ValueError, TypeError, OverflowError, AttributeError):
        return None


def grid_mapping_crs(dataset: Any, variable: Any) -> tuple[Any, str | None]:
    """(pyproj CRS, grid mapping name) from the variable's ``grid_mapping``; (None, None) when it has none."""
    from pyproj.exceptions import CRSError

    raw = attr(variable, "grid_mapping")
    if not raw:
        return None, None
    name = str(raw).split(":")[0].split()[0]
    mapping = dataset.variables.get(name)
    if mapping is None:
        raise InvalidInput(f"variable {variable.name!r} names grid mapping {name!r}, which the file lacks",
                           code="invalid_grid_mapping")
    attributes = tuple(sorted((key, tuple(value) if isinstance(value, list) else value)
                              for key, value in ((key, attr(mapping, key)) for key in mapping.ncattrs())))
    try:
        return _crs_from_cf(attributes), name
    except (CRSError, KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"grid mapping {name!r} is not a CRS pyproj understands: {exc}",
                           code="invalid_grid_mapping") from exc


@lru_cache(maxsize=64)
def _crs_from_cf(attributes: tuple) -> Any:
    """pyproj's ``CRS.from_cf`` (about a second per call: its datum lookup), once per distinct grid mapping."""
    from pyproj import CRS

    return CRS.from_cf({key: list(value) if isinstance(value, tuple) else value for key, value in attributes})


def _edges(values: np.ndarray, bounds: np.ndarray | None) -> tuple[float, float] | None:
    """(first edge, signed step) of a regular 1-D axis in array order, or None when it is irregular."""
    count = len(values)
    if bounds is not None and bounds.shape == (count, 2):
        if count > 1:
            first = bounds[0][np.argmax(np.abs(bounds[0] - values[-1]))]
            last = bounds[-1][np.argmax(np.abs(bounds[-1] - values[0]))]
        else:
            first, last = bounds[0].min(), bounds[0].max()
        step = (last - first) / count
    elif count > 1:
        step = (values[-1] - values[0]) / (count - 1)
        first = values[0] - step / 2
    else:
        return None
    if not np.isfinite(step) or step == 0:
        return None
    centres = first + step * (np.arange(count) + 0.5)
    if np.max(np.abs(centres - values)) > REGULAR_TOLERANCE * abs(step):
        return None
    return float(first), float(step)


def coordinate_values(dataset: Any, variable: Any, scale: float) -> tuple[np.ndarray, np.ndarray | None]:
    bounds_var = dataset.variables.get(attr(variable, "bounds") or "")
    return filled(variable[:]) * scale, filled(bounds_var[:]) * scale if bounds_var is not None else None


def unit_scale(variable: Any, crs: Any) -> float:
    units = str(attr(variable, "units") or "").lower()
    metres = crs is not None and crs.is_projected and crs.axis_info and crs.axis_info[0].unit_name == "metre"
    return 1000.0 if metres and units in KM_UNITS else 1.0


def sample_indices(count: int, steps: int = GCP_STEPS) -> tuple[int, bool]:
    """(stride, whether the last index must be added) for about ``steps`` samples along an axis."""
    stride = max(1, math.ceil((count - 1) / steps)) if count > 1 else 1
    return stride, (count - 1) % stride != 0


def sample_positions(count: int) -> np.ndarray:
    """The indices :func:`sample_indices` samples: every stride-th one and the last."""
    stride, add_last = sample_indices(count)
    return np.array(list(range(0, count, stride)) + ([count - 1] if add_last else []))


def filled(values: Any) -> np.ndarray:
    return np.ma.filled(np.ma.asarray(values, dtype="f8"), np.nan)


def read_sampled(variable: Any, rows: int, cols: int) -> np.ndarray:
    """A 2-D variable at :func:`sample_positions` of its rows and columns, in at most four strided reads
    (few OPeNDAP requests however large the swath)."""
    row_stride, add_row = sample_indices(rows)
    col_stride, add_col = sample_indices(cols)
    values = filled(variable[::row_stride, ::col_stride])
    if add_col:
        values = np.hstack([values, filled(variable[::row_stride, cols - 1]).reshape(-1, 1)])
    if add_row:
        row = filled(variable[rows - 1, ::col_stride])
        if add_col:
            row = np.append(row, filled(variable[rows - 1, cols - 1]))
        values = np.vstack([values, row.reshape(1, -1)])
    return values


@lru_cache(maxsize=64)
def crs_label(crs: Any) -> str:
    """``EPSG:<code>`` when pyproj identifies the CRS with certainty, else its WKT. A CF ``latitude_longitude``
    mapping on the WGS 84 ellipsoid (no datum named) is taken as EPSG:4326, as GDAL's netCDF driver does."""
    code = crs.to_epsg(min_confidence=100)
    if code is None and crs.is_geographic and _wgs84_ellipsoid(crs):
        code = 4326
    return f"EPSG:{code}" if code else crs.to_wkt()


def _wgs84_ellipsoid(crs: Any) -> bool:
    ellipsoid, meridian = crs.ellipsoid, crs.prime_meridian
    return (ellipsoid is not None and math.isclose(ellipsoid.semi_major_metre, 6378137.0, abs_tol=1e-3)
            and math.isclose(ellipsoid.inverse_flattening, 298.257223563, rel_tol=1e-9)
            and meridian is not None and meridian.longitude == 0)


def make_gcps(rows: np.ndarray, cols: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> list:
    """GCPs at pixel centres (``row + 0.5``, ``col + 0.5``) where both coordinates are finite."""
    from rasterio.control import GroundControlPoint

    return [GroundControlPoint(row=float(row) + 0.5, col=float(col) + 0.5, x=float(xs[i, j]), y=float(ys[i, j]))
            for i, row in enumerate(rows) for j, col in enumerate(cols)
            if np.isfinite(xs[i, j]) and np.isfinite(ys[i, j])]


def _regular_grid(dataset: Any, xvar: Any, yvar: Any, crs: Any, name: str | None) -> Georef:
    xs, xbounds = coordinate_values(dataset, xvar, unit_scale(xvar, crs))
    ys, ybounds = coordinate_values(dataset, yvar, unit_scale(yvar, crs))
    xedges, yedges = _edges(xs, xbounds), _edges(ys, ybounds)
    if xedges is None or yedges is None:
        rows, cols = sample_positions(len(ys)), sample_positions(len(xs))
        grid_x, grid_y = np.meshgrid(xs[cols], ys[rows])
        return Georef(crs=crs_label(crs), method="gcps", gcps=make_gcps(rows, cols, grid_x, grid_y), grid_mapping=name)
    (x0, dx), (y0, dy) = xedges, yedges
    flip_cols, flip_rows = dx < 0, dy > 0
    if flip_cols:
        x0, dx = x0 + dx * len(xs), -dx
    if flip_rows:
        y0, dy = y0 + dy * len(ys), -dy
    return Georef(crs=crs_label(crs), method="geotransform", transform=(dx, 0.0, x0, 0.0, dy, y0),
                  flip_rows=flip_rows, flip_cols=flip_cols, grid_mapping=name)


def swath_coordinates(dataset: Any, variable: Any, row_dim: str, col_dim: str) -> tuple[Any, Any]:
    wanted = (row_dim, col_dim)
    candidates = [dataset.variables[name] for name in names_in(attr(variable, "coordinates"))
                  if name in dataset.variables]
    candidates += list(dataset.variables.values())
    found: dict[str, Any] = {}
    for candidate in candidates:
        if tuple(candidate.dimensions) == wanted:
            found.setdefault(axis_of(candidate, ndim=2) or "", candidate)
    return found.get("lat"), found.get("lon")


def metric_axes(*variables: Any) -> bool:
    """1-D coordinates in metres or kilometres (x/y of a projected grid that lack a standard_name)."""
    return all(variable is not None and variable.ndim == 1
               and str(attr(variable, "units") or "").lower() in KM_UNITS | METRE_UNITS for variable in variables)


@dataclass
class GridAxes:
    """What locates a variable's last two dimensions (rows, columns): 1-D ``lonlat`` axes, 1-D ``projected`` x/y
    axes with a CRS, or a ``swath`` of 2-D lat/lon coordinates."""

    kind: Literal["lonlat", "projected", "swath"]
    crs: Any
    x: Any
    y: Any
    grid_mapping: str | None = None


def grid_axes(dataset: Any, variable: Any) -> GridAxes | None:
    """The coordinates locating ``variable``'s grid, or None when nothing does."""
    from pyproj import CRS

    if variable.ndim < 2:
        return None
    row_dim, col_dim = variable.dimensions[-2:]
    crs, name = grid_mapping_crs(dataset, variable)
    xvar, yvar = dataset.variables.get(col_dim), dataset.variables.get(row_dim)
    axes = (axis_of(xvar), axis_of(yvar))
    if axes == ("lon", "lat"):
        geographic = crs if crs is not None and crs.is_geographic else (crs.geodetic_crs if crs else None)
        return GridAxes("lonlat", geographic or CRS.from_epsg(4326), xvar, yvar, name)
    if crs is not None and crs.is_projected and (axes == ("x", "y") or metric_axes(xvar, yvar)):
        return GridAxes("projected", crs, xvar, yvar, name)
    lat, lon = swath_coordinates(dataset, variable, row_dim, col_dim)
    if lat is None or lon is None:
        return None
    geographic = crs if crs is not None and crs.is_geographic else CRS.from_epsg(4326)
    return GridAxes("swath", geographic, lon, lat, name)


def georeference(dataset: Any, variable: Any) -> Georef | None:
    """How the variable's last two dimensions are georeferenced, or None when they cannot be."""
    axes = grid_axes(dataset, variable)
    if axes is None:
        return None
    if axes.kind != "swath":
        return _regular_grid(dataset, axes.x, axes.y, axes.crs, axes.grid_mapping)
    height, width = variable.shape[-2:]
    lats, lons = read_sampled(axes.y, height, width), read_sampled(axes.x, height, width)
    return Georef(crs=crs_label(axes.crs), method="gcps",
                  gcps=make_gcps(sample_positions(height), sample_positions(width), lons, lats),
                  grid_mapping=axes.grid_mapping)
