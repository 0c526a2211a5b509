"""Entries: files and directories inside a dataset."""

from __future__ import annotations

from sqlalchemy import delete, or_
from sqlmodel import Session, select

from georeg.core.errors import Conflict, InvalidPath, NotFound
from georeg.core.models import Dataset, DatasetMeta, Entry, EntryType
from georeg.core.storage import parent_paths
from georeg.core.timeutil import utcnow


def _subtree(dataset: Dataset, path: str):  # noqa: ANN202
    return select(Entry).where(Entry.dataset_id == dataset.id, _under(Entry.path, path))


def _under(column, path: str):  # noqa: ANN001, ANN202
    """``column`` is ``path`` or a path below it."""
    return or_(column == path, column.startswith(f"{path}/", autoescape=True))


def find_entry(session: Session, *, dataset: Dataset, path: str) -> Entry | None:
    return session.exec(select(Entry).where(Entry.dataset_id == dataset.id, Entry.path == path)).first()


def entries_at(session: Session, *, dataset: Dataset, paths: list[str]) -> list[Entry]:
    """The entries of ``dataset`` at ``paths`` (those that exist), by path."""
    found: list[Entry] = []
    for start in range(0, len(paths), 500):
        chunk = paths[start:start + 500]
        found.extend(session.exec(select(Entry).where(Entry.dataset_id == dataset.id, Entry.path.in_(chunk))).all())
    return sorted(found, key=lambda entry: entry.path)


def get_entry(session: Session, *, dataset: Dataset, path: str) -> Entry:
    entry = find_entry(session, dataset=dataset, path=path)
    if entry is None:
        raise NotFound(f"no entry at {path!r}", code="entry_not_found")
    return entry


def ensure_directories(session: Session, *, dataset: Dataset, path: str) -> None:
    """Create directory entries for every parent of ``path``; a file in the way is a conflict."""
    for parent in parent_paths(path):
        existing = find_entry(session, dataset=dataset, path=parent)
        if existing is None:
            session.add(Entry(dataset_id=dataset.id, path=parent, type=EntryType.directory.value))
            session.flush()
        elif existing.type != EntryType.directory.value:
            raise Conflict(f"{parent!r} is a file, not a directory", code="path_conflict")


def upsert_file(session: Session, *, dataset: Dataset, path: str, **fields: object) -> Entry:
    """Insert or replace the file entry at ``path`` (parents become directory entries)."""
    ensure_directories(session, dataset=dataset, path=path)
    entry = find_entry(session, dataset=dataset, path=path)
    if entry is not None and entry.type == EntryType.directory.value:
        raise Conflict(f"{path!r} is a directory", code="path_conflict")
    if entry is None:
        entry = Entry(dataset_id=dataset.id, path=path)
    for name, value in fields.items():
        setattr(entry, name, value)
    entry.mtime = utcnow()
    session.add(entry)
    session.flush()
    return entry


def list_children(session: Session, *, dataset: Dataset, path: str) -> list[Entry]:
    """Direct children of directory ``path`` ("" is the root); a file path lists that file."""
    if path:
        entry = get_entry(session, dataset=dataset, path=path)
        if entry.type != EntryType.directory.value:
            return [entry]
        prefix = f"{path}/"
        rows = session.exec(
            select(Entry).where(Entry.dataset_id == dataset.id, Entry.path.startswith(prefix, autoescape=True))
        ).all()
        return sorted((e for e in rows if "/" not in e.path[len(prefix) :]), key=lambda e: e.path)
    rows = session.exec(select(Entry).where(Entry.dataset_id == dataset.id, Entry.path.not_like("%/%"))).all()
    return sorted(rows, key=lambda e: e.path)


def subtree(session: Session, *, dataset: Dataset, path: str) -> list[Entry]:
    """The entry at ``path`` and everything below it."""
    return list(session.exec(_subtree(dataset, path).order_by(Entry.path)).all())


def all_entries(session: Session, *, dataset: Dataset) -> list[Entry]:
    return list(session.exec(select(Entry).where(Entry.dataset_id == dataset.id).order_by(Entry.path)).all())


def all_files(session: Session, *, dataset: Dataset) -> list[Entry]:
    return list(
        session.exec(
            select(Entry)
            .where(Entry.dataset_id == dataset.id, Entry.type != EntryType.directory.value)
            .order_by(Entry.path)
        ).all()
    )


def delete_entry(session: Session, *, entry: Entry) -> None:
    """Delete one entry row and the metadata of its path."""
    session.execute(delete(DatasetMeta).where(DatasetMeta.dataset_id == entry.dataset_id,
                                              DatasetMeta.path == entry.path))
    session.delete(entry)


def delete_subtree(session: Session, *, dataset: Dataset, path: str) -> list[Entry]:
    """Delete the entry at ``path``, everything below it, and their metadata."""
    entries = subtree(session, dataset=dataset, path=path)
    if not entries:
        raise NotFound(f"no entry at {path!r}", code="entry_not_found")
    session.execute(delete(DatasetMeta).where(DatasetMeta.dataset_id == dataset.id, _under(DatasetMeta.path, path)))
    for entry in entries:
        session.delete(entry)
    session.flush()
    return entries


def move_subtree(session: Session, *, dataset: Dataset, source: str, destination: str) -> list[Entry]:
    """Rename ``source`` (file or directory) to ``destination``, with everything below it and their metadata;
    refuses to overwrite."""
    if destination == source or destination.startswith(f"{source}/"):
        raise InvalidPath("cannot move an entry into itself")
    entries = subtree(session, dataset=dataset, path=source)
    if not entries:
        raise NotFound(f"no entry at {source!r}", code="entry_not_found")
    if find_entry(session, dataset=dataset, path=destination) is not None:
        raise Conflict(f"an entry already exists at {destination!r}", code="entry_exists")
    ensure_directories(session, dataset=dataset, path=destination)
    for entry in entries:
        entry.path = destination + entry.path[len(source) :]
        entry.mtime = utcnow()
        session.add(entry)
    for meta in session.exec(select(DatasetMeta).where(DatasetMeta.dataset_id == dataset.id,
                                                       _under(DatasetMeta.path, source))).all():
        meta.path = destination + meta.path[len(source) :]
        session.add(meta)
    session.flush()
    return entries
