"""Cross-dataset views of the task platform: ``/sys/tasks`` (administrators) and the Datasets API's
``/datasets/jobs`` (a user's jobs, snake_case)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from georeg.api.deps import ActorDep, AdminUser, CurrentUser, TaskServiceDep
from georeg.api.schemas import COMMON_ERRORS, errors
from georeg.core.paging import MAX_OFFSET
from georeg.core.tasks.model import TaskState
from georeg.core.tasks.schemas import JobCancelOutcome, JobPage, JobPublic, TaskPage

router = APIRouter(tags=["tasks"], responses={**COMMON_ERRORS, **errors(401)})
JobId = Annotated[str, Path(min_length=1, max_length=64, description="the job's (task's) id")]


@router.get("/sys/tasks", responses=errors(403, 404))
async def all_tasks(
    _: AdminUser, tasks: TaskServiceDep,
    tool_id: Annotated[str | None, Query(alias="toolId", max_length=64)] = None, state: TaskState | None = None,
    user_name: Annotated[str | None, Query(alias="userId", max_length=128, description="a user name")] = None,
    skip: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0, take: Annotated[int, Query(ge=1, le=500)] = 50,
) -> TaskPage:
    """Every task of every dataset (administrators only)."""
    return await tasks.list_all(user_name=user_name, tool_id=tool_id, state=state, skip=skip, take=take)


@router.get("/datasets/jobs")
async def list_jobs(
    actor: ActorDep, _: CurrentUser, tasks: TaskServiceDep, status: TaskState | None = None,
    tool_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 25, offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> JobPage:
    """The caller's jobs (all jobs for administrators), newest first, with a total."""
    return await tasks.jobs(actor, status=status, tool_id=tool_id, limit=limit, offset=offset)


@router.get("/datasets/jobs/{job_id}", responses=errors(404))
async def get_job(job_id: JobId, actor: ActorDep, _: CurrentUser, tasks: TaskServiceDep) -> JobPublic:
    return await tasks.job(actor, job_id)


@router.delete("/datasets/jobs/{job_id}", responses=errors(404))
async def delete_job(job_id: JobId, actor: ActorDep, _: CurrentUser, tasks: TaskServiceDep) -> JobCancelOutcome:
    """Cancel an active job, or delete a finished one."""
    outcome = await tasks.cancel_or_delete_job(actor, job_id)
    return JobCancelOutcome(job_id=outcome.task_id, status=outcome.state, cancel_requested=outcome.cancel_requested)
