"""The Datasets API's raster routes (``/datasets``, snake_case JSON): registration, search, records, samples,
extents and deletion."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from georeg.api.deps import CurrentUser, RasterId, SessionDep, SettingsDep, ThumbnailsDep
from georeg.api.schemas import COMMON_ERRORS, errors
from georeg.api.uploads import multipart_body, receive_upload
from georeg.core.errors import InvalidInput
from georeg.core.rasters import service as rasters
from georeg.core.rasters.schemas import (
    Duplicates,
    ExtentFeature,
    PointSample,
    RasterListing,
    RasterRecord,
    RegisteredRaster,
)
from georeg.core.rasters.search import RasterQuery, list_rasters

router = APIRouter(prefix="/datasets", tags=["datasets (rasters)"], responses={**COMMON_ERRORS, **errors(404)})
REGISTERED = {200: {"model": RegisteredRaster, "description": "the same bytes are registered already (duplicate_of)"}}
GEOTIFF_UPLOAD = multipart_body({
    "file": {"type": "string", "format": "binary", "description": "the GeoTIFF"},
    "title": {"type": "string", "maxLength": 512},
    "metadata": {"type": "string", "description": "a JSON object kept with the record"},
}, required=["file"])


class FromStringRequest(BaseModel):
    path: str = Field(min_length=1, max_length=4096, description="a GeoTIFF under GEOREG_MOUNT_ROOTS")
    title: str | None = Field(default=None, max_length=512)
    metadata: dict = Field(default_factory=dict)


def _metadata(raw: str | None) -> dict:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"metadata must be a JSON object: {exc.msg}", code="invalid_metadata") from exc
    if not isinstance(value, dict):
        raise InvalidInput("metadata must be a JSON object", code="invalid_metadata")
    return value


@router.post("", status_code=201, responses={**REGISTERED, **errors(401, 413, 507)}, openapi_extra=GEOTIFF_UPLOAD)
async def upload_geotiff(request: Request, session: SessionDep, settings: SettingsDep, _: CurrentUser,
                         response: Response) -> RegisteredRaster:
    """Multipart GeoTIFF upload (``file``, optional ``title`` and ``metadata`` JSON): 201 new, 200 duplicate."""
    upload = await receive_upload(request, tmp_dir=settings.tmp_dir, max_bytes=settings.max_upload_bytes)
    try:
        if upload.file is None:
            raise InvalidInput("a 'file' part with the GeoTIFF is required", code="file_required")
        registered = await run_in_threadpool(
            rasters.register_upload, session, settings=settings, upload=upload.file,
            filename=upload.filename or "raster.tif", title=upload.fields.get("title"),
            metadata=_metadata(upload.fields.get("metadata")),
        )
    finally:
        upload.discard()
    response.status_code = 201 if registered.created else 200
    return registered


@router.post("/from-string", status_code=201, responses={**REGISTERED, **errors(401, 403)})
def register_from_path(body: FromStringRequest, session: SessionDep, settings: SettingsDep, _: CurrentUser,
                       response: Response) -> RegisteredRaster:
    """Register a GeoTIFF under a mounted root (``GEOREG_MOUNT_ROOTS``) by reference: 201 new, 200 duplicate."""
    registered = rasters.register_path(session, settings=settings, raw_path=body.path, title=body.title,
                                       metadata=body.metadata)
    response.status_code = 201 if registered.created else 200
    return registered


@router.get("", responses=errors(401))
def search(session: SessionDep, _: CurrentUser, query: Annotated[RasterQuery, Query()]) -> RasterListing:
    """Registered rasters matching every filter given, one page with its total."""
    return list_rasters(session, query)


@router.get("/duplicates", responses=errors(401))
def list_duplicates(session: SessionDep, _: CurrentUser,
                    by: Literal["hash", "identifier", "source"] = "hash") -> Duplicates:
    """Groups of rasters sharing their content hash, CSW identifier or source path."""
    return rasters.duplicates(session, by=by)


@router.get("/{dataset_id}")
def get_raster(dataset_id: RasterId, session: SessionDep) -> RasterRecord:
    return rasters.raster_record(rasters.get_raster(session, public_id=dataset_id))


@router.get("/{dataset_id}/sample")
def sample(dataset_id: RasterId, session: SessionDep, settings: SettingsDep,
           lon: Annotated[float, Query(ge=-180, le=180)], lat: Annotated[float, Query(ge=-90, le=90)]) -> PointSample:
    """Every band's value at a WGS84 point (nodata: null); 404 ``point_outside`` outside the raster."""
    return rasters.sample(session, settings, rasters.get_raster(session, public_id=dataset_id), lon=lon, lat=lat)


@router.get("/{dataset_id}/extent.geojson", response_model=ExtentFeature,
            responses={200: {"content": {"application/geo+json": {}}}})
def extent(dataset_id: RasterId, session: SessionDep) -> Response:
    """The raster's footprint as a GeoJSON Feature (MultiPolygon when split at 180°)."""
    feature = rasters.extent_feature(rasters.get_raster(session, public_id=dataset_id))
    return Response(feature.model_dump_json(), media_type="application/geo+json")


@router.delete("/{dataset_id}", status_code=204, responses=errors(401))
def delete(dataset_id: RasterId, session: SessionDep, settings: SettingsDep, thumbnails: ThumbnailsDep,
           _: CurrentUser, delete_terrain_assets: bool = False) -> Response:
    """Remove the record, its cached thumbnails and tiles, and (``delete_terrain_assets=true``) its terrain assets
    under ``<data>/terrain/<dataset_id>/``; the source file only if georeg owns it (uploaded), never a mounted one."""
    rasters.delete_raster(session, settings, rasters.get_raster(session, public_id=dataset_id),
                          terrain_assets=delete_terrain_assets, thumbnails=thumbnails)
    return Response(status_code=204)
