"""A point-cloud grid config -> a Cloud-Optimized GeoTIFF in storage, registered like any raster.

:func:`check_config` does the cheap checks (CRS, source under the mounted roots, its kind, the grid size when the
bounds are given) that the job routes run before queuing; :func:`grid_point_cloud` does the whole work. Nothing is
registered or left behind when either fails: the grid lives in memory, the GeoTIFFs in the data dir's tmp until
:func:`~georeg.core.rasters.service.register_upload` moves the COG into storage and commits."""

from __future__ import annotations

import warnings
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
from sqlmodel import Session

from georeg.core.config import Settings
from georeg.core.errors import InvalidInput
from georeg.core.netcdf.to_geotiff import safe_name, scratch_file
from georeg.core.pointclouds.grid import Accumulator, GridSpec, grid_spec
from georeg.core.pointclouds.readers import open_points, source_kind
from georeg.core.pointclouds.schemas import GriddedRaster, PointCloudGridConfig
from georeg.core.progress import ProgressCallback
from georeg.core.rasters import service as rasters
from georeg.core.registry.objects import resolve_mounted
from georeg.core.storage import CHUNK_SIZE, temp_writer

BLOCK_SIZE = 256


def parse_crs(text: str) -> Any:
    """A rasterio CRS from anything pyproj understands (a compound CRS gives its horizontal part); 400
    ``invalid_crs`` otherwise."""
    import pyproj
    import rasterio.crs
    from pyproj.exceptions import CRSError

    try:
        crs = pyproj.CRS.from_user_input(text.strip())
    except (CRSError, ValueError, TypeError) as exc:
        raise InvalidInput(f"crs {text[:200]!r} is not a coordinate reference system: {exc}",
                           code="invalid_crs") from exc
    if crs.is_compound:
        crs = crs.sub_crs_list[0]
    if not (crs.is_projected or crs.is_geographic):
        raise InvalidInput(f"crs {text[:200]!r} is not a horizontal (projected or geographic) CRS",
                           code="invalid_crs")
    epsg = crs.to_epsg(min_confidence=100)
    return rasterio.crs.CRS.from_epsg(epsg) if epsg else rasterio.crs.CRS.from_wkt(crs.to_wkt())


def check_config(settings: Settings, config: PointCloudGridConfig) -> Path:
    """The cheap checks, before any point is read; returns the resolved source."""
    parse_crs(config.crs)
    path = resolve_mounted(settings, config.source)
    source_kind(path)
    if config.bounds is not None:
        grid_spec(config.bounds, config.resolution, max_cells=settings.pointcloud_max_cells)
    return path


def _nothing(percent: float, phase: str, message: str = "") -> None:
    pass


def grid_points(settings: Settings, path: Path, config: PointCloudGridConfig,
                progress: ProgressCallback) -> tuple[np.ndarray, GridSpec, Accumulator, int]:
    """Read and grid the points of ``path``: the raster, its grid, the accumulator (point counts) and how many
    cells have a value."""
    names = (config.x_variable, config.y_variable, config.z_variable)
    with open_points(settings, path, variables=names) as reader:
        bounds = config.bounds
        if bounds is None:
            progress(2, "scanning", "extent of the points")
            bounds = reader.extent()
            if bounds is None:
                raise InvalidInput(f"{path.name} holds no points", code="empty_point_cloud")
        spec = grid_spec(bounds, config.resolution, max_cells=settings.pointcloud_max_cells)
        accumulator = Accumulator(spec, config.output_type, radius=config.effective_radius, power=config.power)
        for x, y, z in reader.chunks():
            accumulator.add(x, y, z)
            progress(5 + 75 * reader.fraction(), "gridding", f"{accumulator.points} points")
    if accumulator.points == 0:
        raise InvalidInput(f"no point of {path.name} is inside the bounds {list(bounds)}", code="no_points")
    array, cells = accumulator.result(config.effective_nodata)
    return array, spec, accumulator, cells


def write_cog(array: np.ndarray, spec: GridSpec, crs: Any, nodata: float | None, destination: Path, *,
              tmp_dir: Path, tags: dict[str, str], description: str) -> None:
    """``array`` as a deflated COG (256-pixel tiles, overviews while larger than a tile) at ``destination``."""
    import rasterio
    import rasterio.shutil
    from affine import Affine
    from rasterio.errors import NotGeoreferencedWarning

    counts = array.dtype == np.uint32
    profile = {"driver": "GTiff", "height": spec.height, "width": spec.width, "count": 1, "dtype": array.dtype.name,
               "crs": crs, "transform": Affine(*spec.transform), "nodata": nodata, "tiled": True,
               "blockxsize": BLOCK_SIZE, "blockysize": BLOCK_SIZE, "BIGTIFF": "IF_SAFER"}
    with scratch_file(tmp_dir, ".tif") as plain, warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(plain, "w", **profile) as output:
            output.write(array, 1)
            output.update_tags(**tags)
            output.set_band_description(1, description)
        rasterio.shutil.copy(plain, destination, driver="COG", COMPRESS="DEFLATE", PREDICTOR="YES",
                             BLOCKSIZE=BLOCK_SIZE, BIGTIFF="IF_SAFER",
                             OVERVIEW_RESAMPLING="NEAREST" if counts else "AVERAGE")


def grid_point_cloud(session: Session, settings: Settings, config: PointCloudGridConfig, *,
                     progress: ProgressCallback | None = None) -> GriddedRaster:
    """Grid the config's source and register the COG (a duplicate when identical bytes are registered)."""
    progress = progress or _nothing
    crs = parse_crs(config.crs)
    path = check_config(settings, config)
    array, spec, accumulator, cells = grid_points(settings, path, config, progress)
    nodata = config.effective_nodata
    details = {"source": str(path), "crs": config.crs, "resolution": spec.resolution, "output_type":
               config.output_type, "bounds": [spec.minx, spec.miny, spec.maxx, spec.maxy], "width": spec.width,
               "height": spec.height, "points": accumulator.points, "points_outside": accumulator.outside}
    if config.output_type == "idw":
        details.update(radius=config.effective_radius, power=config.power)
    tags = {f"POINTCLOUD_{key.upper()}": str(value) for key, value in details.items() if key != "source"}
    tags["POINTCLOUD_SOURCE"] = path.name
    progress(82, "writing", "Cloud-Optimized GeoTIFF")
    filename = f"{safe_name(path.stem)}_{config.output_type}.tif"
    with ExitStack() as stack:
        cog = stack.enter_context(scratch_file(settings.tmp_dir, ".tif"))
        write_cog(array, spec, crs, nodata, cog, tmp_dir=settings.tmp_dir, tags=tags,
                  description="count" if config.output_type == "count" else f"z ({config.output_type})")
        del array
        writer = stack.enter_context(temp_writer(settings.tmp_dir, max_bytes=None))
        with open(cog, "rb") as handle:
            while chunk := handle.read(CHUNK_SIZE):
                writer.write(chunk)
        progress(95, "registering", filename)
        registration = rasters.register_upload(
            session, settings=settings, upload=writer, filename=filename,
            title=config.title or f"{path.stem} ({config.output_type})", metadata={"pointcloud": details},
            source="pointcloud")
    return GriddedRaster(**registration.model_dump(), output_type=config.output_type, points=accumulator.points,
                         points_outside=accumulator.outside, cells_with_data=cells)
