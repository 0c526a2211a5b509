"""NetCDF variables as registered GeoTIFFs.

:func:`write_variable` writes one variable as a GeoTIFF (packed values unpacked, ``_FillValue`` / ``missing_value``
as nodata, one time step, georeferenced by :mod:`georeg.core.netcdf.georef`); :func:`convert` makes a registrable
GeoTIFF of it and :func:`register_converted` registers a set of them, all or none (a registration that fails
half-way removes the ones it made). Which source and variables come from a CSW record is the catalog's business
(:mod:`georeg.core.catalog.netcdf_ingest`).
"""

from __future__ import annotations

import re
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlmodel import Session

from georeg.core.config import Settings
from georeg.core.errors import GeoregError, InvalidInput, InvalidRaster, PayloadTooLarge
from georeg.core.netcdf.georef import Georef, attr, georeference, is_time, time_label
from georeg.core.netcdf.source import NetcdfSource, VariableInfo
from georeg.core.progress import ProgressCallback
from georeg.core.rasters import service as rasters
from georeg.core.storage import CHUNK_SIZE, TEMP_PREFIX, TempWriter, temp_writer

MAX_BANDS = 256
MAX_VARIABLES = 50
BLOCK_BYTES = 32 * 1024 * 1024


def clean_variables(variables: list[str] | None) -> list[str] | None:
    """Requested variable names, stripped and without repeats (None or empty: choose by default)."""
    if not variables:
        return None
    cleaned = list(dict.fromkeys(name.strip() for name in variables))
    if len(cleaned) > MAX_VARIABLES or any(not name or len(name) > 256 or not name.isprintable() for name in cleaned):
        raise InvalidInput(f"variables must be at most {MAX_VARIABLES} printable names", code="invalid_variables")
    return cleaned


def select_variables(infos: list[VariableInfo], requested: list[str] | None, defaults: list[str], *,
                     location: str) -> list[str]:
    """``requested`` after checking each is a georeferenced data variable; by default the ``defaults`` the file has
    (a platform profile's point-query variables), else every georeferenced 2-D/3-D data variable."""
    by_name = {info.name: info for info in infos}
    gridded = [info.name for info in infos if info.gridded]
    for name in requested or []:
        if name not in by_name:
            raise InvalidInput(f"{location} has no variable {name!r}", code="unknown_variable",
                               details={"available": gridded})
        if not by_name[name].gridded:
            info = by_name[name]
            why = f": {info.problem}" if info.problem else ""
            raise InvalidInput(f"variable {name!r} ({info.role}, dimensions {info.dimensions}) is not a georeferenced "
                               f"2-D or 3-D grid{why}", code="variable_not_gridded",
                               details={"available": gridded})
    if requested:
        return requested
    chosen = [name for name in defaults if name in gridded] or gridded
    if not chosen:
        raise InvalidInput(f"{location} has no georeferenced 2-D or 3-D data variable", code="no_gridded_variables")
    return chosen


# --- one variable as a GeoTIFF ---------------------------------------------------------------------------------


@dataclass
class Layout:
    """How a variable's leading dimensions are reduced: a time step, size-1 dimensions, at most one as bands."""

    index: tuple
    bands: int = 1
    band_dim: str | None = None
    time_dim: str | None = None
    time_index: int | None = None


def layout(dataset: Any, variable: Any, time_index: int | None) -> Layout:
    index: list = []
    result = Layout(index=())
    for dim, size in zip(variable.dimensions[:-2], variable.shape[:-2], strict=False):
        if is_time(dataset, dim) and result.time_dim is None:
            chosen = (time_index or 0) + (size if (time_index or 0) < 0 else 0)
            if not 0 <= chosen < size:
                raise InvalidInput(f"time_index {time_index} is outside {variable.name!r}'s {size} time steps",
                                   code="invalid_time_index")
            result.time_dim, result.time_index = dim, chosen
            index.append(chosen)
        elif size == 1:
            index.append(0)
        elif result.band_dim is None and size <= MAX_BANDS:
            result.band_dim, result.bands = dim, size
            index.append(slice(None))
        else:
            raise InvalidInput(f"variable {variable.name!r} has dimensions {list(variable.dimensions)}: only a time "
                               f"dimension and one more of at most {MAX_BANDS} steps (bands) can precede the grid",
                               code="unsupported_dimensions")
    result.index = tuple(index)
    return result


def _packed(variable: Any) -> bool:
    return attr(variable, "scale_factor") is not None or attr(variable, "add_offset") is not None


def nodata_for(variable: Any, dtype: np.dtype) -> float | int:
    """The declared ``_FillValue`` (else ``missing_value``), unpacked and in the output type; without one,
    netCDF's default fill value for that type (which netCDF4 masks as well)."""
    import netCDF4

    fill = attr(variable, "_FillValue", attr(variable, "missing_value"))
    if isinstance(fill, list):
        fill = fill[0]
    if fill is not None and not isinstance(fill, str):
        if _packed(variable):
            fill = fill * float(attr(variable, "scale_factor", 1.0)) + float(attr(variable, "add_offset", 0.0))
        value = np.asarray(fill).astype(dtype)
        if np.isfinite(value):
            return value.item()
    return np.asarray(netCDF4.default_fillvals[dtype.str[1:]]).astype(dtype).item()


def _block(variable: Any, plan: Layout, georef: Georef, rows: tuple[int, int]) -> np.ma.MaskedArray:
    height = variable.shape[-2]
    start, stop = (height - rows[1], height - rows[0]) if georef.flip_rows else rows
    block = np.ma.asarray(variable[(*plan.index, slice(start, stop), slice(None))])
    if block.dtype.kind == "f":
        block = np.ma.masked_invalid(block)
    block = block.reshape((plan.bands, stop - start, variable.shape[-1]))
    if georef.flip_rows:
        block = block[:, ::-1, :]
    if georef.flip_cols:
        block = block[:, :, ::-1]
    return block


def _geotiff_profile(plan: Layout, georef: Georef, shape: tuple[int, int], dtype: np.dtype, nodata: float) -> dict:
    from affine import Affine

    profile = {"driver": "GTiff", "height": shape[0], "width": shape[1], "count": plan.bands, "dtype": dtype.name,
               "nodata": nodata, "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate",
               "predictor": 3 if dtype.kind == "f" else 2, "BIGTIFF": "IF_SAFER"}
    if georef.method == "geotransform":
        profile.update(crs=georef.crs, transform=Affine(*georef.transform))
    return profile


def write_variable(source: NetcdfSource, name: str, destination: Path, *, time_index: int | None = None,
                   max_bytes: int | None = None, dtype: str | None = None) -> dict:
    """Write one variable as a tiled, deflated GeoTIFF at ``destination``, in row blocks (as ``dtype`` when given,
    else as read); returns what the registry keeps about it (variable, units, time step, georeferencing)."""
    import rasterio
    from rasterio.crs import CRS
    from rasterio.errors import NotGeoreferencedWarning

    dataset = source.dataset
    variable = dataset.variables[name]
    georef = georeference(dataset, variable)
    if georef is None:
        raise InvalidInput(f"variable {name!r} is not georeferenced", code="variable_not_gridded")
    plan = layout(dataset, variable, time_index)
    height, width = (int(n) for n in variable.shape[-2:])
    itemsize = 8 if _packed(variable) else np.dtype(variable.dtype).itemsize
    if max_bytes is not None and height * width * plan.bands * itemsize > max_bytes:
        raise PayloadTooLarge(f"variable {name!r} ({plan.bands}x{height}x{width}) is over the limit of {max_bytes} "
                              "bytes", code="netcdf_too_large")
    rows_per_block = max(1, BLOCK_BYTES // (width * plan.bands * itemsize))
    with ExitStack() as stack:
        output = None
        for start in range(0, height, rows_per_block):
            stop = min(height, start + rows_per_block)
            block = _block(variable, plan, georef, (start, stop))
            if output is None:
                dtype = np.dtype(dtype) if dtype else block.dtype
                nodata = nodata_for(variable, dtype)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", NotGeoreferencedWarning)
                    output = stack.enter_context(rasterio.open(
                        destination, "w", **_geotiff_profile(plan, georef, (height, width), dtype, nodata)))
            output.write(block.filled(nodata).astype(dtype, copy=False),
                         window=rasterio.windows.Window(0, start, width, stop - start))
        if georef.method == "gcps":
            output.gcps = (georef.gcps, CRS.from_user_input(georef.crs))
        time = time_label(dataset, plan.time_dim, plan.time_index) if plan.time_dim else None
        details = {"variable": name, "units": attr(variable, "units"), "long_name": attr(variable, "long_name"),
                   "standard_name": attr(variable, "standard_name"), "dimensions": list(variable.dimensions),
                   "time_index": plan.time_index, "time": time, "band_dimension": plan.band_dim,
                   "georeferencing": georef.method, "grid_mapping": georef.grid_mapping}
        output.update_tags(**{f"NETCDF_{key.upper()}": str(value) for key, value in details.items()
                              if value is not None and not isinstance(value, list)})
        for band in range(1, plan.bands + 1):
            output.set_band_description(band, name if plan.bands == 1 else f"{name}[{plan.band_dim}={band - 1}]")
        if details["units"]:
            output.units = (str(details["units"]),) * plan.bands
    return details


# --- ingest ----------------------------------------------------------------------------------------------------


@dataclass
class Converted:
    variable: str
    filename: str
    writer: TempWriter
    description: tuple
    details: dict
    metadata: dict = field(default_factory=dict)


@contextmanager
def scratch_file(tmp_dir: Path, suffix: str) -> Iterator[Path]:
    """A temp path in the data dir (swept by ``cleanup`` if georeg dies), removed afterwards."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    path = tmp_dir / f"{TEMP_PREFIX}{uuid.uuid4().hex}{suffix}"
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "variable"


def convert(source: NetcdfSource, name: str, stack: ExitStack, settings: Settings,
            time_index: int | None, *, write: Callable[[Path], dict] | None = None,
            filename: str | None = None) -> Converted:
    """``name`` as a registrable GeoTIFF held by a temp writer of ``stack``; ``write(destination) -> details``
    replaces :func:`write_variable` (derived products such as an RGB composite), ``filename`` the default
    ``<source>_<variable>[_t<step>].tif``."""
    with scratch_file(settings.tmp_dir, ".tif") as scratch:
        try:
            if write is not None:
                details = write(scratch)
            else:
                details = write_variable(source, name, scratch, time_index=time_index,
                                         max_bytes=settings.download_max_bytes)
        except GeoregError:
            raise
        except (OSError, RuntimeError, IndexError, ValueError) as exc:
            raise source.read_error(exc, f"variable {name!r}") from exc
        writer = stack.enter_context(temp_writer(settings.tmp_dir, max_bytes=None))
        with open(scratch, "rb") as handle:
            while chunk := handle.read(CHUNK_SIZE):
                writer.write(chunk)
    try:
        description = rasters.describe_raster(writer.path)
    except InvalidRaster as exc:
        raise InvalidRaster(f"variable {name!r} gave an unregistrable GeoTIFF: {exc.message}", code=exc.code) from exc
    step = f"_t{details['time_index']}" if details.get("time_index") is not None else ""
    filename = filename or f"{safe_name(source.name)}_{safe_name(name)}{step}.tif"
    return Converted(variable=name, filename=filename, writer=writer, description=description, details=details)


def register_converted(session: Session, settings: Settings, converted: list[Converted], metadata: dict,
                       progress: ProgressCallback) -> list[dict]:
    """Register every converted GeoTIFF; when one fails, the ones this call created are removed again."""
    registered, created = [], []
    try:
        for item in converted:
            registration = rasters.register_upload(
                session, settings=settings, upload=item.writer, filename=item.filename,
                title=Path(item.filename).stem, metadata={**metadata, **item.metadata, "netcdf": item.details},
                source="csw",
                description=item.description,
            )
            if registration.created:
                created.append(registration.dataset_id)
            registered.append(registration.as_result(variable=item.variable))
            progress(80 + 20 * len(registered) / len(converted), "registering", item.variable)
    except BaseException:
        session.rollback()
        for public_id in created:
            rasters.delete_raster(session, settings, rasters.get_raster(session, public_id=public_id))
        raise
    return registered


