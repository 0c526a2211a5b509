"""HySpex airborne hyperspectral campaigns (CSW parent record + one child record per flight line): preview or queue
a child's ``nc-to-geotiff`` job, queue every child of a campaign, run a campaign as one ``hyspex-parent`` job with
child flow runs, and list children registered without one of their variants."""

from __future__ import annotations

from typing import Annotated, Literal

import httpx
from fastapi import APIRouter, Query, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from georeg.api.deps import ActorDep, CurrentUser, SessionDep, SettingsDep, TaskServiceDep, UpstreamDep
from georeg.api.schemas import COMMON_ERRORS, errors
from georeg.api.tasks.service import TaskService
from georeg.api.tasks.views import job_accepted, status_url
from georeg.core.catalog.csw import CswClient, CswRecord
from georeg.core.catalog.hyspex import (
    HyspexParentRequest,
    HyspexPlan,
    HyspexRequest,
    MissingVariantsPage,
    campaign_children,
    missing_variants,
    plan_hyspex,
)
from georeg.core.config import Settings
from georeg.core.errors import GeoregError, QuotaExceeded
from georeg.core.paging import MAX_OFFSET
from georeg.core.registry.actor import Actor
from georeg.core.tasks.model import TaskState
from georeg.core.tasks.schemas import JobAccepted
from georeg.core.tasks.tools.hyspex_parent import check_child, child_parameters
from georeg.core.tasks.tools.nc_to_geotiff import NC_TO_GEOTIFF

router = APIRouter(tags=["datasets (HySpex)"], responses={**COMMON_ERRORS, **errors(401, 403, 404, 502, 504)})
ChildStatus = Literal["preview", "queued", "already_registered", "already_queued", "quota_exceeded", "error"]


class HyspexChild(BaseModel):
    """One child record: its plan (preview), or what became of it (queued job, or why not)."""

    identifier: str
    title: str | None = None
    status: ChildStatus
    plan: HyspexPlan | None = None
    registered: dict[str, list[str]] = {}
    queued_variants: list[str] = []
    job_id: str | None = None
    status_url: str | None = None
    job_status: TaskState | None = None
    error: str | None = None
    code: str | None = None


class HyspexAnswer(HyspexChild):
    endpoint: str
    submitted: bool


class HyspexParentAnswer(BaseModel):
    identifier: str
    title: str | None = None
    endpoint: str
    total: int
    queued: int
    skipped: int
    children: list[HyspexChild]


def _resolve(settings: Settings, upstream: httpx.Client, identifier: str, endpoint: str | None,
             children_limit: int | None = None, with_children: bool = False) -> tuple[str, CswRecord, list]:
    with CswClient.for_settings(settings, endpoint, http=upstream) as client:
        record = client.get_record(identifier)
        children = campaign_children(client, record.identifier, limit=children_limit) if with_children else []
        return client.endpoint, record, children


async def _queue_child(tasks: TaskService, actor: Actor, endpoint: str, record: CswRecord, variants: list[str],
                       child: HyspexChild) -> HyspexChild:
    """Queue the child's missing variants unless they are all registered or a task for it is active."""
    check = await tasks.in_thread(check_child, tasks.session, record.identifier, variants)
    if check.active_task is not None:
        await tasks.sync([check.active_task])
        if TaskState(check.active_task.state).is_terminal:
            check = await tasks.in_thread(check_child, tasks.session, record.identifier, variants)
    update: dict = {"registered": check.registered}
    if check.skip_reason:
        active = check.active_task
        update.update(status=check.skip_reason, job_id=active.id if active else None,
                      status_url=status_url(active) if active else None,
                      job_status=TaskState(active.state) if active else None)
        return child.model_copy(update=update)
    try:
        submission = await tasks.submit_registry_job(
            actor=actor, tool_id=NC_TO_GEOTIFF.id,
            parameters=child_parameters(record, check.to_queue, endpoint))
    except QuotaExceeded as exc:
        return child.model_copy(update={**update, "status": "quota_exceeded", "error": exc.message, "code": exc.code})
    task = submission.task
    update.update(status="queued" if submission.created else "already_queued", queued_variants=check.to_queue,
                  job_id=task.id, status_url=status_url(task), job_status=TaskState(task.state))
    return child.model_copy(update=update)


@router.post("/datasets/hyspex-csw", response_model_exclude_none=True, responses=errors(400, 422, 429))
async def hyspex_csw(body: HyspexRequest, actor: ActorDep, _: CurrentUser, settings: SettingsDep,
                     upstream: UpstreamDep, tasks: TaskServiceDep) -> HyspexAnswer:
    """A HySpex child record's ``nc-to-geotiff`` job: ``submit: false`` previews it (source, bands nearest
    640/550/460 nm, elevation variable, output names); ``submit: true`` queues it (variants already registered,
    or an active job for the child, are reported instead)."""
    endpoint, record, _children = await run_in_threadpool(_resolve, settings, upstream, body.identifier,
                                                          body.endpoint)
    plan = await run_in_threadpool(plan_hyspex, settings, record, body.variants)
    answer = HyspexAnswer(identifier=record.identifier, title=record.title, endpoint=endpoint, submitted=body.submit,
                          status="preview", plan=plan)
    if not body.submit:
        return answer
    return await _queue_child(tasks, actor, endpoint, record, body.variants, answer)


@router.post("/datasets/hyspex-csw-parent", response_model_exclude_none=True, responses=errors(400, 422))
async def hyspex_csw_parent(body: HyspexParentRequest, actor: ActorDep, _: CurrentUser, settings: SettingsDep,
                            upstream: UpstreamDep, tasks: TaskServiceDep) -> HyspexParentAnswer:
    """Resolve a campaign's children (every page) and queue one ``nc-to-geotiff`` job each; the answer lists each
    child with its job or the reason it was skipped (registered, queued already, quota, no NetCDF ...). Campaigns
    larger than the per-user task quota belong to ``POST /datasets/jobs/hyspex-parent``."""
    endpoint, parent, children = await run_in_threadpool(_resolve, settings, upstream, body.identifier,
                                                         body.endpoint, body.limit, True)
    answers = []
    for record in children:
        child = HyspexChild(identifier=record.identifier, title=record.title, status="preview")
        try:
            await run_in_threadpool(plan_hyspex, settings, record, body.variants, inspect=False)
        except GeoregError as exc:
            answers.append(child.model_copy(update={"status": "error", "error": exc.message, "code": exc.code}))
            continue
        answers.append(await _queue_child(tasks, actor, endpoint, record, body.variants, child))
    queued = sum(1 for child in answers if child.status == "queued")
    return HyspexParentAnswer(identifier=parent.identifier, title=parent.title, endpoint=endpoint,
                              total=len(children), queued=queued, skipped=len(children) - queued, children=answers)


class HyspexParentJob(HyspexParentRequest):
    concurrency: int | None = Field(default=None, ge=1, le=64,
                                    description="child runs at a time (default GEOREG_HYSPEX_CHILD_CONCURRENCY)")


@router.post("/datasets/jobs/hyspex-parent", status_code=202, responses={
    200: {"model": JobAccepted, "description": "an identical recent job"}, **errors(400, 422, 429)})
async def hyspex_parent_job(body: HyspexParentJob, actor: ActorDep, _: CurrentUser, settings: SettingsDep,
                            upstream: UpstreamDep, tasks: TaskServiceDep, response: Response) -> JobAccepted:
    """A ``hyspex-parent`` job: its flow pages through the campaign's children and starts one ``nc-to-geotiff``
    child flow run each (at most ``concurrency``, default ``GEOREG_HYSPEX_CHILD_CONCURRENCY``, at a time);
    progress is children finished / total; cancelling it (``DELETE /datasets/jobs/{id}``) cancels the children
    not finished. The campaign record is checked before the job is queued (404 when unknown)."""
    endpoint, parent, _children = await run_in_threadpool(_resolve, settings, upstream, body.identifier,
                                                          body.endpoint)
    parameters = {"identifier": parent.identifier, "endpoint": endpoint, "variants": body.variants,
                  "limit": body.limit, "concurrency": body.concurrency}
    submission = await tasks.submit_registry_job(actor=actor, tool_id="hyspex-parent", parameters=parameters)
    response.status_code = 202 if submission.created else 200
    return job_accepted(submission.task)


@router.get("/datasets/hyspex-missing-variants")
def hyspex_missing_variants(
    _: CurrentUser, session: SessionDep, limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> MissingVariantsPage:
    """HySpex child identifiers registered without their ``rgb`` or ``z`` variant (and which is missing), by
    identifier, paged with a total."""
    return missing_variants(session, limit=limit, offset=offset)
