"""Task rows: creation, lookups, dedup candidates and quota figures."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, or_, update
from sqlmodel import Session, select

from georeg.core.errors import NotFound
from georeg.core.models import Task
from georeg.core.tasks.model import ACTIVE_STATES, TaskState
from georeg.core.timeutil import as_utc, utcnow

ACTIVE = [state.value for state in ACTIVE_STATES]


def get_task(session: Session, *, task_id: str, dataset_id: int | None = None) -> Task:
    task = session.get(Task, task_id)
    elsewhere = dataset_id is not None and task is not None and task.dataset_id != dataset_id
    if task is None or task.state == TaskState.deleted.value or elsewhere:
        raise NotFound(f"task {task_id} not found", code="task_not_found")
    return task


def dedup_candidates(session: Session, *, key: str, since: datetime) -> list[Task]:
    """Tasks with ``key`` created after ``since`` that are not (cached as) failed, cancelled or deleted."""
    rows = session.exec(
        select(Task)
        .where(Task.dedup_key == key, Task.created_at >= since)
        .where(Task.state.not_in([TaskState.failed.value, TaskState.cancelled.value, TaskState.deleted.value]))
        .order_by(Task.created_at.desc())
    ).all()
    return list(rows)


def active_tasks(session: Session, *, user_id: int | None = None, dataset_id: int | None = None) -> list[Task]:
    query = select(Task).where(Task.state.in_(ACTIVE))
    if user_id is not None:
        query = query.where(Task.user_id == user_id)
    if dataset_id is not None:
        query = query.where(Task.dataset_id == dataset_id)
    return list(session.exec(query).all())


def active_children(session: Session, *, parent_task_id: str) -> list[Task]:
    """Active (as cached) tasks started by a fan-out task (``parameters.parent_task_id``)."""
    return [task for task in active_tasks(session) if (task.parameters or {}).get("parent_task_id") == parent_task_id]


def artifact_bytes_since(session: Session, *, org_id: int, since: datetime) -> int:
    total = session.exec(
        select(func.coalesce(func.sum(Task.artifact_bytes), 0)).where(Task.org_id == org_id, Task.created_at >= since)
    ).one()
    return int(total or 0)


def list_tasks(
    session: Session,
    *,
    dataset_id: int | None = None,
    user_id: int | None = None,
    tool_id: str | None = None,
    state: str | None = None,
    skip: int = 0,
    take: int = 50,
) -> tuple[list[Task], int]:
    query = select(Task).where(Task.state != TaskState.deleted.value)
    if dataset_id is not None:
        query = query.where(Task.dataset_id == dataset_id)
    if user_id is not None:
        query = query.where(Task.user_id == user_id)
    if tool_id:
        query = query.where(Task.tool_id == tool_id)
    if state:
        query = query.where(Task.state == state)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(Task.created_at.desc(), Task.id).offset(skip).limit(take)).all()
    return list(rows), total


def terminal_tasks(session: Session, *, dataset_id: int, tool_id: str | None = None) -> list[Task]:
    terminal = [TaskState.succeeded.value, TaskState.failed.value, TaskState.cancelled.value]
    query = select(Task).where(Task.dataset_id == dataset_id, Task.state.in_(terminal))
    if tool_id:
        query = query.where(Task.tool_id == tool_id)
    return list(session.exec(query).all())


def expired_artifacts(session: Session, *, now: datetime) -> list[Task]:
    rows = session.exec(select(Task).where(Task.artifact.is_not(None))).all()
    return [task for task in rows
            if task.artifact and as_utc(datetime.fromisoformat(task.artifact["expiresAt"])) <= now]


def unsubmitted_tasks(session: Session, *, limit: int, created_before: datetime | None = None,
                      ids: list[str] | None = None) -> list[Task]:
    """Queued tasks whose flow run is not created yet, oldest first: all of them (``created_before`` narrowing
    to the older ones), or those among ``ids``."""
    query = select(Task).where(Task.state == TaskState.queued.value, Task.flow_run_id.is_(None))
    if created_before is not None:
        query = query.where(Task.created_at < created_before)
    if ids is not None:
        query = query.where(Task.id.in_(ids))
    return list(session.exec(query.order_by(Task.created_at, Task.id).limit(limit)).all())


def record_flow_run(session: Session, *, task_id: str, attempt: int, flow_run_id: str) -> bool:
    """Record the run created for ``task_id``'s ``attempt`` if the task still waits for it (queued, no run):
    whether it did. Committed."""
    updated = session.execute(
        update(Task).where(Task.id == task_id, Task.attempts == attempt, Task.state == TaskState.queued.value,
                           Task.flow_run_id.is_(None))
        .values(flow_run_id=flow_run_id, state=TaskState.scheduled.value)
    ).rowcount
    session.commit()
    return bool(updated)


def claim_attempt(session: Session, *, task_id: str, attempt: int, flow_run_id: str | None, progress: dict) -> bool:
    """Claim ``task_id``'s ``attempt`` for the run starting its tool (``flow_run_id``, None outside a flow run):
    marks it started, unless it finished, records another run or was claimed before; whether it did. Committed."""
    conditions = [Task.id == task_id, Task.attempts == attempt, Task.state.in_(ACTIVE),
                  or_(Task.executed_attempt.is_(None), Task.executed_attempt != attempt)]
    if flow_run_id is not None:
        conditions.append(Task.flow_run_id == flow_run_id)
    updated = session.execute(
        update(Task).where(*conditions)
        .values(executed_attempt=attempt, started_at=utcnow(), error=None, progress=progress)
    ).rowcount
    session.commit()
    return bool(updated)


def fail_unsubmitted(session: Session, *, task_id: str, attempt: int, error: str, now: datetime) -> bool:
    """Fail ``task_id``'s ``attempt`` if it still waits for its run; whether it did. Committed."""
    updated = session.execute(
        update(Task).where(Task.id == task_id, Task.attempts == attempt, Task.state == TaskState.queued.value,
                           Task.flow_run_id.is_(None))
        .values(state=TaskState.failed.value, error=error, finished_at=now)
    ).rowcount
    session.commit()
    return bool(updated)
