"""Task state from Prefect, log cursors and the JSON views of tasks (Registry and Datasets API)."""

from __future__ import annotations

import base64
import json
import logging
from datetime import datetime, timedelta

from sqlmodel import Session

from georeg.api.prefect_client import PrefectClient
from georeg.core.errors import InvalidInput, ServiceUnavailable
from georeg.core.models import Dataset, Organization, Task, User
from georeg.core.tasks.model import ACTIVE_STATES, TaskState, map_prefect_state
from georeg.core.timeutil import as_utc, utcnow

logger = logging.getLogger(__name__)

LOG_REREAD = timedelta(seconds=3)
LOG_TAIL = 200


SUBMISSION_GRACE = timedelta(minutes=5)


def _fail_unsubmitted(session: Session, tasks: list[Task]) -> None:
    """Active tasks without a flow run long after they were created: their submission was cut short
    (the API stopped between writing the row and scheduling the run) and nothing will ever run them."""
    stale = [t for t in tasks if not t.flow_run_id and TaskState(t.state) in ACTIVE_STATES
             and utcnow() - as_utc(t.created_at) > SUBMISSION_GRACE]
    for task in stale:
        task.state = TaskState.failed.value
        task.finished_at = utcnow()
        task.error = "the submission to Prefect did not complete, so the task never ran; submit it again"
        session.add(task)
    if stale:
        session.commit()


async def refresh_states(session: Session, client: PrefectClient, tasks: list[Task]) -> None:
    """Update the cached state of active tasks from their flow runs (terminal states are final)."""
    _fail_unsubmitted(session, tasks)
    active = [t for t in tasks if t.flow_run_id and TaskState(t.state) in ACTIVE_STATES]
    if not active:
        return
    runs = await client.flow_runs([t.flow_run_id for t in active])
    for task in active:
        run = runs.get(task.flow_run_id)
        if run is None:
            continue
        state = map_prefect_state(run.state_type, run.state_name)
        if state.is_terminal:
            session.refresh(task)  # the worker's last writes (progress, result) landed after this row was read
        task.state = state.value
        if run.start_time and not task.started_at:
            task.started_at = run.start_time
        if state.is_terminal:
            task.finished_at = run.end_time or utcnow()
            if state is TaskState.failed and not task.error:
                task.error = run.state_message or "the flow run failed"
        session.add(task)
    session.commit()


async def refresh_states_for_reading(session: Session, client: PrefectClient, tasks: list[Task]) -> None:
    """:func:`refresh_states` for views that only read: when Prefect cannot answer, the cached states are
    shown (they go stale only towards "active") instead of an error."""
    try:
        await refresh_states(session, client, tasks)
    except ServiceUnavailable as exc:
        session.rollback()
        logger.info("task states not refreshed, showing cached ones: %s", exc)


async def log_tail_for_reading(client: PrefectClient, task: Task) -> tuple[list[str], str | None]:
    """:func:`log_tail`, or no lines when Prefect cannot answer."""
    try:
        return await log_tail(client, task)
    except ServiceUnavailable as exc:
        logger.info("task %s: log tail not read: %s", task.id, exc)
        return [], None


def encode_cursor(watermark: datetime | None, seen: list[str]) -> str:
    raw = json.dumps({"t": watermark.isoformat() if watermark else None, "s": seen}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[datetime | None, set[str]]:
    if not cursor:
        return None, set()
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        watermark = as_utc(datetime.fromisoformat(raw["t"])) if raw["t"] else None
        return watermark, set(raw["s"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInput("invalid log cursor", code="invalid_cursor") from exc


LOG_SETTLE = timedelta(seconds=5)


async def read_log(client: PrefectClient, task: Task, cursor: str | None, *, limit: int = 500) -> dict:
    """New log lines since ``cursor``.

    The cursor holds a timestamp watermark and the ids already returned near it; each read goes back
    ``LOG_REREAD`` before the watermark and skips known ids, so lines that reach Prefect late are
    neither lost nor repeated. ``complete`` once the run ended long enough ago and nothing is new.
    """
    watermark, seen = decode_cursor(cursor)
    fresh: list = []
    logs: list = []
    if task.flow_run_id:
        after = watermark - LOG_REREAD if watermark else None
        logs = await client.logs(task.flow_run_id, after=after, limit=limit + len(seen) + 1)
        fresh = [line for line in logs if line.id not in seen][:limit]
    if fresh:
        newest = max(as_utc(line.timestamp) for line in fresh)
        watermark = max(watermark, newest) if watermark else newest
    returned = seen | {line.id for line in fresh}
    window = watermark - LOG_REREAD if watermark else None
    keep = sorted(line.id for line in logs if line.id in returned and as_utc(line.timestamp) >= window)
    finished = as_utc(task.finished_at)
    settled = TaskState(task.state).is_terminal and (finished is None or utcnow() - finished >= LOG_SETTLE)
    return {
        "lines": [f"{as_utc(line.timestamp).isoformat()} {line.message}" for line in fresh],
        "cursor": encode_cursor(watermark, keep),
        "complete": settled and not fresh,
    }


async def log_tail(client: PrefectClient, task: Task) -> tuple[list[str], str | None]:
    """The last ``LOG_TAIL`` lines of the run's log and a cursor to follow on from them."""
    if not task.flow_run_id:
        return [], None
    logs = await client.logs(task.flow_run_id, after=None, limit=LOG_TAIL, newest_first=True)
    if not logs:
        return [], None
    watermark = max(as_utc(line.timestamp) for line in logs)
    keep = sorted(line.id for line in logs if as_utc(line.timestamp) >= watermark - LOG_REREAD)
    return [f"{as_utc(line.timestamp).isoformat()} {line.message}" for line in logs], encode_cursor(watermark, keep)


def result_url(org: Organization, dataset: Dataset, task: Task) -> str:
    return f"/orgs/{org.slug}/ds/{dataset.slug}/tasks/{task.id}/result"


def task_view(task: Task, *, org: Organization, dataset: Dataset, user: User | None, log_tail: list[str] | None,
              log_cursor: str | None) -> dict:
    artifact = None
    if task.artifact:
        artifact = {
            "sizeBytes": task.artifact["sizeBytes"], "sha256": task.artifact["sha256"],
            "resultUrl": result_url(org, dataset, task), "expiresAt": task.artifact["expiresAt"],
        }
    return {
        "taskId": task.id, "toolId": task.tool_id, "version": task.tool_version, "state": task.state,
        "orgSlug": org.slug, "dsSlug": dataset.slug, "path": task.path, "parameters": task.parameters,
        "userName": user.username if user else None,
        "progress": {"percent": 0.0, "phase": "", "message": "", **(task.progress or {})},
        "createdAt": iso(task.created_at), "startedAt": iso(task.started_at), "finishedAt": iso(task.finished_at),
        "logCursor": log_cursor, "logTail": log_tail, "artifact": artifact, "result": task.result,
        "error": task.error, "flowRunId": task.flow_run_id, "attempts": task.attempts, "history": task.history,
    }


def job_view(task: Task, *, org: Organization, dataset: Dataset) -> dict:
    """The Datasets API's snake_case job view of a task."""
    return {
        "job_id": task.id, "tool_id": task.tool_id, "status": task.state, "state": task.state,
        "org": org.slug, "dataset": dataset.slug, "path": task.path, "parameters": task.parameters,
        "progress": {"percent": 0.0, "phase": "", "message": "", **(task.progress or {})},
        "created_at": iso(task.created_at), "started_at": iso(task.started_at),
        "finished_at": iso(task.finished_at), "error": task.error, "result": task.result,
        "result_url": result_url(org, dataset, task) if task.artifact else None,
        "status_url": f"/datasets/jobs/{task.id}", "flow_run_id": task.flow_run_id, "attempts": task.attempts,
    }


def iso(value: datetime | None) -> str | None:
    """UTC ISO-8601 with a trailing Z (or None)."""
    return as_utc(value).isoformat().replace("+00:00", "Z") if value else None
