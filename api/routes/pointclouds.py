"""Datasets API routes making rasters from point clouds and NetCDF x/y/z configs: gridded right away (201 new,
200 duplicate) or as a ``point-cloud-grid`` job (202 ``{job_id, status_url}``, 200 with an identical recent job).
``from-nc-config`` is an alias of ``from-point-cloud-config``: the source's first bytes tell its kind."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool

from georeg.api.deps import ActorDep, CurrentUser, SessionDep, SettingsDep, TaskServiceDep
from georeg.api.schemas import COMMON_ERRORS, errors
from georeg.api.tasks.views import job_accepted
from georeg.core.pointclouds.schemas import GriddedRaster, PointCloudGridConfig
from georeg.core.pointclouds.service import check_config, grid_point_cloud
from georeg.core.tasks.schemas import JobAccepted

router = APIRouter(prefix="/datasets", tags=["datasets (rasters)"],
                   responses={**COMMON_ERRORS, **errors(401, 403, 404, 413)})
GRIDDED = {200: {"model": GriddedRaster, "description": "the same raster bytes are registered already (duplicate_of)"}}
ACCEPTED = {200: {"model": JobAccepted, "description": "an identical recent job"}}
TOOL_ID = "point-cloud-grid"


def _grid(body: PointCloudGridConfig, session: SessionDep, settings: SettingsDep, response: Response) -> GriddedRaster:
    gridded = grid_point_cloud(session, settings, body)
    response.status_code = 201 if gridded.created else 200
    return gridded


@router.post("/from-point-cloud-config", status_code=201, responses=GRIDDED)
def from_point_cloud_config(body: PointCloudGridConfig, session: SessionDep, settings: SettingsDep, _: CurrentUser,
                            response: Response) -> GriddedRaster:
    """Grid a LAS/LAZ, XYZ text or NetCDF x/y/z point cloud under ``GEOREG_MOUNT_ROOTS`` into a Cloud-Optimized
    GeoTIFF (min, max, mean, idw or count per cell) and register it: 201 new, 200 duplicate. Cell (i, j) covers
    ``[minx + j*res, minx + (j+1)*res) x (maxy - (i+1)*res, maxy - i*res]``; points on the bounds' right and bottom
    edges fall in the last column and row."""
    return _grid(body, session, settings, response)


@router.post("/from-nc-config", status_code=201, responses=GRIDDED)
def from_nc_config(body: PointCloudGridConfig, session: SessionDep, settings: SettingsDep, _: CurrentUser,
                   response: Response) -> GriddedRaster:
    """Alias of ``/datasets/from-point-cloud-config`` (NetCDF x/y/z variables named by ``x_variable``,
    ``y_variable``, ``z_variable``, default ``x``, ``y``, ``z``)."""
    return _grid(body, session, settings, response)


async def _start(body: PointCloudGridConfig, settings: SettingsDep, actor: ActorDep, tasks: TaskServiceDep,
                 response: Response) -> JobAccepted:
    await run_in_threadpool(check_config, settings, body)
    submission = await tasks.submit_registry_job(actor=actor, tool_id=TOOL_ID, parameters=body.model_dump())
    response.status_code = 202 if submission.created else 200
    return job_accepted(submission.task)


@router.post("/jobs/from-point-cloud-config", status_code=202, responses={**ACCEPTED, **errors(429)})
async def job_from_point_cloud_config(body: PointCloudGridConfig, settings: SettingsDep, actor: ActorDep,
                                      _: CurrentUser, tasks: TaskServiceDep, response: Response) -> JobAccepted:
    """The same gridding as a ``point-cloud-grid`` job (CRS, source and, with ``bounds``, grid size checked before
    queuing); its result is the registration."""
    return await _start(body, settings, actor, tasks, response)


@router.post("/jobs/from-nc-config", status_code=202, responses={**ACCEPTED, **errors(429)})
async def job_from_nc_config(body: PointCloudGridConfig, settings: SettingsDep, actor: ActorDep, _: CurrentUser,
                             tasks: TaskServiceDep, response: Response) -> JobAccepted:
    """Alias of ``/datasets/jobs/from-point-cloud-config``."""
    return await _start(body, settings, actor, tasks, response)
