"""Objects: files in a dataset, kept consistent between storage and the registry rows."""

from __future__ import annotations

import fnmatch
import os
import uuid
from pathlib import Path, PurePosixPath

from pydantic import BaseModel
from sqlalchemy import update
from sqlmodel import Session, select

from georeg.core.config import Settings
from georeg.core.errors import Conflict, InvalidPath, NotFound, PermissionDenied, QuotaExceeded
from georeg.core.models import Dataset, Entry, EntryType, Organization, Raster, User
from georeg.core.registry import datasets as dataset_repo
from georeg.core.registry import entries as entry_repo
from georeg.core.registry import users as user_repo
from georeg.core.registry.schemas import EntryPublic
from georeg.core.storage import (
    TEMP_PREFIX,
    TempWriter,
    dataset_dir,
    prune_empty_parents,
    remove_tree,
    resolve_inside,
)
from georeg.core.timeutil import utcnow

RASTER_SUFFIXES = frozenset({".tif", ".tiff", ".gtiff", ".geotiff"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp"})
POINTCLOUD_SUFFIXES = frozenset({".las", ".laz", ".ply"})
NETCDF_SUFFIXES = frozenset({".nc", ".nc4", ".netcdf"})


class EntryDescription(BaseModel):
    """Entry fields derived from a file's content (raster metadata for rasters; see ``rasters.entries``)."""

    type: EntryType
    properties: dict = {}
    footprint: dict | None = None
    crs: str | None = None
    bounds: list[float] | None = None

    def apply(self, entry: Entry) -> None:
        """Copy the description onto ``entry``."""
        entry.type = self.type.value
        entry.properties, entry.footprint = self.properties, self.footprint
        entry.crs, entry.bounds = self.crs, self.bounds


def entry_public(entry: Entry) -> EntryPublic:
    return EntryPublic(id=entry.public_id, path=entry.path, type=EntryType(entry.type), size=entry.size,
                       hash=entry.sha256, mtime=entry.mtime, properties=entry.properties, footprint=entry.footprint,
                       crs=entry.crs, bounds=entry.bounds)


def classify(path: str) -> EntryType:
    suffix = PurePosixPath(path).suffix.lower()
    if suffix in RASTER_SUFFIXES:
        return EntryType.raster
    if suffix in IMAGE_SUFFIXES:
        return EntryType.image
    if suffix in POINTCLOUD_SUFFIXES:
        return EntryType.pointcloud
    if suffix in NETCDF_SUFFIXES:
        return EntryType.netcdf
    return EntryType.generic


def storage_root(settings: Settings, org: Organization, dataset: Dataset) -> Path:
    return dataset_dir(settings.storage_dir, org.slug, dataset.slug)


def resolve_mounted(settings: Settings, raw_path: str) -> Path:
    """An existing file under one of ``GEOREG_MOUNT_ROOTS`` (symlinks and '..' resolved first)."""
    if not raw_path or "\x00" in raw_path:
        raise InvalidPath("path is empty or contains NUL")
    roots = [root.expanduser().resolve() for root in settings.mount_roots]
    if not roots:
        raise PermissionDenied("no mounted roots are configured (GEOREG_MOUNT_ROOTS)", code="no_mount_roots")
    candidate = Path(raw_path).expanduser()
    try:
        resolved = candidate.resolve() if candidate.is_absolute() else (roots[0] / candidate).resolve()
        inside = any(resolved == root or root in resolved.parents for root in roots)
        is_file = inside and resolved.is_file()
    except (OSError, RuntimeError) as exc:  # a name too long, a symlink loop
        raise InvalidPath(f"{raw_path!r} cannot be resolved: {getattr(exc, 'strerror', None) or exc}") from exc
    if not inside:
        raise PermissionDenied(f"{raw_path!r} is outside the mounted roots", code="outside_mount_roots")
    if not is_file:
        raise NotFound(f"no file at {raw_path!r}", code="file_not_found")
    return resolved


def entry_files(session: Session, settings: Settings, root: Path, entries: list[Entry]) -> dict[str, Path]:
    """Entry path -> where its bytes are: the file in the dataset's storage ``root`` or, for a raster registered by
    path, the referenced file, checked against the mounted roots on every use (a root taken out of
    ``GEOREG_MOUNT_ROOTS`` or a symlink turned outwards stops serving). Missing files raise ``file_missing``."""
    mounted: dict[int, str] = {}
    if entries:
        mounted = dict(session.exec(
            select(Raster.entry_id, Raster.source_path).join(Entry, Entry.id == Raster.entry_id)
            .where(Entry.dataset_id == entries[0].dataset_id, Raster.source_path.is_not(None))
        ).all())
    files, missing = {}, []
    for entry in entries:
        if entry.id in mounted:
            try:
                files[entry.path] = resolve_mounted(settings, mounted[entry.id])
            except NotFound:
                missing.append(f"{entry.path} (mounted {mounted[entry.id]})")
            continue
        files[entry.path] = resolve_inside(root, entry.path)
        if not files[entry.path].is_file():
            missing.append(entry.path)
    if missing:
        raise NotFound(f"files missing from storage: {', '.join(missing[:5])}", code="file_missing")
    return files


def check_storage_quota(session: Session, *, org: Organization, incoming: int, replacing: int) -> None:
    """The owner's storage quota (if any) must hold ``incoming`` more bytes."""
    if org.owner_id is None:
        return
    owner = session.get(User, org.owner_id)
    if owner is None or owner.storage_quota is None:
        return
    used = user_repo.storage_used(session, user=owner)
    if used - replacing + incoming > owner.storage_quota:
        raise QuotaExceeded(
            f"storage quota of {owner.storage_quota} bytes exceeded for user {owner.username!r}",
            code="storage_quota_exceeded",
        )


def lock_dataset(session: Session, *, org: Organization, dataset: Dataset) -> None:
    """Take the dataset's write lock (SQLite: the database's, PostgreSQL: the dataset row's) before reading what a
    write depends on, as share and push commits do: the writers of one dataset go one at a time, each seeing what the
    previous one committed (two moves of one file, two uploads creating one folder: one wins, the other gets a 409 or
    a 404, never an IntegrityError or a row whose file went elsewhere). The dataset is read again under the lock: a
    rename committed meanwhile moved its folder."""
    locked = session.execute(update(Dataset).where(Dataset.id == dataset.id).values(updated_at=utcnow()))
    if locked.rowcount == 0:
        raise NotFound(f"dataset {org.slug}/{dataset.slug} not found", code="dataset_not_found")
    session.refresh(dataset)
    if dataset.org_id != org.id:
        raise Conflict(f"dataset {dataset.slug!r} moved to another organization meanwhile", code="dataset_moved")


def store_object(
    session: Session, *, settings: Settings, org: Organization, dataset: Dataset, path: str, upload: TempWriter,
    description: EntryDescription,
) -> Entry:
    """Move the finished, described upload in ``upload`` into place and register the entry (quota and path
    conflicts checked first; nothing is moved when they fail and the caller discards the temp file)."""
    lock_dataset(session, org=org, dataset=dataset)
    existing = entry_repo.find_entry(session, dataset=dataset, path=path)
    check_storage_quota(session, org=org, incoming=upload.size, replacing=existing.size if existing else 0)
    root = storage_root(settings, org, dataset)
    destination = resolve_inside(root, path)
    if destination.is_dir():
        raise Conflict(f"{path!r} is a directory", code="path_conflict")
    entry = entry_repo.upsert_file(session, dataset=dataset, path=path, size=upload.size, sha256=upload.sha256,
                                   **description.model_dump(mode="json"))
    dataset_repo.touch(session, dataset=dataset)
    commit_with_file(session, upload, destination)
    return entry


def commit_with_file(session: Session, upload: TempWriter, destination: Path) -> None:
    """Move the finished upload into place, then commit; the file goes again if the commit fails."""
    upload.finish(destination)
    try:
        session.commit()
    except Exception:
        destination.unlink(missing_ok=True)
        raise


def delete_objects(
    session: Session, *, settings: Settings, org: Organization, dataset: Dataset, paths: list[str]
) -> int:
    """Delete entries (directories recursively) and their files; all or nothing in the registry."""
    lock_dataset(session, org=org, dataset=dataset)
    root = storage_root(settings, org, dataset)
    removed = 0
    for path in paths:
        removed += len(entry_repo.delete_subtree(session, dataset=dataset, path=path))
    dataset_repo.touch(session, dataset=dataset)
    commit_removing(session, [resolve_inside(root, path) for path in paths], root=root)
    return removed


def commit_removing(session: Session, targets: list[Path], *, root: Path) -> None:
    """Commit ``session``, which deleted the rows of ``targets`` (files or folders under ``root``) under the
    dataset's write lock, and remove them with it. Before the commit, still under the lock, each is renamed aside
    into ``root`` (a temp name, which the ``cleanup`` flow's TTL also covers) and its emptied parents are pruned;
    if the commit fails they are renamed back, else deleted after it. So a writer placing a file at one of these
    paths after the commit keeps it, and no folder it writes into is pruned under it. A rename needs no free space:
    deleting works on a full disk."""
    parked: list[tuple[Path, Path]] = []
    try:
        for target in targets:
            if target.exists() or target.is_symlink():
                aside = root / f"{TEMP_PREFIX}removed-{uuid.uuid4().hex}"
                os.replace(target, aside)
                parked.append((target, aside))
                prune_empty_parents(target.parent, stop=root)
        session.commit()
    except BaseException:
        for target, aside in reversed(parked):
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(aside, target)
        raise
    for _, aside in parked:
        remove_tree(aside)


def move_object(
    session: Session, *, settings: Settings, org: Organization, dataset: Dataset, source: str, destination: str
) -> list[Entry]:
    lock_dataset(session, org=org, dataset=dataset)
    root = storage_root(settings, org, dataset)
    entries = entry_repo.move_subtree(session, dataset=dataset, source=source, destination=destination)
    dataset_repo.touch(session, dataset=dataset)
    source_path = resolve_inside(root, source)
    target_path = resolve_inside(root, destination)
    if source_path.exists():
        target_path.parent.mkdir(parents=True, exist_ok=True)
        source_path.rename(target_path)
    try:
        session.commit()
    except Exception:
        if target_path.exists():
            target_path.rename(source_path)
        raise
    prune_empty_parents(source_path.parent, stop=root)
    return entries


def remove_dataset_files(settings: Settings, *, org_slug: str, dataset_slug: str) -> None:
    remove_tree(dataset_dir(settings.storage_dir, org_slug, dataset_slug))


def remove_org_files(settings: Settings, *, org_slug: str) -> None:
    remove_tree(settings.storage_dir / org_slug)


def rename_dataset_files(settings: Settings, *, org_slug: str, old_slug: str, new_slug: str) -> None:
    old = dataset_dir(settings.storage_dir, org_slug, old_slug)
    if old.exists():
        new = dataset_dir(settings.storage_dir, org_slug, new_slug)
        new.parent.mkdir(parents=True, exist_ok=True)
        old.rename(new)


def delete_dataset(session: Session, *, settings: Settings, org: Organization, dataset: Dataset) -> None:
    """Delete a dataset's rows, then its files."""
    slug = dataset.slug
    session.delete(dataset)
    session.commit()
    remove_dataset_files(settings, org_slug=org.slug, dataset_slug=slug)


def rename_dataset(session: Session, *, settings: Settings, org: Organization, dataset: Dataset,
                   new_slug: str) -> Dataset:
    """Give a dataset a new slug: its folder moves with it, and back again when the rename cannot be committed."""
    lock_dataset(session, org=org, dataset=dataset)
    old_slug = dataset.slug
    dataset_repo.rename_dataset(session, org=org, dataset=dataset, new_slug=new_slug)
    rename_dataset_files(settings, org_slug=org.slug, old_slug=old_slug, new_slug=new_slug)
    try:
        session.commit()
    except Exception:
        rename_dataset_files(settings, org_slug=org.slug, old_slug=new_slug, new_slug=old_slug)
        raise
    return dataset


def search_entries(session: Session, *, dataset: Dataset, pattern: str, base: str, recursive: bool) -> list[Entry]:
    """Entries under ``base`` whose name (or relative path, when the glob ``pattern`` has a '/') matches."""
    candidates = (entry_repo.subtree(session, dataset=dataset, path=base) if base
                  else entry_repo.all_entries(session, dataset=dataset))
    pattern = pattern or "*"
    matches = []
    for entry in candidates:
        relative = entry.path[len(base) + 1 :] if base else entry.path
        if not relative or (not recursive and "/" in relative):
            continue
        subject = relative if "/" in pattern else PurePosixPath(relative).name
        if fnmatch.fnmatchcase(subject, pattern):
            matches.append(entry)
    return matches


def create_folder(session: Session, *, settings: Settings, org: Organization, dataset: Dataset, path: str) -> Entry:
    """A folder entry at ``path`` (with its parents) and its directory in storage; an existing folder is fine."""
    lock_dataset(session, org=org, dataset=dataset)
    existing = entry_repo.find_entry(session, dataset=dataset, path=path)
    if existing is not None and existing.type != EntryType.directory.value:
        raise Conflict(f"{path!r} is a file", code="path_conflict")
    entry_repo.ensure_directories(session, dataset=dataset, path=f"{path}/x")
    resolve_inside(storage_root(settings, org, dataset), path).mkdir(parents=True, exist_ok=True)
    dataset_repo.touch(session, dataset=dataset)
    session.commit()
    return entry_repo.get_entry(session, dataset=dataset, path=path)


def download_selection(session: Session, *, settings: Settings, org: Organization, dataset: Dataset,
                       paths: list[str]) -> tuple[Entry | None, dict[str, Path]]:
    """What a download of ``paths`` (normalized; ``""`` is everything) sends: (the entry, its file) for one file,
    else (None, every file under the paths by entry path)."""
    root = storage_root(settings, org, dataset)
    if len(paths) == 1 and paths[0]:
        entry = entry_repo.get_entry(session, dataset=dataset, path=paths[0])
        if entry.type != EntryType.directory.value:
            return entry, entry_files(session, settings, root, [entry])
    entries: dict[str, Entry] = {}
    for path in paths:
        found = (entry_repo.subtree(session, dataset=dataset, path=path) if path
                 else entry_repo.all_files(session, dataset=dataset))
        if path and not found:
            raise NotFound(f"no entry at {path!r}", code="entry_not_found")
        entries.update((entry.path, entry) for entry in found if entry.type != EntryType.directory.value)
    return None, entry_files(session, settings, root, list(entries.values()))
