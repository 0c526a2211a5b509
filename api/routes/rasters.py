"""The Datasets API's raster routes (``/datasets``, snake_case JSON)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from georeg.api.deps import CurrentUser, SessionDep, SettingsDep
from georeg.api.uploads import receive_upload
from georeg.core.errors import InvalidInput
from georeg.core.rasters import service as rasters

router = APIRouter(prefix="/datasets", tags=["datasets (rasters)"])


class FromStringRequest(BaseModel):
    path: str = Field(min_length=1, max_length=4096)
    title: str | None = Field(default=None, max_length=512)
    metadata: dict = Field(default_factory=dict)


def _registered(registration: rasters.Registration) -> JSONResponse:
    body = {**registration.raster, "duplicate_of": registration.duplicate_of}
    return JSONResponse(body, status_code=201 if registration.created else 200)


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


@router.post("", status_code=201)
async def upload_geotiff(request: Request, session: SessionDep, settings: SettingsDep, _: CurrentUser) -> JSONResponse:
    """Multipart GeoTIFF upload (``file``, optional ``title`` and ``metadata`` JSON): 201 new, 200 duplicate."""
    upload = await receive_upload(request, tmp_dir=settings.tmp_dir, max_bytes=settings.max_upload_bytes)
    try:
        if upload.file is None:
            raise InvalidInput("a 'file' part with the GeoTIFF is required", code="file_required")
        registration = await run_in_threadpool(
            rasters.register_upload, session, settings=settings, upload=upload.file,
            filename=upload.filename or "raster.tif", title=upload.fields.get("title"),
            metadata=_metadata(upload.fields.get("metadata")),
        )
        return _registered(registration)
    finally:
        upload.discard()


@router.post("/from-string", status_code=201)
def register_from_path(body: FromStringRequest, session: SessionDep, settings: SettingsDep, _: CurrentUser) -> JSONResponse:
    """Register a GeoTIFF under a mounted root (``GEOREG_MOUNT_ROOTS``) by reference."""
    return _registered(rasters.register_path(session, settings=settings, raw_path=body.path, title=body.title,
                                             metadata=body.metadata))


@router.get("")
def list_rasters(
    session: SessionDep, _: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=100)] = 25, offset: Annotated[int, Query(ge=0)] = 0,
    q: Annotated[str | None, Query(max_length=256)] = None, platform: str | None = None, source: str | None = None,
    bbox: str | None = None, start: datetime | None = None, end: datetime | None = None, sort: str = "-created",
) -> JSONResponse:
    """Registered rasters with search filters, paginated with a total (already JSON-ready: no jsonable_encoder pass)."""
    rows, total = rasters.search_rasters(session, q=q, platform=platform, source=source, bbox=bbox, start=start,
                                         end=end, sort=sort, limit=limit, offset=offset)
    return JSONResponse({
        "total": total, "returned": len(rows), "limit": limit, "offset": offset,
        "next_offset": offset + limit if offset + limit < total else None,
        "prev_offset": max(0, offset - limit) if offset > 0 else None,
        "items": [rasters.raster_view(r) for r in rows],
    })


@router.get("/duplicates")
def list_duplicates(session: SessionDep, _: CurrentUser, by: str = "hash") -> dict:
    groups = rasters.duplicates(session, by=by)
    return {"by": by, "total": len(groups), "groups": groups}


@router.get("/{dataset_id}")
def get_raster(dataset_id: str, session: SessionDep) -> dict:
    return rasters.raster_view(rasters.get_raster(session, public_id=dataset_id))


@router.get("/{dataset_id}/sample")
def sample(dataset_id: str, session: SessionDep, settings: SettingsDep,
           lon: Annotated[float, Query(ge=-180, le=180)], lat: Annotated[float, Query(ge=-90, le=90)]) -> dict:
    raster = rasters.get_raster(session, public_id=dataset_id)
    return rasters.sample(session, settings, raster, lon=lon, lat=lat)


@router.get("/{dataset_id}/extent.geojson")
def extent(dataset_id: str, session: SessionDep) -> JSONResponse:
    feature = rasters.extent_feature(rasters.get_raster(session, public_id=dataset_id))
    return JSONResponse(feature, media_type="application/geo+json")


@router.delete("/{dataset_id}", status_code=204)
def delete(dataset_id: str, request: Request, session: SessionDep, settings: SettingsDep, _: CurrentUser,
           delete_terrain_assets: bool = False) -> Response:
    """Remove the record, its cached thumbnails and tiles, and (``delete_terrain_assets=true``) its terrain assets
    under ``<data>/terrain/<dataset_id>/``; the source file only if georeg owns it (uploaded), never a mounted one."""
    rasters.delete_raster(session, settings, rasters.get_raster(session, public_id=dataset_id),
                          terrain_assets=delete_terrain_assets, thumbnails=request.app.state.thumbnails)
    return Response(status_code=204)
