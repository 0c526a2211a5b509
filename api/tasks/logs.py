"""A task's log, read from its flow run's Prefect logs: the tail shown with the task, and an opaque cursor to
follow it with, so that every line arrives once, in order.

The cursor holds a timestamp watermark and the ids already returned near it; each read goes back
``LOG_REREAD`` before the watermark and skips known ids, so lines that reach Prefect late are neither lost nor
repeated. A log is ``complete`` once the run ended ``LOG_SETTLE`` ago and nothing new came.
"""

from __future__ import annotations

import base64
import json
import logging
from datetime import datetime, timedelta

from georeg.api.prefect_client import LogLine, PrefectClient
from georeg.core.errors import InvalidInput, ServiceUnavailable
from georeg.core.models import Task
from georeg.core.tasks.model import TaskState
from georeg.core.tasks.schemas import TaskLog
from georeg.core.timeutil import as_utc, utcnow

logger = logging.getLogger(__name__)

LOG_REREAD = timedelta(seconds=3)
LOG_SETTLE = timedelta(seconds=5)
LOG_TAIL = 200


def encode_cursor(watermark: datetime | None, seen: list[str]) -> str:
    raw = json.dumps({"t": watermark.isoformat() if watermark else None, "s": seen}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[datetime | None, set[str]]:
    if not cursor:
        return None, set()
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        watermark = as_utc(datetime.fromisoformat(raw["t"])) if raw["t"] else None
        return watermark, {str(item) for item in raw["s"]}
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInput("invalid log cursor", code="invalid_cursor") from exc


def _line(line: LogLine) -> str:
    return f"{as_utc(line.timestamp).isoformat()} {line.message}"


async def read_log(client: PrefectClient, task: Task, cursor: str | None, *, limit: int = 500) -> TaskLog:
    """New log lines of ``task`` since ``cursor`` (at most ``limit``)."""
    watermark, seen = decode_cursor(cursor)
    fresh: list[LogLine] = []
    logs: list[LogLine] = []
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
    return TaskLog(lines=[_line(line) for line in fresh], cursor=encode_cursor(watermark, keep),
                   complete=settled and not fresh)


async def log_tail(client: PrefectClient, task: Task) -> tuple[list[str], str | None]:
    """The last ``LOG_TAIL`` lines of the run's log and a cursor to follow on from them; no lines when Prefect
    cannot answer (the task is shown without them rather than not at all)."""
    if not task.flow_run_id:
        return [], None
    try:
        logs = await client.logs(task.flow_run_id, after=None, limit=LOG_TAIL, newest_first=True)
    except ServiceUnavailable as exc:
        logger.info("task %s: log tail not read: %s", task.id, exc)
        return [], None
    if not logs:
        return [], None
    watermark = max(as_utc(line.timestamp) for line in logs)
    keep = sorted(line.id for line in logs if as_utc(line.timestamp) >= watermark - LOG_REREAD)
    return [_line(line) for line in logs], encode_cursor(watermark, keep)
