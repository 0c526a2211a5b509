"""``/orgs/{orgSlug}/ds/{dsSlug}/tasks``: the task platform on a dataset. Every route is a call of the task
service (:class:`georeg.api.tasks.service.TaskService`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import FileResponse

from georeg.api.deps import ActorDep, DsSlug, OrgSlug, ReadableDataset, TaskId, TaskServiceDep, WritableDataset
from georeg.api.downloads import LargeChunkFileResponse
from georeg.api.schemas import AUTH_ERRORS, COMMON_ERRORS, errors
from georeg.api.tasks.views import task_public
from georeg.core.paging import MAX_OFFSET
from georeg.core.tasks.model import TaskState
from georeg.core.tasks.schemas import (
    CancelOutcome,
    ClearedTasks,
    TaskLog,
    TaskPage,
    TaskPublic,
    TaskSubmit,
    ToolDescription,
)

router = APIRouter(prefix="/orgs/{orgSlug}/ds/{dsSlug}/tasks", tags=["tasks"],
                   responses={**COMMON_ERRORS, **AUTH_ERRORS})
ToolFilter = Annotated[str | None, Query(alias="toolId", max_length=64, description="only tasks of this tool")]


@router.get("/tools")
def list_tools(_: ReadableDataset, tasks: TaskServiceDep) -> list[ToolDescription]:
    """The tools that can run on the dataset, with their parameters' JSON Schema."""
    return tasks.tool_descriptions()


@router.post("", status_code=202, responses={200: {"model": TaskPublic, "description": "an identical recent task"},
                                             **errors(429)})
async def submit(org_slug: OrgSlug, ds_slug: DsSlug, body: TaskSubmit, actor: ActorDep, tasks: TaskServiceDep,
                 response: Response) -> TaskPublic:
    """Submit a task: 202 with a new task, or 200 with an identical recent one (unless ``force``). The tool's
    required access (read or write) is checked on the dataset."""
    submission = await tasks.submit(actor=actor, org_slug=org_slug, ds_slug=ds_slug, request=body)
    if not submission.created:
        response.status_code = 200
        return await tasks.public(submission.task, org=submission.org, dataset=submission.dataset)
    # a run scheduled a moment ago has no log yet: answering without asking Prefect again means a busy server
    # cannot turn an accepted submission into an error answer
    return task_public(submission.task, org=submission.org, dataset=submission.dataset, user=actor.user)


@router.get("")
async def list_dataset_tasks(access: ReadableDataset, tasks: TaskServiceDep, tool_id: ToolFilter = None,
                             state: TaskState | None = None,
                             skip: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
                             take: Annotated[int, Query(ge=1, le=500)] = 50) -> TaskPage:
    """The dataset's tasks, newest first, with a total."""
    return await tasks.list(access, tool_id=tool_id, state=state, skip=skip, take=take)


@router.post("/clear")
async def clear_tasks(access: WritableDataset, tasks: TaskServiceDep, tool_id: ToolFilter = None) -> ClearedTasks:
    """Delete the dataset's finished tasks (write permission)."""
    return await tasks.clear(access, tool_id=tool_id)


@router.get("/{taskId}")
async def get_task(access: ReadableDataset, task_id: TaskId, tasks: TaskServiceDep) -> TaskPublic:
    return await tasks.get(access, task_id)


@router.get("/{taskId}/log")
async def get_log(access: ReadableDataset, task_id: TaskId, tasks: TaskServiceDep,
                  since: Annotated[str | None, Query(max_length=100_000, description="the cursor of the last read")]
                  = None, limit: Annotated[int, Query(ge=1, le=5000)] = 1000) -> TaskLog:
    """New log lines since the cursor; follow ``cursor`` until ``complete``."""
    return await tasks.log(access, task_id, since=since, limit=limit)


@router.get("/{taskId}/result", response_class=FileResponse,
            responses={200: {"content": {"application/octet-stream": {}}, "description": "the artifact"},
                       206: {"description": "a range of the artifact"}, **errors(410, 416)})
async def get_result(access: ReadableDataset, task_id: TaskId, tasks: TaskServiceDep) -> FileResponse:
    """The artifact (``Range`` supported, ``ETag`` = sha256); 404 before success, 410 once expired."""
    result = await tasks.result(access, task_id)
    response = LargeChunkFileResponse(result.path, filename=result.filename, content_disposition_type="attachment")
    response.headers["ETag"] = f'"{result.sha256}"'
    return response


@router.delete("/{taskId}")
async def delete_task(access: ReadableDataset, task_id: TaskId, actor: ActorDep,
                      tasks: TaskServiceDep) -> CancelOutcome:
    """Cancel an active task (Cancelled within seconds), or delete a finished one."""
    return await tasks.cancel_or_delete(actor, access, task_id)


@router.post("/{taskId}/retry", status_code=202, responses=errors(409, 429))
async def retry_task(access: ReadableDataset, task_id: TaskId, actor: ActorDep, tasks: TaskServiceDep) -> TaskPublic:
    """Run a failed or cancelled task again as a new flow run under the same id (history kept)."""
    return await tasks.retry(actor, access, task_id)
