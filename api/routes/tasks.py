"""``/orgs/{orgSlug}/ds/{dsSlug}/tasks``: the task platform (tools, submit, status, logs, results)."""

from __future__ import annotations

import asyncio
import logging
import shutil
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from georeg.api.deps import ActorDep, SessionDep, SettingsDep, ToolsDep
from georeg.api.downloads import LargeChunkFileResponse
from georeg.api.launcher import launch
from georeg.api.task_views import (
    iso,
    log_tail_for_reading,
    read_log,
    refresh_states,
    refresh_states_for_reading,
    task_view,
)
from georeg.core.errors import (
    Conflict,
    GeoregError,
    Gone,
    InvalidParameters,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
)
from georeg.core.models import CamelModel, Dataset, Organization, Permission, Task, User
from georeg.core.registry.access import Actor, dataset_permission, require_user
from georeg.core.registry.guards import load_dataset
from georeg.core.storage import normalize_entry_path
from georeg.core.tasks import repository as task_repo
from georeg.core.tasks.model import ACTIVE_STATES, TaskState, Tool, dedup_key
from georeg.core.tasks.runner import artifact_dir
from georeg.core.timeutil import as_utc, utcnow

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/orgs/{orgSlug}/ds/{dsSlug}/tasks", tags=["tasks"])


class SubmitRequest(CamelModel):
    tool_id: str
    path: str | None = None
    parameters: dict = {}
    force: bool = False


def _tool(tools: ToolsDep, tool_id: str) -> Tool:
    tool = tools.get(tool_id)
    if tool is None:
        raise NotFound(f"unknown tool {tool_id!r}; available: {', '.join(t.id for t in tools.all())}",
                       code="tool_not_found")
    return tool


def _validated_parameters(tool: Tool, parameters: dict) -> dict:
    try:
        return tool.parameters.model_validate(parameters).model_dump(mode="json")
    except ValidationError as exc:
        fields = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'parameters'}: {e['msg']}" for e in exc.errors())
        raise InvalidParameters(f"invalid parameters for {tool.id}: {fields}") from exc


async def view(request: Request, session: Session, task: Task, org: Organization, dataset: Dataset) -> dict:
    client = request.app.state.prefect
    await refresh_states_for_reading(session, client, [task])
    tail, cursor = await log_tail_for_reading(client, task)
    user = session.get(User, task.user_id) if task.user_id else None
    return task_view(task, org=org, dataset=dataset, user=user, log_tail=tail, log_cursor=cursor)


async def _check_quotas(session: Session, client, settings, actor: Actor, org: Organization) -> None:  # noqa: ANN001
    if actor.is_admin and settings.admins_exempt_from_quotas:
        return
    active = task_repo.active_tasks(session, user_id=actor.user.id)
    if len(active) >= settings.max_active_tasks_per_user:
        # cached states go stale only towards "active": ask Prefect before refusing (and only then,
        # so a burst of submissions does not re-read every active run on each one)
        await refresh_states(session, client, active)
        active = [task for task in active if TaskState(task.state) in ACTIVE_STATES]
    if len(active) >= settings.max_active_tasks_per_user:
        raise QuotaExceeded(
            f"{len(active)} tasks are already active for {actor.username!r} (limit {settings.max_active_tasks_per_user});"
            " wait for one to finish or cancel one", code="too_many_active_tasks",
        )
    used = task_repo.artifact_bytes_since(session, org_id=org.id, since=utcnow() - timedelta(days=1))
    if used >= settings.daily_artifact_bytes_per_org:
        raise QuotaExceeded(
            f"organization {org.slug!r} produced {used} bytes of results in the last 24 h "
            f"(limit {settings.daily_artifact_bytes_per_org})", code="daily_output_quota",
        )


@router.get("/tools")
def list_tools(orgSlug: str, dsSlug: str, session: SessionDep, actor: ActorDep, tools: ToolsDep) -> list[dict]:  # noqa: N803
    load_dataset(session, actor=actor, org_slug=orgSlug, ds_slug=dsSlug, need=Permission.read)
    return [tool.describe() for tool in tools.all()]


async def start_task(request: Request, session: Session, *, settings, actor: Actor, org: Organization,  # noqa: ANN001
                     dataset: Dataset, tool: Tool, path: str | None, parameters: dict,
                     force: bool = False) -> tuple[Task, bool]:
    """Dedup, quotas, then a task row and its first flow run. Returns (task, created); nothing is
    left behind when the run cannot be started."""
    user = require_user(actor)
    if tool.needs_path and not path:
        raise InvalidParameters(f"tool {tool.id!r} needs the 'path' of an entry")
    parameters = _validated_parameters(tool, parameters)
    key = dedup_key(tool=tool, dataset_id=dataset.id, path=path, user_id=user.id, parameters=parameters)
    client = request.app.state.prefect
    if not force:
        since = utcnow() - timedelta(hours=settings.task_dedup_hours)
        candidates = task_repo.dedup_candidates(session, key=key, since=since)
        await refresh_states(session, client, candidates)
        for candidate in candidates:
            if candidate.state not in (TaskState.failed.value, TaskState.cancelled.value):
                return candidate, False
    await _check_quotas(session, client, settings, actor, org)
    task = Task(org_id=org.id, dataset_id=dataset.id, user_id=user.id, tool_id=tool.id, tool_version=tool.version,
                path=path, parameters=parameters, dedup_key=key, state=TaskState.scheduled.value)
    session.add(task)
    session.commit()
    try:
        task.flow_run_id = await launch(client, task=task, tool=tool, settings=settings)
        session.add(task)
        session.commit()
    except BaseException:
        session.rollback()
        await abandon_submission(session, client, task)
        raise
    return task, True


async def abandon_submission(session: Session, client, task: Task) -> None:  # noqa: ANN001
    """Undo a submission that failed half-way: remove the task row and any flow run Prefect created
    for it (the answer may have been lost after the run was stored). The error being handled is the
    one reported; failures here are logged."""
    try:
        await client.delete_flow_runs(f"task:{task.id}")
    except GeoregError as exc:
        logger.warning("task %s: flow runs of an abandoned submission not removed: %s", task.id, exc)
    for attempt in range(3):
        try:
            task_repo.delete_task_row(session, task_id=task.id)
            session.commit()
            return
        except OperationalError as exc:
            session.rollback()
            logger.warning("task %s: row of an abandoned submission not removed yet (%s)", task.id, exc)
            await asyncio.sleep(0.5 * (attempt + 1))


@router.post("", status_code=202)
async def submit(orgSlug: str, dsSlug: str, body: SubmitRequest, request: Request, session: SessionDep,  # noqa: N803
                 actor: ActorDep, tools: ToolsDep, settings: SettingsDep):
    """Submit a task: 202 with a new task, or 200 with an identical recent one (unless ``force``)."""
    require_user(actor)
    tool = _tool(tools, body.tool_id)
    org, dataset = load_dataset(session, actor=actor, org_slug=orgSlug, ds_slug=dsSlug, need=tool.required_access)
    path = normalize_entry_path(body.path) if body.path else None
    task, created = await start_task(request, session, settings=settings, actor=actor, org=org, dataset=dataset,
                                     tool=tool, path=path, parameters=body.parameters, force=body.force)
    if not created:
        return JSONResponse(await view(request, session, task, org, dataset), status_code=200)
    # a run scheduled a moment ago has no log yet: answering without asking Prefect again means a
    # busy server cannot turn an accepted submission into an error answer
    body = task_view(task, org=org, dataset=dataset, user=session.get(User, task.user_id), log_tail=[], log_cursor=None)
    return JSONResponse(body, status_code=202)


@router.get("")
async def list_dataset_tasks(
    orgSlug: str, dsSlug: str, request: Request, session: SessionDep, actor: ActorDep,  # noqa: N803
    toolId: str | None = None, state: TaskState | None = None,  # noqa: N803
    skip: Annotated[int, Query(ge=0)] = 0, take: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict:
    org, dataset = load_dataset(session, actor=actor, org_slug=orgSlug, ds_slug=dsSlug, need=Permission.read)
    await refresh_states_for_reading(session, request.app.state.prefect,
                                     task_repo.active_tasks(session, dataset_id=dataset.id))
    rows, total = task_repo.list_tasks(session, dataset_id=dataset.id, tool_id=toolId,
                                       state=state.value if state else None, skip=skip, take=take)
    users = {u.id: u for u in (session.get(User, t.user_id) for t in rows if t.user_id) if u}
    items = [task_view(t, org=org, dataset=dataset, user=users.get(t.user_id), log_tail=None, log_cursor=None)
             for t in rows]
    return {"items": items, "total": total, "skip": skip, "take": take}


@router.post("/clear")
def clear_tasks(orgSlug: str, dsSlug: str, session: SessionDep, actor: ActorDep, settings: SettingsDep,  # noqa: N803
                toolId: str | None = None) -> dict:  # noqa: N803
    _, dataset = load_dataset(session, actor=actor, org_slug=orgSlug, ds_slug=dsSlug, need=Permission.write)
    tasks = task_repo.terminal_tasks(session, dataset_id=dataset.id, tool_id=toolId)
    for task in tasks:
        mark_deleted(session, settings, task)
    session.commit()
    return {"deleted": len(tasks)}


def _load(session: Session, actor: Actor, org_slug: str, ds_slug: str, task_id: str, need: Permission):
    org, dataset = load_dataset(session, actor=actor, org_slug=org_slug, ds_slug=ds_slug, need=Permission.read)
    task = task_repo.get_task(session, task_id=task_id, dataset_id=dataset.id)
    if need is not Permission.read:
        permission = dataset_permission(session, org=org, dataset=dataset, actor=actor)
        owner = actor.user is not None and task.user_id == actor.user.id
        if not owner and (permission is None or permission.rank < need.rank):
            require_user(actor)
            raise PermissionDenied("only the task's owner or a dataset writer may change this task")
    return org, dataset, task


@router.get("/{taskId}")
async def get_task(orgSlug: str, dsSlug: str, taskId: str, request: Request, session: SessionDep,  # noqa: N803
                   actor: ActorDep) -> dict:
    org, dataset, task = _load(session, actor, orgSlug, dsSlug, taskId, Permission.read)
    return await view(request, session, task, org, dataset)


@router.get("/{taskId}/log")
async def get_log(orgSlug: str, dsSlug: str, taskId: str, request: Request, session: SessionDep,  # noqa: N803
                  actor: ActorDep, since: str | None = None,
                  limit: Annotated[int, Query(ge=1, le=5000)] = 1000) -> dict:
    _, _, task = _load(session, actor, orgSlug, dsSlug, taskId, Permission.read)
    await refresh_states(session, request.app.state.prefect, [task])
    return await read_log(request.app.state.prefect, task, since, limit=limit)


@router.get("/{taskId}/result")
async def get_result(orgSlug: str, dsSlug: str, taskId: str, request: Request, session: SessionDep,  # noqa: N803
                     actor: ActorDep, settings: SettingsDep) -> FileResponse:
    """The artifact (``Range`` supported, ``ETag`` = sha256); 404 before success, 410 once expired."""
    _, dataset, task = _load(session, actor, orgSlug, dsSlug, taskId, Permission.read)
    await refresh_states(session, request.app.state.prefect, [task])
    if task.state == TaskState.succeeded.value and task.result is not None and task.result.get("artifactExpired"):
        raise Gone("the task's result has expired and was removed", code="result_expired")
    if task.state != TaskState.succeeded.value or not task.artifact:
        raise NotFound(f"task {task.id} has no result (state {task.state})", code="no_result")
    target = artifact_dir(settings, task.id) / task.artifact["file"]
    expired = as_utc(datetime.fromisoformat(task.artifact["expiresAt"])) <= utcnow()
    if expired or not target.is_file():
        raise Gone("the task's result has expired", code="result_expired")
    name = f"{dataset.slug}-{task.tool_id}-{task.id[:8]}{target.suffix}"
    response = LargeChunkFileResponse(target, filename=name, content_disposition_type="attachment")
    response.headers["ETag"] = f'"{task.artifact["sha256"]}"'
    return response


def mark_deleted(session: Session, settings, task: Task) -> None:  # noqa: ANN001
    task.state = TaskState.deleted.value
    task.artifact = None
    session.add(task)
    shutil.rmtree(artifact_dir(settings, task.id), ignore_errors=True)


async def cancel_or_delete(request: Request, session: Session, settings, task: Task) -> dict:  # noqa: ANN001
    """Cancel an active task (Prefect Cancelling -> Cancelled); mark a terminal one Deleted."""
    client = request.app.state.prefect
    await refresh_states(session, client, [task])
    if TaskState(task.state).is_terminal:
        mark_deleted(session, settings, task)
        session.commit()
        return {"taskId": task.id, "state": task.state}
    target = "CANCELLING" if task.state == TaskState.processing.value else "CANCELLED"
    await client.set_state(task.flow_run_id, target, "cancelled through the georeg API")
    await refresh_states(session, client, [task])
    return {"taskId": task.id, "state": task.state, "cancelRequested": True}


@router.delete("/{taskId}")
async def delete_task(orgSlug: str, dsSlug: str, taskId: str, request: Request, session: SessionDep,  # noqa: N803
                      actor: ActorDep, settings: SettingsDep) -> dict:
    _, _, task = _load(session, actor, orgSlug, dsSlug, taskId, Permission.write)
    return await cancel_or_delete(request, session, settings, task)


@router.post("/{taskId}/retry", status_code=202)
async def retry_task(orgSlug: str, dsSlug: str, taskId: str, request: Request, session: SessionDep,  # noqa: N803
                     actor: ActorDep, tools: ToolsDep, settings: SettingsDep) -> dict:
    """Run a failed or cancelled task again as a new flow run under the same id (history kept)."""
    org, dataset, task = _load(session, actor, orgSlug, dsSlug, taskId, Permission.write)
    client = request.app.state.prefect
    await refresh_states(session, client, [task])
    if task.state not in (TaskState.failed.value, TaskState.cancelled.value):
        raise Conflict(f"only failed or cancelled tasks can be retried (state {task.state})", code="not_retryable")
    tool = _tool(tools, task.tool_id)
    await _check_quotas(session, client, settings, actor, org)
    previous = {"attempt": task.attempts, "flowRunId": task.flow_run_id, "state": task.state, "error": task.error,
                "startedAt": iso(task.started_at), "finishedAt": iso(task.finished_at)}
    task.history = [*task.history, previous]
    task.attempts += 1
    task.state = TaskState.scheduled.value
    task.error = task.result = task.artifact = task.started_at = task.finished_at = None
    task.artifact_bytes = 0
    task.progress = {}
    task.flow_run_id = await launch(client, task=task, tool=tool, settings=settings)
    session.add(task)
    session.commit()
    return await view(request, session, task, org, dataset)

