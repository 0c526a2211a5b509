"""Datasets API routes that start registry jobs on the task platform: rehash, prune-missing, resync, tile seeding
and thumbnail batches (``202 {job_id, status_url}``, or 200 with an identical recent job)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from georeg.api.deps import ActorDep, CurrentUser, RasterId, SessionDep, SettingsDep, TaskServiceDep, ThumbnailsDep
from georeg.api.schemas import COMMON_ERRORS, errors
from georeg.api.tasks.views import job_accepted
from georeg.core.rasters import previews
from georeg.core.rasters import service as rasters
from georeg.core.rasters.previews import ThumbnailBatch, ThumbnailRequest
from georeg.core.rasters.tiles import MAX_ZOOM
from georeg.core.registry.actor import Actor
from georeg.core.tasks.schemas import JobAccepted

router = APIRouter(tags=["datasets (rasters)"], responses={**COMMON_ERRORS, **errors(401, 403, 429)})
SYNC_THUMBNAIL_LIMIT = 20
ACCEPTED = {200: {"model": JobAccepted, "description": "an identical recent job"}}


class PruneRequest(BaseModel):
    dry_run: bool = Field(default=False, description="only report what would be removed")


class ResyncRequest(BaseModel):
    refresh_csw: bool = Field(default=False, description="also re-read the CSW records of CSW-sourced rasters")


class SeedRequest(BaseModel):
    min_zoom: int = Field(default=0, ge=0, le=MAX_ZOOM)
    max_zoom: int = Field(default=8, ge=0, le=MAX_ZOOM)
    bbox: list[float] | None = Field(default=None, min_length=4, max_length=4)


async def start_job(tasks: TaskServiceDep, actor: Actor, response: Response, tool_id: str,
                    parameters: dict) -> JobAccepted:
    submission = await tasks.submit_registry_job(actor=actor, tool_id=tool_id, parameters=parameters)
    response.status_code = 202 if submission.created else 200
    return job_accepted(submission.task)


@router.post("/datasets/rehash", status_code=202, responses=ACCEPTED)
async def rehash(actor: ActorDep, _: CurrentUser, tasks: TaskServiceDep, response: Response) -> JobAccepted:
    """Recompute the sha256 of every registered raster (changed ones are reported)."""
    return await start_job(tasks, actor, response, "rehash", {})


@router.post("/datasets/prune-missing", status_code=202, responses=ACCEPTED)
async def prune_missing(actor: ActorDep, _: CurrentUser, tasks: TaskServiceDep, response: Response,
                        body: PruneRequest | None = None) -> JobAccepted:
    """Remove the records of rasters whose file is gone (``dry_run``: only report them)."""
    return await start_job(tasks, actor, response, "prune-missing", (body or PruneRequest()).model_dump())


@router.post("/datasets/resync", status_code=202, responses=ACCEPTED)
async def resync(actor: ActorDep, _: CurrentUser, tasks: TaskServiceDep, response: Response,
                 body: ResyncRequest | None = None) -> JobAccepted:
    """Register new GeoTIFFs under the mounted roots and refresh changed ones (and CSW metadata)."""
    return await start_job(tasks, actor, response, "resync", (body or ResyncRequest()).model_dump())


@router.post("/datasets/{dataset_id}/seed-mapcache", status_code=202, responses={**ACCEPTED, **errors(404)})
async def seed_mapcache(dataset_id: RasterId, actor: ActorDep, _: CurrentUser, session: SessionDep,
                        tasks: TaskServiceDep, response: Response, body: SeedRequest | None = None) -> JobAccepted:
    """Queue tile seeding (the ``seed-tiles`` job), progress per zoom level."""
    await run_in_threadpool(rasters.get_raster, session, public_id=dataset_id)
    parameters = {"dataset_id": dataset_id, **(body or SeedRequest()).model_dump()}
    return await start_job(tasks, actor, response, "seed-tiles", parameters)


@router.post("/thumbnails/generate", responses={202: {"model": JobAccepted, "description": "queued as a job"}})
async def generate_thumbnails(body: ThumbnailRequest, actor: ActorDep, session: SessionDep, settings: SettingsDep,
                              cache: ThumbnailsDep, tasks: TaskServiceDep,
                              response: Response) -> ThumbnailBatch | JobAccepted:
    """Pre-render thumbnails: up to 20 ids right away (200), more as a job (202, authentication needed)."""
    if len(body.dataset_ids) > SYNC_THUMBNAIL_LIMIT:
        return await start_job(tasks, actor, response, "generate-thumbnails", body.model_dump())
    return await run_in_threadpool(previews.generate_thumbnails_now, session, settings=settings, cache=cache,
                                   request=body)
