"""Upload batches: the sessions of share (one-shot uploads) and push (stamp/delta sync), one table for both.

A batch belongs to one dataset and one user and is ``running`` until it is committed or rolled back. What it
receives waits in its staging directory (``staging_dir``) until commit, so nothing reaches the dataset half-done.
Share (``core.registry.share``) and push (``core.registry.push``) build on the lookups here; the stale-batch cleanup
rolls back running batches of either kind that saw no activity for ``upload_batch_timeout_minutes``.
"""

from __future__ import annotations

from pathlib import Path

from sqlmodel import Session, select

from georeg.core.config import Settings
from georeg.core.errors import Conflict, NotFound, PermissionDenied
from georeg.core.models import BatchKind, BatchStatus, UploadBatch
from georeg.core.timeutil import utcnow

STAGING_DIR_NAME = "batches"


def staging_dir(settings: Settings, token: str) -> Path:
    """Where the batch ``token`` keeps what it received until commit (inside the data dir)."""
    return settings.data_dir / STAGING_DIR_NAME / token


def get_batch(session: Session, *, token: str, kind: BatchKind, user_id: int | None,
              running: bool = True) -> UploadBatch:
    """The ``kind`` batch ``token`` of user ``user_id``: ``404`` unknown (or of another kind), ``403`` another user's,
    ``409 batch_not_running`` when ``running`` is asked and the batch is committed or rolled back."""
    batch = session.get(UploadBatch, token) if token and len(token) <= 32 else None
    if batch is None or batch.kind != kind.value:
        raise NotFound(f"no {kind.value} batch {token[:32]!r}", code="batch_not_found")
    if batch.user_id != user_id:
        raise PermissionDenied(f"{kind.value} batch {token!r} belongs to another user")
    if running and batch.status != BatchStatus.running.value:
        raise Conflict(f"{kind.value} batch {token!r} is {batch.status}", code="batch_not_running")
    return batch


def touch(batch: UploadBatch) -> None:
    """Record activity on ``batch`` (the stale-batch cleanup measures from here)."""
    batch.last_activity_at = utcnow()


def end_batch(batch: UploadBatch, status: BatchStatus) -> None:
    """Mark ``batch`` committed or rolled back, now."""
    batch.status = status.value
    batch.ended_at = utcnow()
    batch.last_activity_at = batch.ended_at


def running_batches(session: Session, *, dataset_id: int, user_id: int, kind: BatchKind) -> list[UploadBatch]:
    """The running ``kind`` batches of ``user_id`` on ``dataset_id``."""
    return list(session.exec(select(UploadBatch).where(
        UploadBatch.dataset_id == dataset_id, UploadBatch.user_id == user_id,
        UploadBatch.kind == kind.value, UploadBatch.status == BatchStatus.running.value)))
