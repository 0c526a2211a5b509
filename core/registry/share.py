"""Share: one-shot uploads into a new or existing dataset (DroneDB's ``ddb share``).

``init`` opens a share batch on a dataset (created when the tag names a missing one, or with a generated slug when
there is no tag); ``upload`` and the chunked upload (``core.registry.share_chunks``) stage files in the batch's
staging directory; ``commit`` moves every staged file into the dataset in one transaction; ``rollback`` removes
exactly what the batch added (the dataset only when the batch created it). A running batch never changes its dataset.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field
from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from georeg.core.config import Settings
from georeg.core.errors import Conflict, InvalidInput
from georeg.core.models import (
    BatchChunk,
    BatchFile,
    BatchKind,
    BatchStatus,
    CamelModel,
    Dataset,
    Entry,
    EntryType,
    Organization,
    Permission,
    UploadBatch,
    User,
    UtcDateTime,
)
from georeg.core.paging import SkipTakePage
from georeg.core.registry import access
from georeg.core.registry import batches as batch_repo
from georeg.core.registry import datasets as dataset_repo
from georeg.core.registry import entries as entry_repo
from georeg.core.registry import orgs as org_repo
from georeg.core.registry.actor import Actor, require_user
from georeg.core.registry.objects import (
    EntryDescription,
    check_storage_quota,
    classify,
    commit_with_file,
    storage_root,
)
from georeg.core.slugs import validate_slug
from georeg.core.storage import TempWriter, parent_paths, prune_empty_parents, remove_tree, resolve_inside
from georeg.core.timeutil import utcnow

Describe = Callable[[Path, EntryType], EntryDescription]
ASSEMBLING = ""  # BatchFile.sha256 while one process assembles its chunks


class ShareToken(CamelModel):
    token: str = Field(description="the share batch: pass it to the other share routes")


class ShareEntry(CamelModel):
    """A file of the batch, staged until commit."""

    path: str
    hash: str
    size: int


class ShareListedEntry(ShareEntry):
    type: EntryType
    added_on: UtcDateTime


class ShareUpload(CamelModel):
    """A chunked upload still collecting chunks: ``receivedChunks`` tells a client which ones to (re)send."""

    file_id: str
    path: str
    total_chunks: int
    received_chunks: list[int]
    total_file_size: int


class ShareInfo(CamelModel):
    token: str
    user_name: str | None
    start: UtcDateTime
    end: UtcDateTime | None
    status: BatchStatus
    entries: list[ShareListedEntry]
    uploads: list[ShareUpload]


class ShareBatchSummary(CamelModel):
    """A share batch of a dataset, in ``GET .../batches``."""

    token: str
    user_name: str | None
    start: UtcDateTime
    end: UtcDateTime | None
    status: BatchStatus
    files: int = Field(description="files staged (running) or added (committed) by the batch")
    size: int = Field(description="their bytes")


class ShareCommitted(CamelModel):
    url: str = Field(description="the dataset's page: /r/{org}/{ds}")
    tag: str = Field(description="org/ds")


def _parse_tag(tag: str) -> tuple[str, str]:
    org_slug, sep, ds_slug = tag.partition("/")
    if not sep or "/" in ds_slug:
        raise InvalidInput(f"tag {tag[:200]!r} must be 'org/dataset'", code="invalid_tag")
    return validate_slug(org_slug, what="organization slug"), validate_slug(ds_slug, what="dataset slug")


def _target(session: Session, *, actor: Actor, user: User, tag: str, org_slug: str,
            dataset_name: str) -> tuple[Organization, Dataset, bool]:
    """The share's organization and dataset, and whether it was created (flushed, not committed)."""
    if tag:
        org_slug, ds_slug = _parse_tag(tag)
        org = org_repo.get_org(session, slug=org_slug)
        dataset = dataset_repo.find_dataset(session, org=org, slug=ds_slug)
        if dataset is not None:
            access.check_dataset(session, org=org, dataset=dataset, actor=actor, need=Permission.write)
            return org, dataset, False
    else:
        org = org_repo.get_org(session, slug=validate_slug(org_slug or user.username, what="organization slug"))
        ds_slug = secrets.token_hex(6)
    access.check_org(session, org=org, actor=actor, need=Permission.write)
    dataset = dataset_repo.create_dataset(session, org=org, slug=ds_slug, name=dataset_name or None)
    return org, dataset, True


def init_share(session: Session, *, settings: Settings, actor: Actor, tag: str, org_slug: str,
               dataset_name: str) -> ShareToken:
    """Open a share batch: on the dataset ``tag`` ("org/ds": write permission; created when missing, which needs
    write permission on the organization), or on a new dataset with a generated slug in ``org_slug`` (default: the
    caller's own organization). New datasets are private. The caller's running share on the same dataset is rolled
    back first; the storage quota must not be exhausted already."""
    user = require_user(actor)
    org, dataset, created = _target(session, actor=actor, user=user, tag=tag.strip(), org_slug=org_slug.strip(),
                                    dataset_name=dataset_name.strip()[:256])
    check_storage_quota(session, org=org, incoming=0, replacing=0)
    if not created:
        session.commit()
        for previous in batch_repo.running_batches(session, dataset_id=dataset.id, user_id=user.id,
                                                   kind=BatchKind.share):
            batch_repo.rollback_batch(session, settings=settings, batch=previous)
    batch = UploadBatch(kind=BatchKind.share.value, dataset_id=dataset.id, user_id=user.id, created_dataset=created)
    session.add(batch)
    session.commit()
    return ShareToken(token=batch.token)


def get_share(session: Session, *, token: str, actor: Actor, running: bool = True) -> UploadBatch:
    """The caller's share batch ``token``: ``404`` unknown, ``403`` another user's, ``409`` not running (when
    ``running``); while running, the caller must still hold write permission on its dataset."""
    user = require_user(actor)
    batch = batch_repo.get_batch(session, token=token, kind=BatchKind.share, user_id=user.id, running=running)
    if batch.status == BatchStatus.running.value:
        dataset = session.get(Dataset, batch.dataset_id)
        org = session.get(Organization, dataset.org_id)
        access.check_dataset(session, org=org, dataset=dataset, actor=actor, need=Permission.write)
    return batch


def batch_files(session: Session, *, token: str) -> list[BatchFile]:
    return list(session.exec(select(BatchFile).where(BatchFile.batch_token == token).order_by(BatchFile.path)))


def share_info(session: Session, *, batch: UploadBatch) -> ShareInfo:
    """The batch: its complete files (``entries``) and its chunked uploads still collecting chunks (``uploads``)."""
    user = session.get(User, batch.user_id)
    files = batch_files(session, token=batch.token)
    incomplete = [row for row in files if not row.sha256]
    received: dict[int, list[int]] = {row.id: [] for row in incomplete}
    if incomplete:
        for file_id, index in session.exec(select(BatchChunk.batch_file_id, BatchChunk.chunk_index).where(
                BatchChunk.batch_file_id.in_(list(received))).order_by(BatchChunk.chunk_index)):
            received[file_id].append(index)
    return ShareInfo(
        token=batch.token, user_name=user.username if user else None, start=batch.started_at, end=batch.ended_at,
        status=BatchStatus(batch.status),
        entries=[ShareListedEntry(path=row.path, hash=row.sha256, size=row.size, type=classify(row.path),
                                  added_on=row.added_on) for row in files if row.sha256],
        uploads=[ShareUpload(file_id=row.file_id, path=row.path, total_chunks=row.total_chunks,
                             received_chunks=received[row.id], total_file_size=row.total_size) for row in incomplete],
    )


def list_batches(session: Session, *, dataset: Dataset, skip: int, take: int) -> SkipTakePage[ShareBatchSummary]:
    """The dataset's share batches, newest first, with their file counts and sizes."""
    query = select(UploadBatch).where(UploadBatch.dataset_id == dataset.id, UploadBatch.kind == BatchKind.share.value)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(UploadBatch.started_at.desc(), UploadBatch.token).offset(skip).limit(take))
    items = []
    for batch in rows:
        count, size = session.exec(select(func.count(), func.coalesce(func.sum(BatchFile.size), 0)).where(
            BatchFile.batch_token == batch.token, BatchFile.sha256.is_not(None), BatchFile.sha256 != ASSEMBLING)).one()
        user = session.get(User, batch.user_id)
        items.append(ShareBatchSummary(token=batch.token, user_name=user.username if user else None,
                                       start=batch.started_at, end=batch.ended_at, status=BatchStatus(batch.status),
                                       files=count, size=int(size or 0)))
    return SkipTakePage[ShareBatchSummary](items=items, total=total, skip=skip, take=take)


def check_path(session: Session, *, batch: UploadBatch, path: str) -> None:
    """``path`` may become a file of the batch's dataset: ``409 path_conflict`` when it is a folder there or one of
    its parents is a file (of the dataset or of the batch)."""
    dataset = session.get(Dataset, batch.dataset_id)
    existing = entry_repo.find_entry(session, dataset=dataset, path=path)
    if existing is not None and existing.type == EntryType.directory.value:
        raise Conflict(f"{path!r} is a folder of the dataset", code="path_conflict")
    parents = parent_paths(path)
    if parents:
        clash = session.exec(select(Entry.path).where(Entry.dataset_id == dataset.id, Entry.path.in_(parents),
                                                      Entry.type != EntryType.directory.value)).first()
        clash = clash or session.exec(select(BatchFile.path).where(BatchFile.batch_token == batch.token,
                                                                   BatchFile.path.in_(parents))).first()
        if clash is not None:
            raise Conflict(f"{path!r} would be inside the file {clash!r}", code="path_conflict")
    below = session.exec(select(BatchFile.path).where(BatchFile.batch_token == batch.token,
                                                      BatchFile.path.startswith(f"{path}/", autoescape=True))).first()
    if below is not None:
        raise Conflict(f"{path!r} is a folder of this share ({below!r})", code="path_conflict")


def check_quota(session: Session, *, batch: UploadBatch, incoming: int) -> None:
    """The dataset owner's quota must hold everything the batch holds or announced, plus ``incoming`` bytes."""
    dataset = session.get(Dataset, batch.dataset_id)
    staged = session.exec(select(func.coalesce(func.sum(func.coalesce(BatchFile.total_size, BatchFile.size)), 0))
                          .where(BatchFile.batch_token == batch.token)).one()
    replacing = session.exec(select(func.coalesce(func.sum(Entry.size), 0)).where(
        Entry.dataset_id == dataset.id, Entry.path.in_(select(BatchFile.path).where(
            BatchFile.batch_token == batch.token)))).one()
    check_storage_quota(session, org=session.get(Organization, dataset.org_id), incoming=int(staged) + incoming,
                        replacing=int(replacing))


def staged_file(settings: Settings, row: BatchFile) -> Path:
    return batch_repo.staging_dir(settings, row.batch_token) / "files" / str(row.id)


def add_row(session: Session, *, row: BatchFile) -> BatchFile:
    """Insert ``row`` (flushed): ``409 path_in_batch`` when the batch already has its path."""
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"{row.path!r} is already part of this share", code="path_in_batch") from None
    return row


def receive_file(session: Session, *, settings: Settings, batch: UploadBatch, path: str,
                 upload: TempWriter) -> ShareEntry:
    """Stage the finished ``upload`` as ``path``: ``409`` when the batch has that path already or it clashes with
    the dataset's folders/files, ``429`` over the quota. The caller discards the temp file when this fails."""
    if session.exec(select(BatchFile.id).where(BatchFile.batch_token == batch.token, BatchFile.path == path)).first():
        raise Conflict(f"{path!r} is already part of this share", code="path_in_batch")
    check_path(session, batch=batch, path=path)
    check_quota(session, batch=batch, incoming=upload.size)
    row = add_row(session, row=BatchFile(batch_token=batch.token, path=path, size=upload.size,
                                                      sha256=upload.sha256))
    batch_repo.touch(batch)
    session.add(batch)
    destination = staged_file(settings, row)
    commit_with_file(session, upload, destination)
    return ShareEntry(path=path, hash=upload.sha256, size=upload.size)


def commit_share(session: Session, *, settings: Settings, batch: UploadBatch, describe: Describe) -> ShareCommitted:
    """Move every staged file into the dataset in one transaction (entries added or replaced as a normal upload
    does): ``409 incomplete_uploads`` naming the chunked uploads still missing chunks, ``409 path_conflict`` for a
    path that became a folder (or went under a file) since; nothing changes when it fails."""
    token = batch.token
    files = batch_files(session, token=token)
    incomplete = [row.path for row in files if not row.sha256]
    if incomplete:
        raise Conflict(f"chunked uploads still incomplete: {', '.join(incomplete[:10])}", code="incomplete_uploads",
                       details={"incomplete": incomplete[:1000]})
    dataset = session.get(Dataset, batch.dataset_id)
    org = session.get(Organization, dataset.org_id)
    descriptions = {row.path: describe(staged_file(settings, row), classify(row.path)) for row in files}
    session.commit()  # end the reads: the dataset's write lock below is the transaction's first statement
    session.execute(update(Dataset).where(Dataset.id == dataset.id).values(updated_at=utcnow()))
    for row in files:
        check_path(session, batch=batch, path=row.path)
    check_quota(session, batch=batch, incoming=0)
    root = storage_root(settings, org, dataset)
    trash = batch_repo.staging_dir(settings, token) / "trash"
    placed: list[tuple[Path, Path]] = []
    parked: list[tuple[Path, Path]] = []
    try:
        for index, row in enumerate(files):
            destination = resolve_inside(root, row.path)
            if destination.is_file():
                trash.mkdir(parents=True, exist_ok=True)
                os.replace(destination, trash / str(index))
                parked.append((destination, trash / str(index)))
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged_file(settings, row), destination)
            placed.append((destination, staged_file(settings, row)))
            entry_repo.upsert_file(session, dataset=dataset, path=row.path, size=row.size, sha256=row.sha256,
                                   **descriptions[row.path].model_dump(mode="json"))
        batch = session.get(UploadBatch, token)
        batch_repo.end_batch(batch, BatchStatus.committed)
        dataset_repo.touch(session, dataset=dataset)
        session.commit()
    except BaseException:
        session.rollback()
        for destination, source in reversed(placed):
            os.replace(destination, source)
            prune_empty_parents(destination.parent, stop=root)
        for original, waiting in reversed(parked):
            os.replace(waiting, original)
        raise
    remove_tree(batch_repo.staging_dir(settings, token))
    return ShareCommitted(url=f"/r/{org.slug}/{dataset.slug}", tag=f"{org.slug}/{dataset.slug}")


@dataclass(frozen=True)
class CommittedShare:
    """A committed share: the answer, the dataset it went into and the paths of the files it added."""

    answer: ShareCommitted
    target: access.DatasetAccess
    paths: list[str]


def commit_share_by_token(session: Session, *, settings: Settings, token: str, actor: Actor,
                          describe: Describe) -> CommittedShare:
    """:func:`commit_share` of the caller's running batch ``token`` (write permission checked)."""
    batch = get_share(session, token=token, actor=actor)
    paths = [row.path for row in batch_files(session, token=batch.token)]
    dataset = session.get(Dataset, batch.dataset_id)
    org = session.get(Organization, dataset.org_id)
    permission = access.check_dataset(session, org=org, dataset=dataset, actor=actor, need=Permission.write)
    answer = commit_share(session, settings=settings, batch=batch, describe=describe)
    return CommittedShare(answer=answer, target=access.DatasetAccess(org=org, dataset=dataset, permission=permission),
                          paths=paths)
