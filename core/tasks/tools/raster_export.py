"""``raster-export``: a raster entry as a Cloud-Optimized GeoTIFF, optionally reprojected."""

from __future__ import annotations

from typing import Literal

import rasterio
from pydantic import BaseModel, Field
from rasterio.crs import CRS
from rasterio.errors import CRSError, RasterioError
from rasterio.shutil import copy as raster_copy
from rasterio.vrt import WarpedVRT

from georeg.core.errors import InvalidInput, InvalidRaster
from georeg.core.models import EntryType, Permission
from georeg.core.rasters.reader import native_crs
from georeg.core.registry import entries as entry_repo
from georeg.core.registry.objects import entry_files
from georeg.core.tasks.model import Tool, ToolContext, ToolOutcome
from georeg.core.tasks.tools.common import required_path, task_session


class RasterExportParams(BaseModel):
    epsg: int | None = Field(default=None, ge=1024, le=999999, description="reproject to this EPSG code")
    compress: Literal["deflate", "lzw", "zstd", "none"] = "deflate"
    resampling: Literal["nearest", "bilinear", "cubic"] = "nearest"


def run(context: ToolContext, params: RasterExportParams) -> ToolOutcome:
    path = required_path(context)
    with task_session(context) as (session, _, dataset):
        entry = entry_repo.get_entry(session, dataset=dataset, path=path)
        if entry.type != EntryType.raster.value:
            raise InvalidInput(f"{path!r} is not a raster entry", code="not_a_raster")
        source = entry_files(session, context.settings, context.dataset_root, [entry])[path]
    target = context.work_dir / "export.tif"
    options = {"driver": "COG", "compress": params.compress.upper() if params.compress != "none" else "NONE"}
    context.progress(5, "reading", path)
    try:
        dst_crs = CRS.from_epsg(params.epsg) if params.epsg else None
    except CRSError as exc:
        raise InvalidInput(f"unknown EPSG code {params.epsg}", code="invalid_crs") from exc
    try:
        with rasterio.open(source) as src:
            if dst_crs is not None:
                src_crs = native_crs(src)
                if src_crs is None:
                    raise InvalidRaster(f"{path!r} has no CRS to reproject from")
                with WarpedVRT(src, src_crs=src_crs, crs=dst_crs,
                               resampling=getattr(rasterio.enums.Resampling, params.resampling)) as vrt:
                    context.progress(20, "warping", f"to EPSG:{params.epsg}")
                    raster_copy(vrt, target, **options)
            else:
                raster_copy(src, target, **options)
    except RasterioError as exc:
        raise InvalidRaster(f"cannot export {path!r}: {exc}") from exc
    with rasterio.open(target) as out:
        summary = {"width": out.width, "height": out.height, "crs": out.crs.to_string() if out.crs else None,
                   "bounds": list(out.bounds), "overviews": out.overviews(1)}
    context.progress(95, "written", "cloud-optimized GeoTIFF")
    return ToolOutcome(result=summary, artifact=target)


RASTER_EXPORT = Tool(
    id="raster-export",
    version="1.0.0",
    title="Export raster as COG",
    description="Convert a raster entry to a Cloud-Optimized GeoTIFF, optionally reprojected to an EPSG code.",
    parameters=RasterExportParams,
    run=run,
    required_access=Permission.read,
    produces_artifact=True,
    artifact_extension=".tif",
    needs_path=True,
)
