"""Housekeeping run by the scheduled ``cleanup`` flow: stale temp files and orphans."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel
from sqlalchemy.engine import Engine
from sqlmodel import select

from georeg.core.config import Settings
from georeg.core.db import session_scope
from georeg.core.models import Dataset, Entry, Organization
from georeg.core.storage import TEMP_PREFIX, remove_tree
from georeg.core.tasks import repository as task_repo
from georeg.core.tasks.lifecycle import artifact_dir
from georeg.core.timeutil import utcnow


class CleanupReport(BaseModel):
    temp_files_removed: int = 0
    orphan_entries_removed: int = 0
    orphan_dirs_removed: int = 0
    artifacts_expired: int = 0
    bytes_freed: int = 0


def _older_than(path: Path, cutoff: float) -> bool:
    try:
        return path.lstat().st_mtime < cutoff
    except FileNotFoundError:
        return False


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run_cleanup(settings: Settings, engine: Engine, *, max_age: timedelta | None = None) -> CleanupReport:
    """Remove temp files older than ``max_age`` (default: the temp TTL setting), task artifacts past
    their expiry, entry rows whose dataset is gone, and storage folders of no organization or dataset."""
    report = CleanupReport()
    age = max_age if max_age is not None else timedelta(hours=settings.temp_file_ttl_hours)
    cutoff = (utcnow() - age).timestamp()
    settings.ensure_layout()

    stale = [p for p in settings.tmp_dir.iterdir() if _older_than(p, cutoff)]
    stale += [p for p in settings.storage_dir.rglob(f"{TEMP_PREFIX}*") if _older_than(p, cutoff)]
    for path in stale:
        report.bytes_freed += _size(path)
        remove_tree(path)
        report.temp_files_removed += 1

    with session_scope(engine) as session:
        for task in task_repo.expired_artifacts(session, now=utcnow()):
            directory = artifact_dir(settings, task.id)
            if directory.exists():
                report.bytes_freed += _size(directory)
                remove_tree(directory)
            task.artifact = None
            task.result = {**(task.result or {}), "artifactExpired": True}
            session.add(task)
            report.artifacts_expired += 1
        dataset_ids = select(Dataset.id)
        orphans = session.exec(select(Entry).where(Entry.dataset_id.not_in(dataset_ids))).all()
        for entry in orphans:
            session.delete(entry)
        report.orphan_entries_removed = len(orphans)
        known = {
            (org_slug, ds_slug)
            for org_slug, ds_slug in session.exec(
                select(Organization.slug, Dataset.slug).join(Dataset, Dataset.org_id == Organization.id)
            ).all()
        }
        org_slugs = set(session.exec(select(Organization.slug)).all())

    for org_dir in sorted(p for p in settings.storage_dir.iterdir() if p.is_dir()):
        if org_dir.name not in org_slugs:
            candidates = [org_dir]
        else:
            candidates = [d for d in org_dir.iterdir() if d.is_dir() and (org_dir.name, d.name) not in known]
        for directory in candidates:
            if _older_than(directory, cutoff):
                report.bytes_freed += _size(directory)
                remove_tree(directory)
                report.orphan_dirs_removed += 1
    return report
