"""Objects: files in a dataset, kept consistent between storage and the registry rows."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from sqlmodel import Session, select

from georeg.core.config import Settings
from georeg.core.errors import Conflict, InvalidPath, NotFound, PermissionDenied, QuotaExceeded
from georeg.core.models import Dataset, Entry, EntryType, Organization, Raster, User
from georeg.core.rasters.reader import (
    IMAGE_SUFFIXES,
    NETCDF_SUFFIXES,
    POINTCLOUD_SUFFIXES,
    RASTER_SUFFIXES,
    inspect_raster,
)
from georeg.core.registry import datasets as dataset_repo
from georeg.core.registry import entries as entry_repo
from georeg.core.registry import users as user_repo
from georeg.core.storage import TempWriter, dataset_dir, prune_empty_parents, remove_tree, resolve_inside


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


def describe_file(file_path: Path, entry_type: EntryType) -> dict:
    """Entry fields derived from the file's content (raster metadata for rasters)."""
    if entry_type is not EntryType.raster:
        return {"type": entry_type.value, "properties": {}, "footprint": None, "crs": None, "bounds": None}
    info = inspect_raster(file_path)
    properties = info.model_dump(exclude={"footprint", "crs_wkt"})
    properties["crs_wkt"] = info.crs_wkt
    return {
        "type": EntryType.raster.value,
        "properties": properties,
        "footprint": info.footprint,
        "crs": info.crs_label,
        "bounds": info.bounds,
    }


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
    resolved = candidate.resolve() if candidate.is_absolute() else (roots[0] / candidate).resolve()
    if not any(resolved == root or root in resolved.parents for root in roots):
        raise PermissionDenied(f"{raw_path!r} is outside the mounted roots", code="outside_mount_roots")
    if not resolved.is_file():
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


def store_object(
    session: Session, *, settings: Settings, org: Organization, dataset: Dataset, path: str, upload: TempWriter
) -> Entry:
    """Validate the finished upload in ``upload``, move it into place and register the entry.

    Raises before anything is moved when the content is invalid; the caller discards the temp file.
    """
    entry_type = classify(path)
    fields = describe_file(upload.path, entry_type)
    existing = entry_repo.find_entry(session, dataset=dataset, path=path)
    check_storage_quota(session, org=org, incoming=upload.size, replacing=existing.size if existing else 0)
    root = storage_root(settings, org, dataset)
    destination = resolve_inside(root, path)
    if destination.is_dir():
        raise Conflict(f"{path!r} is a directory", code="path_conflict")
    entry = entry_repo.upsert_file(session, dataset=dataset, path=path, size=upload.size, sha256=upload.sha256, **fields)
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


def delete_objects(session: Session, *, settings: Settings, org: Organization, dataset: Dataset, paths: list[str]) -> int:
    """Delete entries (directories recursively) and their files; all or nothing in the registry."""
    root = storage_root(settings, org, dataset)
    removed = 0
    for path in paths:
        removed += len(entry_repo.delete_subtree(session, dataset=dataset, path=path))
    dataset_repo.touch(session, dataset=dataset)
    session.commit()
    for path in paths:
        target = resolve_inside(root, path)
        remove_tree(target)
        prune_empty_parents(target.parent, stop=root)
    return removed


def move_object(
    session: Session, *, settings: Settings, org: Organization, dataset: Dataset, source: str, destination: str
) -> list[Entry]:
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
