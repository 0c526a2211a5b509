"""Push: sync a client's dataset to the registry by stamps and a delta (DroneDB's ``ddb push``).

``init`` compares the client's last-synced server checksum with the dataset's: when they differ the client must pull
first. Otherwise the delta between the client's stamp and the server's is kept in a push batch (``state``): adds
(client entries whose path+hash the server lacks), removes (server paths the client lacks), the files whose content
the server holds under no path (``needed_files``) and the metadata ids it lacks (``needed_meta``). ``upload`` stages
needed files in the batch's staging directory, ``meta`` the needed metadata values in the batch, and ``commit``
applies the whole delta in one transaction after taking the dataset's write lock and checking the dataset did not
change since init; files move into the dataset only then and are put back when the transaction fails.

A first push (empty checksum) is accepted only onto an empty dataset (no entries, no metadata); onto one with content
the client must pull first, as DroneDB does.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from georeg.core.config import Settings
from georeg.core.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from georeg.core.models import (
    BatchFile,
    BatchKind,
    BatchStatus,
    Dataset,
    DatasetMeta,
    Entry,
    EntryType,
    Organization,
    Permission,
    UploadBatch,
)
from georeg.core.registry import access
from georeg.core.registry import batches as batch_repo
from georeg.core.registry import datasets as dataset_repo
from georeg.core.registry import meta as meta_repo
from georeg.core.registry import orgs as org_repo
from georeg.core.registry.actor import Actor, require_user
from georeg.core.registry.objects import (
    EntryDescription,
    check_storage_quota,
    classify,
    commit_with_file,
    storage_root,
)
from georeg.core.registry.schemas import DatasetStamp, PushInit, PushReceived
from georeg.core.storage import (
    TempWriter,
    normalize_entry_path,
    parent_paths,
    prune_empty_parents,
    remove_tree,
    resolve_inside,
)
from georeg.core.timeutil import utcnow

MAX_STAMP_BYTES = 64 * 1024 * 1024
MAX_META_BYTES = 16 * 1024 * 1024
_HASH = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 500  # ids per IN (...) list

Describe = Callable[[Path, EntryType], EntryDescription]


@dataclass(frozen=True)
class ClientStamp:
    entries: dict[str, str]  # path -> sha256, '' for a folder
    meta: list[str]


def _invalid(message: str) -> InvalidInput:
    return InvalidInput(f"invalid stamp: {message}", code="invalid_stamp")


def _meta_id(value: Any) -> str:
    try:
        if not isinstance(value, str) or len(value) > 64:
            raise ValueError
        return str(uuid.UUID(value))
    except ValueError:
        raise InvalidInput(f"metadata id {str(value)[:64]!r} is not a UUID", code="invalid_meta_id") from None


def parse_stamp(raw: str) -> ClientStamp:
    """The client's stamp ``{entries: [{path: sha256 or ''}], meta: [ids]}`` (``entries`` may also be one object);
    ``400 invalid_stamp`` for anything else: not JSON, another shape, a hash that is not 64 lowercase hex digits, a
    path that is not a clean relative path (``invalid_path``), or an entry whose parent is not a folder of the
    stamp."""
    try:
        value = meta_repo.parse_data(raw, what="stamp", max_bytes=MAX_STAMP_BYTES) if raw.strip() else None
    except InvalidInput as exc:
        raise _invalid(exc.message) from exc
    if not isinstance(value, dict) or not isinstance(value.get("entries", []), list | dict) \
            or not isinstance(value.get("meta", []), list):
        raise _invalid('expected a JSON object {"entries": [{"<path>": "<sha256>"}], "meta": ["<id>"]}')
    raw_entries = value.get("entries", [])
    pairs = list(raw_entries.items()) if isinstance(raw_entries, dict) else []
    for item in raw_entries if isinstance(raw_entries, list) else []:
        if not isinstance(item, dict) or len(item) != 1:
            raise _invalid("each entry must be an object {path: hash}")
        pairs.extend(item.items())
    entries: dict[str, str] = {}
    for path, digest in pairs:
        if not isinstance(digest, str) or (digest and not _HASH.fullmatch(digest)):
            raise _invalid(f"the hash of {path[:200]!r} must be 64 lowercase hex digits, or '' for a folder")
        normalized = normalize_entry_path(path)
        if normalized != path or path in entries:
            raise _invalid(f"path {path[:200]!r} is not normalized or appears twice")
        entries[path] = digest
    for path in entries:
        if any(entries.get(parent) != "" for parent in parent_paths(path)):
            raise _invalid(f"the parents of {path[:200]!r} must be folders of the stamp")
    return ClientStamp(entries=entries, meta=sorted({_meta_id(i) for i in value.get("meta", [])}))


def _server_entries(session: Session, dataset: Dataset) -> dict[str, str]:
    rows = session.exec(select(Entry.path, Entry.sha256).where(Entry.dataset_id == dataset.id)).all()
    return {path: sha or "" for path, sha in rows}


def _server_meta(session: Session, dataset: Dataset) -> set[str]:
    return set(session.exec(select(DatasetMeta.id).where(DatasetMeta.dataset_id == dataset.id)).all())


def init_push(session: Session, *, actor: Actor, org_slug: str, ds_slug: str, checksum: str,
              raw_stamp: str) -> PushInit:
    """Start a push of the client's stamp ``raw_stamp`` (JSON text, see :func:`parse_stamp`) to ``org_slug/ds_slug``
    (created when missing: write permission on the organization; otherwise write permission on the dataset). See the
    module doc for the delta."""
    user = require_user(actor)
    org = org_repo.get_org(session, slug=org_slug)
    dataset = dataset_repo.find_dataset(session, org=org, slug=ds_slug)
    created = dataset is None
    if created:
        access.check_org(session, org=org, actor=actor, need=Permission.write)
        dataset = dataset_repo.create_dataset(session, org=org, slug=ds_slug)
    else:
        access.check_dataset(session, org=org, dataset=dataset, actor=actor, need=Permission.write)
    stamp = parse_stamp(raw_stamp)
    server = dataset_repo.dataset_stamp(session, dataset=dataset)
    if checksum != server.checksum and not (checksum == "" and not server.entries and not server.meta):
        session.rollback()
        return PushInit(pull_required=True, needed_files=[], needed_meta=[], token=None)
    entries = _server_entries(session, dataset)
    held = {digest for digest in entries.values() if digest}
    adds = {path: digest for path, digest in stamp.entries.items() if entries.get(path) != digest}
    removes = sorted(path for path in entries if path not in stamp.entries)
    needed_files = sorted(path for path, digest in adds.items() if digest and digest not in held)
    needed_meta = sorted(set(stamp.meta) - set(server.meta))
    batch = UploadBatch(kind=BatchKind.push.value, dataset_id=dataset.id, user_id=user.id, created_dataset=created,
                        state={"base": server.checksum, "adds": adds, "removes": removes, "needed_files": needed_files,
                               "needed_meta": needed_meta, "client_meta": stamp.meta, "meta": {}})
    session.add(batch)
    try:
        session.commit()
    except IntegrityError as exc:  # another request created the dataset at the same moment
        session.rollback()
        raise Conflict(f"dataset {org_slug}/{ds_slug} was created meanwhile: push again",
                       code="dataset_exists") from exc
    return PushInit(pull_required=False, needed_files=needed_files, needed_meta=needed_meta, token=batch.token)


def get_push(session: Session, *, token: str, dataset: Dataset, actor: Actor) -> UploadBatch:
    """The running push batch ``token`` of the caller on ``dataset`` (404 / 403 / 409 as ``batches.get_batch``)."""
    user = require_user(actor)
    batch = batch_repo.get_batch(session, token=token, kind=BatchKind.push, user_id=user.id)
    if batch.dataset_id != dataset.id:
        raise NotFound(f"no push batch {token[:32]!r} on this dataset", code="batch_not_found")
    return batch


def _staged_name(path: str) -> str:
    return hashlib.sha256(path.encode()).hexdigest()


def receive_file(session: Session, *, settings: Settings, batch: UploadBatch, path: str,
                 upload: TempWriter) -> PushReceived:
    """Stage the finished ``upload`` as ``path`` of the push: only a path of ``neededFiles`` (``400 file_not_needed``)
    whose content has the hash of the stamp (``400 hash_mismatch``); a path sent again replaces the earlier file."""
    if path not in batch.state["needed_files"]:
        raise InvalidInput(f"{path!r} is not a needed file of this push", code="file_not_needed")
    expected = batch.state["adds"][path]
    if upload.sha256 != expected:
        raise InvalidInput(f"the content of {path!r} has sha256 {upload.sha256}, the stamp says {expected}",
                           code="hash_mismatch")
    row = session.exec(select(BatchFile).where(BatchFile.batch_token == batch.token, BatchFile.path == path)).first()
    row = row or BatchFile(batch_token=batch.token, path=path)
    row.size, row.sha256, row.added_on = upload.size, upload.sha256, utcnow()
    session.add(row)
    batch_repo.touch(batch)
    session.add(batch)
    destination = batch_repo.staging_dir(settings, batch.token) / _staged_name(path)
    commit_with_file(session, upload, destination)
    return PushReceived(path=path, hash=upload.sha256, size=upload.size)


def _mtime(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        moment = datetime.fromtimestamp(value, tz=UTC)
    elif isinstance(value, str):
        moment = datetime.fromisoformat(value)
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    else:
        raise ValueError("mtime must be epoch seconds or an ISO 8601 time")
    return moment.astimezone(UTC).isoformat()


def receive_meta(session: Session, *, batch: UploadBatch, dataset: Dataset, raw: str | bytes) -> PushReceived:
    """Stage the metadata values in ``raw`` (a JSON array of ``{id, path, key, data, mtime}``), all or none: each id
    must be one of ``neededMeta`` (``400 meta_not_needed``), the key valid (``400 invalid_meta_key``), the path ''
    or an entry the dataset will hold, mtime epoch seconds or ISO 8601."""
    records = meta_repo.parse_data(raw, what="meta", max_bytes=MAX_META_BYTES)
    if not isinstance(records, list):
        raise InvalidInput("meta must be a JSON array of {id, path, key, data, mtime}", code="invalid_meta")
    state = batch.state
    final_paths = _final_paths(session, dataset, state)
    staged = dict(state["meta"])
    for record in records:
        if not isinstance(record, dict) or not {"id", "key", "data"} <= set(record):
            raise InvalidInput("each meta value must be an object {id, path, key, data, mtime}", code="invalid_meta")
        meta_id = _meta_id(record["id"])
        if meta_id not in state["needed_meta"]:
            raise InvalidInput(f"metadata {meta_id} is not needed by this push", code="meta_not_needed")
        key = meta_repo.validate_key(record["key"] if isinstance(record["key"], str) else "")
        path = normalize_entry_path(record.get("path") or "", allow_root=True)
        if path and path not in final_paths:
            raise InvalidInput(f"metadata {meta_id} belongs to {path!r}, which the pushed dataset has not",
                               code="entry_not_found")
        if len(json.dumps(record["data"])) > meta_repo.MAX_DATA_BYTES:
            raise PayloadTooLarge(f"metadata {meta_id} is larger than {meta_repo.MAX_DATA_BYTES} bytes",
                                  code="meta_too_large")
        try:
            mtime = _mtime(record.get("mtime", 0))
        except (ValueError, OverflowError, OSError) as exc:
            raise InvalidInput(f"metadata {meta_id}: invalid mtime: {exc}", code="invalid_meta") from exc
        staged[meta_id] = {"path": path, "key": key, "data": record["data"], "mtime": mtime}
    batch.state = {**state, "meta": staged}
    batch_repo.touch(batch)
    session.add(batch)
    session.commit()
    return PushReceived(meta=len(records))


def _final_paths(session: Session, dataset: Dataset, state: dict) -> set[str]:
    """The dataset's paths once the push is applied (the client's)."""
    removes = set(state["removes"])
    return {path for path in _server_entries(session, dataset) if path not in removes} | set(state["adds"])


@dataclass
class _FileMoves:
    """File operations of a commit, undone in reverse order when the transaction fails."""

    placed: list[tuple[Path, Path]]  # (where it went, where it came from: the staging directory)
    trashed: list[tuple[Path, Path]]  # (original, where it waits)

    def undo(self) -> None:
        for destination, source in reversed(self.placed):
            os.replace(destination, source)  # an upload stays staged for another commit
        for original, parked in reversed(self.trashed):
            original.parent.mkdir(parents=True, exist_ok=True)
            os.replace(parked, original)


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)  # left by an earlier commit that failed
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _in_chunks(values: list[str]) -> list[list[str]]:
    return [values[i : i + _CHUNK] for i in range(0, len(values), _CHUNK)]


def added_files(batch: UploadBatch) -> list[str]:
    """The paths of the files (not folders) a push adds or replaces."""
    return sorted(path for path, digest in batch.state.get("adds", {}).items() if digest)


def commit_push(session: Session, *, settings: Settings, org: Organization, dataset: Dataset, batch: UploadBatch,
                describe: Describe) -> DatasetStamp:
    """Apply the push's delta atomically and answer the new stamp: ``409 dataset_changed`` (the batch is rolled
    back) when the dataset changed since init, ``400 missing_files`` / ``missing_meta`` naming what was not sent;
    nothing is applied in either case. ``describe`` gives a new file's entry fields from its content."""
    state, token = batch.state, batch.token
    session.commit()  # end the reads so far: the lock below is the transaction's first statement
    # the write lock first (SQLite: the database's, PostgreSQL: the dataset row's), then the check under it
    session.execute(update(Dataset).where(Dataset.id == dataset.id).values(updated_at=utcnow()))
    if dataset_repo.dataset_stamp(session, dataset=dataset).checksum != state["base"]:
        session.rollback()
        batch = session.get(UploadBatch, token)
        batch_repo.end_batch(batch, BatchStatus.rolledback)
        session.commit()
        remove_tree(batch_repo.staging_dir(settings, token))
        raise Conflict("the dataset changed since this push started: pull, then push again", code="dataset_changed")
    staged = {row.path: row for row in session.exec(select(BatchFile).where(BatchFile.batch_token == token))}
    staging = batch_repo.staging_dir(settings, token)
    missing = [p for p in state["needed_files"] if p not in staged or not (staging / _staged_name(p)).is_file()]
    if missing:
        raise InvalidInput(f"needed files not uploaded: {', '.join(missing[:10])}", code="missing_files",
                           details={"missing": missing[:1000]})
    missing_meta = [i for i in state["needed_meta"] if i not in state["meta"]]
    if missing_meta:
        raise InvalidInput(f"needed metadata not sent: {', '.join(missing_meta[:10])}", code="missing_meta")
    existing = {entry.path: entry for entry in session.exec(select(Entry).where(Entry.dataset_id == dataset.id))}
    by_hash = {entry.sha256: entry for entry in existing.values() if entry.sha256}
    adds, removes = state["adds"], state["removes"]
    incoming = sum(staged[p].size if p in staged else (by_hash[d].size if d else 0) for p, d in adds.items())
    replacing = sum(existing[p].size for p in [*removes, *adds] if p in existing)
    check_storage_quota(session, org=org, incoming=incoming, replacing=replacing)
    root = storage_root(settings, org, dataset)
    moves = _FileMoves(placed=[], trashed=[])
    try:
        _apply(session, root=root, staging=staging, dataset=dataset, state=state, existing=existing,
               by_hash=by_hash, moves=moves, describe=describe)
        batch = session.get(UploadBatch, token)
        batch_repo.end_batch(batch, BatchStatus.committed)
        session.commit()
    except BaseException:
        session.rollback()
        moves.undo()
        raise
    for original, _ in moves.trashed:
        prune_empty_parents(original.parent, stop=root)
    for path in sorted(state["removes"], reverse=True):  # removed folders, deepest first, when empty
        with contextlib.suppress(OSError):
            resolve_inside(root, path).rmdir()
    remove_tree(staging)
    return dataset_repo.dataset_stamp(session, dataset=dataset)


def _apply(session: Session, *, root: Path, staging: Path, dataset: Dataset, state: dict,
           existing: dict[str, Entry], by_hash: dict[str, Entry], moves: _FileMoves, describe: Describe) -> None:
    """Files, then rows (flushed, not committed): see :func:`commit_push`."""
    adds, removes = state["adds"], state["removes"]
    ready = staging / "ready"
    trash = staging / "trash"
    # 1. every new file's content next to the dataset: uploaded, or linked from a file of the same hash
    prepared: dict[str, Path] = {}
    for index, (path, digest) in enumerate(sorted(adds.items())):
        if not digest:
            continue
        if path in state["needed_files"]:
            prepared[path] = staging / _staged_name(path)
        else:
            prepared[path] = ready / str(index)
            _link_or_copy(resolve_inside(root, by_hash[digest].path), prepared[path])
    descriptions = {path: _describe(file, path, adds[path], by_hash, describe) for path, file in prepared.items()}
    # 2. replaced and removed files out of the way (kept until the commit succeeded)
    for index, path in enumerate(sorted({*removes, *(p for p in adds if p in existing)}, reverse=True)):
        original = resolve_inside(root, path)
        if original.is_file():
            parked = trash / str(index)
            parked.parent.mkdir(parents=True, exist_ok=True)
            os.replace(original, parked)
            moves.trashed.append((original, parked))
    # 3. the new files into place
    sizes = {}
    for path, file in prepared.items():
        destination = resolve_inside(root, path)
        if destination.is_dir():  # a folder the client turned into a file: its files were moved away above
            remove_tree(destination)
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.replace(file, destination)
        moves.placed.append((destination, file))
        sizes[path] = destination.stat().st_size
    for path, digest in adds.items():
        if not digest:
            resolve_inside(root, path).mkdir(parents=True, exist_ok=True)
    # 4. rows
    for chunk in _in_chunks(removes):
        session.execute(delete(DatasetMeta).where(DatasetMeta.dataset_id == dataset.id, DatasetMeta.path.in_(chunk)))
        session.execute(delete(Entry).where(Entry.dataset_id == dataset.id, Entry.path.in_(chunk)))
    now = utcnow()
    for path, digest in adds.items():
        entry = existing.get(path) or Entry(dataset_id=dataset.id, path=path)
        if digest:
            descriptions[path].apply(entry)
            entry.size, entry.sha256 = sizes[path], digest
        else:
            EntryDescription(type=EntryType.directory).apply(entry)
            entry.size, entry.sha256 = 0, None
        entry.mtime = now
        session.add(entry)
    session.flush()
    _apply_meta(session, dataset=dataset, state=state)


def _describe(file: Path, path: str, digest: str, by_hash: dict[str, Entry], describe: Describe) -> EntryDescription:
    """A reused content's entry fields come from the entry holding it when it is of the same type."""
    entry_type = classify(path)
    source = by_hash.get(digest)
    if source is not None and source.type == entry_type.value:
        return EntryDescription(type=entry_type, properties=source.properties, footprint=source.footprint,
                                crs=source.crs, bounds=source.bounds)
    return describe(file, entry_type)


def _apply_meta(session: Session, *, dataset: Dataset, state: dict) -> None:
    """Metadata removes (server ids the client lacks) and adds; of a singular key the newest mtime wins."""
    keep = set(state["client_meta"])
    gone = sorted(_server_meta(session, dataset) - keep)
    for chunk in _in_chunks(gone):
        session.execute(delete(DatasetMeta).where(DatasetMeta.dataset_id == dataset.id, DatasetMeta.id.in_(chunk)))
    singular = set()
    for meta_id, record in state["meta"].items():
        session.add(DatasetMeta(id=meta_id, dataset_id=dataset.id, path=record["path"], key=record["key"],
                                data=record["data"], mtime=datetime.fromisoformat(record["mtime"])))
        if not meta_repo.is_plural(record["key"]):
            singular.add((record["path"], record["key"]))
    session.flush()
    meta_repo.keep_newest(session, dataset=dataset, keys=singular)
    session.flush()
