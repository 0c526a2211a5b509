"""Pages of a dataset's tasks (the task platform): ``/r/{org}/{ds}/tasks`` (the list, a form to start one) and
``/r/{org}/{ds}/tasks/{id}`` (state, progress and log tail, polled by ``static/task.js`` from ``…/status``; cancel and
retry buttons; the result download; the flow run in the Prefect UI). Every action is a call of the task service,
as the JSON routes of ``/orgs/{org}/ds/{ds}/tasks`` make it.

The page shows the log's tail and follows it with the JSON API's log cursor (``GET …/tasks/{id}/log?since=``):
each poll of ``…/status?since={cursor}`` answers only the lines that came since, and the next cursor."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request, Response
from fastapi.responses import JSONResponse

from georeg.api.deps import SessionDep, SettingsDep, TaskServiceDep
from georeg.api.downloads import LargeChunkFileResponse
from georeg.api.errors import status_for
from georeg.api.tasks.logs import read_log
from georeg.api.tasks.service import TaskService
from georeg.api.tasks.views import task_public
from georeg.api.web.pages import safe_next
from georeg.api.web.render import PageRoute, redirect, render
from georeg.api.web.session import PageActor, check_csrf
from georeg.core.errors import GeoregError, InvalidInput
from georeg.core.models import Permission
from georeg.core.registry.access import DatasetAccess, load_dataset
from georeg.core.storage import MAX_PATH_LENGTH
from georeg.core.tasks import repository as task_repo
from georeg.core.tasks.model import ACTIVE_STATES
from georeg.core.tasks.schemas import TaskLog, TaskPublic, TaskSubmit

router = APIRouter(prefix="/r/{org_slug}/{ds_slug}/tasks", route_class=PageRoute, include_in_schema=False)

TASKS_PER_PAGE = 50
LOG_LINES_PER_POLL = 1000
"""At most this many new log lines per poll (the next poll goes on from there)."""


def _readable(org_slug: str, ds_slug: str, session: SessionDep, actor: PageActor) -> DatasetAccess:
    return load_dataset(session, actor=actor, org_slug=org_slug, ds_slug=ds_slug, need=Permission.read)


Readable = Annotated[DatasetAccess, Depends(_readable)]


def prefect_ui_url(api_url: str, flow_run_id: str | None) -> str | None:
    """The flow run's page in the Prefect UI (served by the Prefect server next to its API)."""
    if not flow_run_id:
        return None
    return f"{api_url.rstrip('/').removesuffix('/api')}/runs/flow-run/{flow_run_id}"


def status_of(task: TaskPublic, *, base: str, ui: str | None, log: list[str], cursor: str | None,
              log_complete: bool = False) -> dict:
    """What the task page shows and ``task.js`` refreshes: ``log`` holds the lines since the last poll only, and
    ``logCursor`` the cursor to ask for the next ones with (``logComplete``: no line will follow)."""
    return {
        "taskId": task.task_id, "state": task.state.value, "active": task.state in ACTIVE_STATES,
        "percent": round(task.progress.percent, 1), "phase": task.progress.phase, "message": task.progress.message,
        "log": log, "logCursor": cursor, "logComplete": log_complete, "error": task.error, "attempts": task.attempts,
        "resultUrl": (f"{base}/r/{task.org_slug}/{task.ds_slug}/tasks/{task.task_id}/result"
                      if task.artifact else None),
        "resultSize": task.artifact.size_bytes if task.artifact else None,
        "flowRunUrl": ui,
        "canRetry": task.state.value in ("Failed", "Cancelled"),
    }


@router.get("")
async def task_list(request: Request, access: Readable, tasks: TaskServiceDep) -> Response:
    page = await tasks.list(access, tool_id=None, state=None, skip=0, take=TASKS_PER_PAGE)
    tools = [tool for tool in tasks.tool_descriptions() if access.allows(tool.required_access)]
    return render(request, "tasks.html", {"org": access.org, "dataset": access.dataset, "tasks": page.items,
                                          "total": page.total, "tools": tools,
                                          "can_write": access.allows(Permission.write)})


@router.post("")
async def start_task(request: Request, access: Readable, actor: PageActor, tasks: TaskServiceDep,
                     tool_id: Annotated[str, Form(max_length=64)] = "",
                     path: Annotated[str, Form(max_length=MAX_PATH_LENGTH)] = "",
                     parameters: Annotated[str, Form(max_length=100_000)] = "{}",
                     csrf_token: Annotated[str, Form(max_length=256)] = "") -> Response:
    """Submit a task (as ``POST …/tasks``); an identical recent task is opened instead of starting another."""
    check_csrf(request, csrf_token)
    if not tool_id.strip():
        raise InvalidInput("choose a tool", code="missing_field")
    try:
        values = json.loads(parameters or "{}")
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"the parameters are not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
                           code="invalid_parameters") from None
    if not isinstance(values, dict):
        raise InvalidInput("the parameters must be a JSON object, e.g. {}", code="invalid_parameters")
    body = TaskSubmit(tool_id=tool_id, path=path.strip() or None, parameters=values)
    submission = await tasks.submit(actor=actor, org_slug=access.org.slug, ds_slug=access.dataset.slug, request=body)
    return redirect(request, f"/r/{access.org.slug}/{access.dataset.slug}/tasks/{submission.task.id}")


@router.get("/{task_id}")
async def task_page(request: Request, task_id: str, access: Readable, tasks: TaskServiceDep,
                    settings: SettingsDep) -> Response:
    task = await tasks.get(access, task_id[:64])
    ui = prefect_ui_url(settings.effective_prefect_api_url, task.flow_run_id)
    status = status_of(task, base=str(request.scope.get("root_path", "")).rstrip("/"), ui=ui,
                       log=task.log_tail or [], cursor=task.log_cursor)
    return render(request, "task.html", {"org": access.org, "dataset": access.dataset, "task": task,
                                         "status": status, "can_write": access.allows(Permission.write)})


async def _task_and_new_lines(tasks: TaskService, access: DatasetAccess, task_id: str,
                              since: str | None) -> tuple[TaskPublic, TaskLog]:
    """The task (its flow run's state laid over it, as ``GET …/tasks/{id}``) and the log lines since the cursor
    ``since`` (as ``GET …/tasks/{id}/log?since=``), without reading the log's tail again."""
    task = await tasks.in_thread(task_repo.get_task, tasks.session, task_id=task_id, dataset_id=access.dataset.id)
    await tasks.show([task])
    log = await read_log(tasks.prefect, task, since, limit=LOG_LINES_PER_POLL)
    return task_public(task, org=access.org, dataset=access.dataset, user=None), log


@router.get("/{task_id}/status")
async def task_status(request: Request, task_id: str, access: Readable, tasks: TaskServiceDep,
                      settings: SettingsDep, since: Annotated[str | None, Query(max_length=100_000)] = None,
                      ) -> Response:
    """The task's state, progress and the log lines since the cursor ``since`` (from the start without one) as
    JSON, for the page's polling; a bad cursor is ``400 invalid_cursor``."""
    try:
        task, log = await _task_and_new_lines(tasks, access, task_id[:64], since or None)
    except GeoregError as exc:
        return JSONResponse({"error": exc.message, "code": exc.code}, status_code=status_for(exc))
    ui = prefect_ui_url(settings.effective_prefect_api_url, task.flow_run_id)
    status = status_of(task, base=str(request.scope.get("root_path", "")).rstrip("/"), ui=ui, log=log.lines,
                       cursor=log.cursor, log_complete=log.complete)
    return JSONResponse(status, headers={"Cache-Control": "no-store"})


@router.get("/{task_id}/result")
async def task_result(task_id: str, access: Readable, tasks: TaskServiceDep) -> Response:
    result = await tasks.result(access, task_id[:64])
    response = LargeChunkFileResponse(result.path, filename=result.filename, content_disposition_type="attachment")
    response.headers["ETag"] = f'"{result.sha256}"'
    return response


@router.post("/{task_id}/cancel")
async def cancel_task(request: Request, task_id: str, access: Readable, actor: PageActor, tasks: TaskServiceDep,
                      csrf_token: Annotated[str, Form(max_length=256)] = "",
                      next: Annotated[str, Form(max_length=2048)] = "") -> Response:  # noqa: A002 - the field's name
    """Cancel an active task, or delete a finished one (as ``DELETE …/tasks/{id}``); then back to ``next`` (a
    page of this site, e.g. the administrators' task list) or the task."""
    check_csrf(request, csrf_token)
    outcome = await tasks.cancel_or_delete(actor, access, task_id[:64])
    if next:
        return redirect(request, safe_next(next))
    where = f"/r/{access.org.slug}/{access.dataset.slug}/tasks"
    return redirect(request, where if outcome.state.value == "Deleted" else f"{where}/{outcome.task_id}")


@router.post("/{task_id}/retry")
async def retry_task(request: Request, task_id: str, access: Readable, actor: PageActor, tasks: TaskServiceDep,
                     csrf_token: Annotated[str, Form(max_length=256)] = "") -> Response:
    check_csrf(request, csrf_token)
    task = await tasks.retry(actor, access, task_id[:64])
    return redirect(request, f"/r/{access.org.slug}/{access.dataset.slug}/tasks/{task.task_id}")

