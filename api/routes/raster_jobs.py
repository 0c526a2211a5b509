"""Datasets API routes that start registry jobs (rehash, prune-missing, resync, tile seeding), thumbnails and tiles."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from georeg.api.deps import ActorDep, CurrentUser, SessionDep, SettingsDep, ToolsDep
from georeg.api.routes.tasks import start_task
from georeg.core.errors import GeoregError, InvalidInput
from georeg.core.models import Task
from georeg.core.rasters import service as rasters
from georeg.core.rasters.thumbnails import DEFAULT_SIZE, MAX_SIZE, MIN_SIZE
from georeg.core.rasters.tiles import MAX_ZOOM, cached_tile, check_tile, mapcache_config
from georeg.core.registry.access import Actor, check_dataset

router = APIRouter(tags=["datasets (rasters)"])
SYNC_THUMBNAIL_LIMIT = 20


class PruneRequest(BaseModel):
    dry_run: bool = False


class ResyncRequest(BaseModel):
    refresh_csw: bool = False


class ThumbnailRequest(BaseModel):
    dataset_ids: list[str] = Field(min_length=1, max_length=10_000)
    size: int = Field(default=DEFAULT_SIZE, ge=MIN_SIZE, le=MAX_SIZE)


async def start_registry_job(request: Request, session, settings, actor: Actor, tools, tool_id: str,  # noqa: ANN001
                             parameters: dict) -> tuple[Task, bool]:
    """Start a registry tool on ``default/registry``: (task, created); a dedup hit is not created."""
    org, dataset = rasters.registry_location(session)
    tool = tools.get(tool_id)
    check_dataset(session, org=org, dataset=dataset, actor=actor, need=tool.required_access)
    return await start_task(request, session, settings=settings, actor=actor, org=org, dataset=dataset,
                            tool=tool, path=None, parameters=parameters)


async def _job(request: Request, session, settings, actor: Actor, tools, tool_id: str, parameters: dict) -> JSONResponse:  # noqa: ANN001
    """Start a registry tool on ``default/registry``; 202 ``{job_id, status_url}`` (200 for a dedup hit)."""
    task, created = await start_registry_job(request, session, settings, actor, tools, tool_id, parameters)
    body = {"job_id": task.id, "status_url": f"/datasets/jobs/{task.id}", "tool_id": tool_id, "status": task.state}
    return JSONResponse(body, status_code=202 if created else 200)


@router.post("/datasets/rehash", status_code=202)
async def rehash(request: Request, session: SessionDep, settings: SettingsDep, actor: ActorDep, tools: ToolsDep,
                 _: CurrentUser) -> JSONResponse:
    """Recompute the sha256 of every registered raster (a job; changed ones are reported)."""
    return await _job(request, session, settings, actor, tools, "rehash", {})


@router.post("/datasets/prune-missing", status_code=202)
async def prune_missing(request: Request, session: SessionDep, settings: SettingsDep, actor: ActorDep,
                        tools: ToolsDep, _: CurrentUser, body: PruneRequest | None = None) -> JSONResponse:
    return await _job(request, session, settings, actor, tools, "prune-missing", (body or PruneRequest()).model_dump())


@router.post("/datasets/resync", status_code=202)
async def resync(request: Request, session: SessionDep, settings: SettingsDep, actor: ActorDep, tools: ToolsDep,
                 _: CurrentUser, body: ResyncRequest | None = None) -> JSONResponse:
    return await _job(request, session, settings, actor, tools, "resync", (body or ResyncRequest()).model_dump())


@router.get("/datasets/{dataset_id}/thumbnail.png")
def thumbnail(dataset_id: str, request: Request, session: SessionDep, settings: SettingsDep,
              size: Annotated[int, Query(ge=MIN_SIZE, le=MAX_SIZE)] = DEFAULT_SIZE) -> Response:
    """PNG thumbnail (cached on disk by content hash and in memory); nodata is transparent. A plain function: the
    lookup and the drawing run in one worker thread, off the event loop."""
    raster = rasters.get_raster(session, public_id=dataset_id)
    source = rasters.raster_file(session, settings, raster)
    png, origin = request.app.state.thumbnails.get(raster.sha256, size, source)
    return Response(png, media_type="image/png", headers={
        "X-Thumbnail-Cache": origin, "ETag": f'"{raster.sha256[:16]}-{size}"', "Cache-Control": "public, max-age=3600",
    })


@router.post("/thumbnails/generate")
async def generate_thumbnails(body: ThumbnailRequest, request: Request, session: SessionDep, settings: SettingsDep,
                              actor: ActorDep, tools: ToolsDep) -> JSONResponse:
    """Pre-render thumbnails: up to 20 ids right away (200), more as a job (202, authentication needed)."""
    if len(body.dataset_ids) > SYNC_THUMBNAIL_LIMIT:
        return await _job(request, session, settings, actor, tools, "generate-thumbnails", body.model_dump())
    generated, failed = [], []
    for public_id in body.dataset_ids:
        try:
            raster = rasters.get_raster(session, public_id=public_id)
            source = rasters.raster_file(session, settings, raster)
            await run_in_threadpool(request.app.state.thumbnails.get, raster.sha256, body.size, source)
            generated.append(public_id)
        except GeoregError as exc:
            failed.append({"dataset_id": public_id, "error": exc.message, "code": exc.code})
    if not generated and failed:
        raise InvalidInput(f"no thumbnail could be generated: {failed[0]['error']}", code="thumbnails_failed",
                           details={"failed": failed})
    return JSONResponse({"generated": generated, "failed": failed, "size": body.size})


@router.delete("/thumbnails")
def clear_thumbnails(request: Request, _: CurrentUser) -> dict:
    """Clear the thumbnail caches (disk and memory)."""
    return {"cleared": request.app.state.thumbnails.clear()}


class SeedRequest(BaseModel):
    min_zoom: int = Field(default=0, ge=0, le=MAX_ZOOM)
    max_zoom: int = Field(default=8, ge=0, le=MAX_ZOOM)
    bbox: list[float] | None = Field(default=None, min_length=4, max_length=4)


@router.get("/datasets/{dataset_id}/tiles/{z}/{x}/{y}.png")
def tile(dataset_id: str, z: int, x: int, y: int, session: SessionDep, settings: SettingsDep) -> Response:
    """A WebMercatorQuad tile from the disk cache, rendered on demand when missing (in one worker thread)."""
    check_tile(z, x, y)
    raster = rasters.get_raster(session, public_id=dataset_id)
    source = rasters.raster_file(session, settings, raster)
    png, hit = cached_tile(settings.cache_dir, settings.tmp_dir, raster.public_id, source, z, x, y, stats=raster.stats)
    return Response(png, media_type="image/png", headers={"X-Tile-Cache": "hit" if hit else "miss"})


@router.post("/datasets/{dataset_id}/seed-mapcache", status_code=202)
async def seed_mapcache(dataset_id: str, request: Request, session: SessionDep, settings: SettingsDep,
                        actor: ActorDep, tools: ToolsDep, _: CurrentUser, body: SeedRequest | None = None) -> JSONResponse:
    """Queue tile seeding (the ``seed-tiles`` deployment), progress per zoom level."""
    rasters.get_raster(session, public_id=dataset_id)
    parameters = {"dataset_id": dataset_id, **(body or SeedRequest()).model_dump()}
    return await _job(request, session, settings, actor, tools, "seed-tiles", parameters)


@router.get("/datasets/{dataset_id}/mapcache.xml")
def mapcache_xml(dataset_id: str, session: SessionDep, settings: SettingsDep) -> Response:
    """A MapCache tileset configuration pointing at georeg's disk cache for this dataset."""
    raster = rasters.get_raster(session, public_id=dataset_id)
    return Response(mapcache_config(tileset=raster.public_id, cache_dir=settings.cache_dir, title=raster.title),
                    media_type="application/xml")
