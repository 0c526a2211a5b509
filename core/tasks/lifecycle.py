"""A task's life on its row: creation, the state read from its flow run, retries, deletion and quotas.

The state of a task is its flow run's (see :data:`~georeg.core.tasks.model.PREFECT_STATE_MAP`); the row caches it.
:func:`apply_run` is the one place that turns a flow run's state into row fields, for writers (who persist it)
and readers (who only show it).
"""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, ValidationError
from sqlalchemy import func
from sqlmodel import Session, select

from georeg.core.config import Settings
from georeg.core.errors import InvalidParameters, QuotaExceeded
from georeg.core.models import Dataset, Organization, Task, User
from georeg.core.tasks import repository as task_repo
from georeg.core.tasks.model import ACTIVE_STATES, TERMINAL_STATES, TaskState, Tool, dedup_key, map_prefect_state
from georeg.core.timeutil import as_utc, utcnow

RESTARTS_BEFORE_START = 3


class RunState(BaseModel):
    """What the task platform reads of a flow run."""

    id: str
    state_type: str
    state_name: str | None = None
    state_message: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    run_count: int | None = None  # how often it entered Running (None: not read)


def artifact_dir(settings: Settings, task_id: str) -> Path:
    """Where a task's work files and results live."""
    return settings.resolved_data_dir / "artifacts" / task_id


def validated_parameters(tool: Tool, parameters: dict) -> dict:
    """``parameters`` checked against the tool's model, as JSON (422 naming the fields otherwise)."""
    try:
        return tool.parameters.model_validate(parameters).model_dump(mode="json")
    except ValidationError as exc:
        fields = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'parameters'}: {e['msg']}" for e in exc.errors())
        raise InvalidParameters(f"invalid parameters for {tool.id}: {fields}") from exc


def new_task(session: Session, *, tool: Tool, org: Organization, dataset: Dataset, user: User | None,
             path: str | None, parameters: dict, flow_run_id: str | None = None,
             state: TaskState = TaskState.scheduled, dedup_extra: dict | None = None) -> Task:
    """A task row (flushed, not committed) for ``parameters`` already validated."""
    key = dedup_key(tool=tool, dataset_id=dataset.id, path=path, user_id=user.id if user else None,
                    parameters={**parameters, **(dedup_extra or {})})
    task = Task(org_id=org.id, dataset_id=dataset.id, user_id=user.id if user else None, tool_id=tool.id,
                tool_version=tool.version, path=path, parameters=parameters, dedup_key=key, state=state.value,
                flow_run_id=flow_run_id)
    session.add(task)
    session.flush()
    return task


def apply_run(task: Task, run: RunState | None, *, now: datetime | None = None, restart: bool = False) -> bool:
    """Bring ``task``'s fields in line with its flow run; returns whether anything changed. Terminal states are
    final; a task without a run is the submitter's (it creates the run, or fails the task when it cannot).
    ``restart`` (for tasks the submitter owns): a run that crashed before it started goes back to the queue as the
    task's next attempt (:func:`restartable`) instead of failing the task."""
    if TaskState(task.state) not in ACTIVE_STATES or run is None or run.id != task.flow_run_id:
        return False
    if restart and restartable(task, run):
        reason = run.state_message or "no message"
        begin_retry(task, state="Crashed", error=f"its flow run crashed before it started ({reason}); started again",
                    restarted=True)
        return True
    now = now or utcnow()
    state = map_prefect_state(run.state_type, run.state_name)
    before = (task.state, task.started_at, task.finished_at, task.error)
    task.state = state.value
    if run.start_time and not task.started_at:
        task.started_at = run.start_time
    if state.is_terminal:
        task.finished_at = run.end_time or now
        if state is TaskState.failed and not task.error:
            task.error = run.state_message or "the flow run failed"
    return before != (task.state, task.started_at, task.finished_at, task.error)


def restartable(task: Task, run: RunState) -> bool:
    """Whether ``run``, ``task``'s current flow run, crashed before it started (Prefect or its worker failed while
    starting it, as when the Prefect server restarts: it never entered Running, so its tool never ran and running
    it now is not running it twice; Prefect gives such a run a start time equal to its end time, not none)
    and the task was restarted so fewer than :data:`RESTARTS_BEFORE_START` times. Child tasks of a fan-out are
    their parent's to start, never restarted here."""
    restarts = sum(1 for attempt in task.history if attempt.get("restarted"))
    return (run.state_type.upper() == "CRASHED" and run.run_count == 0 and restarts < RESTARTS_BEFORE_START
            and not (task.parameters or {}).get("parent_task_id"))


def begin_retry(task: Task, *, state: str | None = None, error: str | None = None, restarted: bool = False) -> None:
    """Start the next attempt of a failed or cancelled task: the last one goes to its history (``state`` and
    ``error`` overriding the row's, ``restarted`` marking an automatic restart)."""
    previous = {"attempt": task.attempts, "flowRunId": task.flow_run_id, "state": state or task.state,
                "error": error or task.error, "startedAt": _iso(task.started_at), "finishedAt": _iso(task.finished_at)}
    if restarted:
        previous["restarted"] = True
    task.history = [*task.history, previous]
    task.attempts += 1
    task.state = TaskState.queued.value
    task.error = task.result = task.artifact = task.started_at = task.finished_at = task.flow_run_id = None
    task.artifact_bytes = 0
    task.progress = {}


def mark_deleted(session: Session, settings: Settings, task: Task) -> None:
    """A finished task disappears from every view and its files go (the row stays for the quotas' figures)."""
    task.state = TaskState.deleted.value
    task.artifact = None
    session.add(task)
    shutil.rmtree(artifact_dir(settings, task.id), ignore_errors=True)


def check_output_quota(session: Session, *, settings: Settings, org: Organization) -> None:
    """429 when ``org``'s task results of the last 24 h reached the daily limit."""
    used = task_repo.artifact_bytes_since(session, org_id=org.id, since=utcnow() - timedelta(days=1))
    if used >= settings.daily_artifact_bytes_per_org:
        raise QuotaExceeded(
            f"organization {org.slug!r} produced {used} bytes of results in the last 24 h "
            f"(limit {settings.daily_artifact_bytes_per_org})", code="daily_output_quota",
        )


def check_active_quota(active: list[Task], *, settings: Settings, username: str) -> None:
    """429 when ``active`` (a user's active tasks) reached the limit of active tasks per user."""
    if len(active) >= settings.max_active_tasks_per_user:
        raise QuotaExceeded(
            f"{len(active)} tasks are already active for {username!r} (limit {settings.max_active_tasks_per_user});"
            " wait for one to finish or cancel one", code="too_many_active_tasks",
        )


def _iso(value: datetime | None) -> str | None:
    return as_utc(value).isoformat().replace("+00:00", "Z") if value else None


def purge_finished_tasks(session: Session, settings: Settings, *, older_than: datetime) -> int:
    """Remove the records (and files) of tasks that finished before ``older_than``; how many went."""
    finished = [state.value for state in TERMINAL_STATES]
    tasks = session.exec(select(Task).where(Task.state.in_(finished),
                                            func.coalesce(Task.finished_at, Task.created_at) < older_than)).all()
    for task in tasks:
        shutil.rmtree(artifact_dir(settings, task.id), ignore_errors=True)
        session.delete(task)
    session.commit()
    return len(tasks)
