"""Cross-dataset views of the task platform: ``/sys/tasks`` (admin) and the Datasets API's ``/datasets/jobs``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlmodel import Session

from georeg.api.deps import ActorDep, AdminUser, CurrentUser, SessionDep, SettingsDep
from georeg.api.routes.tasks import cancel_or_delete
from georeg.api.task_views import job_view, refresh_states_for_reading, task_view
from georeg.core.errors import NotFound
from georeg.core.models import Dataset, Organization, Task, User
from georeg.core.registry import users as user_repo
from georeg.core.registry.access import Actor
from georeg.core.tasks import repository as task_repo
from georeg.core.tasks.model import TaskState

router = APIRouter(tags=["tasks"])


def _places(session: Session, tasks: list[Task]) -> dict[int, tuple[Organization, Dataset]]:
    places = {}
    for task in tasks:
        if task.dataset_id not in places:
            dataset = session.get(Dataset, task.dataset_id)
            places[task.dataset_id] = (session.get(Organization, dataset.org_id), dataset)
    return places


@router.get("/sys/tasks")
async def all_tasks(
    request: Request, session: SessionDep, _: AdminUser, toolId: str | None = None,  # noqa: N803
    state: TaskState | None = None, userId: str | None = None,  # noqa: N803
    skip: Annotated[int, Query(ge=0)] = 0, take: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict:
    """Every task of every dataset (admin only); ``userId`` is a user name."""
    user_id = None
    if userId:
        user_id = user_repo.get_user(session, username=userId).id
    await refresh_states_for_reading(session, request.app.state.prefect, task_repo.active_tasks(session, user_id=user_id))
    rows, total = task_repo.list_tasks(session, user_id=user_id, tool_id=toolId, state=state.value if state else None,
                                       skip=skip, take=take)
    places = _places(session, rows)
    items = []
    for task in rows:
        org, dataset = places[task.dataset_id]
        owner = session.get(User, task.user_id) if task.user_id else None
        items.append(task_view(task, org=org, dataset=dataset, user=owner, log_tail=None, log_cursor=None))
    return {"items": items, "total": total, "skip": skip, "take": take}


def _visible_user_id(actor: Actor) -> int | None:
    return None if actor.is_admin else actor.user.id


@router.get("/datasets/jobs")
async def list_jobs(
    request: Request, session: SessionDep, actor: ActorDep, _: CurrentUser,
    status: TaskState | None = None, tool_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 25, offset: Annotated[int, Query(ge=0)] = 0,
) -> dict:
    """The caller's jobs (all jobs for admins), newest first, with a total."""
    user_id = _visible_user_id(actor)
    await refresh_states_for_reading(session, request.app.state.prefect, task_repo.active_tasks(session, user_id=user_id))
    rows, total = task_repo.list_tasks(session, user_id=user_id, tool_id=tool_id,
                                       state=status.value if status else None, skip=offset, take=limit)
    places = _places(session, rows)
    items = [job_view(t, org=places[t.dataset_id][0], dataset=places[t.dataset_id][1]) for t in rows]
    return {
        "total": total, "returned": len(items), "limit": limit, "offset": offset,
        "next_offset": offset + limit if offset + limit < total else None,
        "prev_offset": max(0, offset - limit) if offset > 0 else None, "items": items,
    }


def _job(session: Session, actor: Actor, job_id: str) -> Task:
    task = task_repo.get_task(session, task_id=job_id)
    if not actor.is_admin and task.user_id != actor.user.id:
        raise NotFound(f"job {job_id} not found", code="job_not_found")
    return task


@router.get("/datasets/jobs/{job_id}")
async def get_job(job_id: str, request: Request, session: SessionDep, actor: ActorDep, _: CurrentUser) -> dict:
    task = _job(session, actor, job_id)
    await refresh_states_for_reading(session, request.app.state.prefect, [task])
    org, dataset = _places(session, [task])[task.dataset_id]
    return job_view(task, org=org, dataset=dataset)


@router.delete("/datasets/jobs/{job_id}")
async def delete_job(job_id: str, request: Request, session: SessionDep, actor: ActorDep, _: CurrentUser,
                     settings: SettingsDep) -> dict:
    """Cancel an active job, or delete a finished one."""
    task = _job(session, actor, job_id)
    outcome = await cancel_or_delete(request, session, settings, task)
    return {"job_id": task.id, "status": outcome["state"], "cancel_requested": outcome.get("cancelRequested", False)}
