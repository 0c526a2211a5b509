"""Upload batches: the sessions of share (one-shot uploads) and push (stamp/delta sync), one table for both.

A batch belongs to one dataset and one user and is ``running`` until it is committed or rolled back. What it
receives waits in its staging directory (``staging_dir``) until commit, so nothing reaches the dataset half-done.
Share (``core.registry.share``) and push (``core.registry.push``) build on the lookups here; the stale-batch cleanup
rolls back running batches of either kind that saw no activity for ``upload_batch_timeout_minutes``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from pydantic import Field
from sqlalchemy import delete
from sqlmodel import Session, select

from georeg.core.config import Settings
from georeg.core.errors import Conflict, NotFound, PermissionDenied
from georeg.core.models import (
    BatchFile,
    BatchKind,
    BatchStatus,
    CamelModel,
    Dataset,
    DatasetMeta,
    Entry,
    Organization,
    UploadBatch,
)
from georeg.core.registry.objects import delete_dataset
from georeg.core.storage import remove_tree
from georeg.core.timeutil import as_utc, utcnow

STAGING_DIR_NAME = "batches"


def staging_dir(settings: Settings, token: str) -> Path:
    """Where the batch ``token`` keeps what it received until commit (inside the data dir)."""
    return settings.resolved_data_dir / STAGING_DIR_NAME / token


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


class BatchCleanup(CamelModel):
    """What ``POST /sys/cleanupbatches`` and the scheduled ``cleanup-batches`` flow removed."""

    removed_batches: int = Field(default=0, description="stale running batches rolled back")
    removed_dirs: int = Field(default=0, description="orphan staging directories removed (no running batch)")
    remove_batch_errors: list[str] = Field(default_factory=list, description="batches that could not be rolled back")


def rollback_batch(session: Session, *, settings: Settings, batch: UploadBatch) -> None:
    """Roll back the running ``batch``: its staged files and rows go, and its dataset too when the batch created it
    and it is still empty (a running batch never changes its dataset, so an entry or metadata value there came from
    elsewhere and is kept). Committed here."""
    token = batch.token
    session.execute(delete(BatchFile).where(BatchFile.batch_token == token))
    end_batch(batch, BatchStatus.rolledback)
    session.add(batch)
    dataset = session.get(Dataset, batch.dataset_id)
    empty = dataset is not None and not session.exec(select(Entry.id).where(Entry.dataset_id == dataset.id)).first() \
        and not session.exec(select(DatasetMeta.id).where(DatasetMeta.dataset_id == dataset.id)).first()
    others = session.exec(select(UploadBatch.token).where(
        UploadBatch.dataset_id == batch.dataset_id, UploadBatch.token != token,
        UploadBatch.status == BatchStatus.running.value)).first()
    if batch.created_dataset and empty and others is None:
        org = session.get(Organization, dataset.org_id)
        delete_dataset(session, settings=settings, org=org, dataset=dataset)  # commits; the batch row goes with it
    else:
        session.commit()
    remove_tree(staging_dir(settings, token))


def cleanup_batches(session: Session, *, settings: Settings, now: datetime | None = None) -> BatchCleanup:
    """Roll back running batches of either kind with no activity for ``upload_batch_timeout_minutes`` (their chunk
    files and staged files with them), then remove staging directories of no running batch."""
    cutoff = (now or utcnow()) - timedelta(minutes=settings.upload_batch_timeout_minutes)
    report = BatchCleanup()
    running = session.exec(select(UploadBatch).where(UploadBatch.status == BatchStatus.running.value)).all()
    for batch in running:
        if as_utc(batch.last_activity_at) >= cutoff:
            continue
        token = batch.token
        try:
            rollback_batch(session, settings=settings, batch=batch)
            report.removed_batches += 1
        except Exception as exc:  # noqa: BLE001 - one batch failing must not stop the others
            session.rollback()
            report.remove_batch_errors.append(f"{token}: {exc.__class__.__name__}: {exc}")
    root = settings.resolved_data_dir / STAGING_DIR_NAME
    alive = set(session.exec(select(UploadBatch.token).where(UploadBatch.status == BatchStatus.running.value)).all())
    for directory in sorted(root.iterdir()) if root.is_dir() else []:
        if directory.name not in alive:
            remove_tree(directory)
            report.removed_dirs += 1
    return report
