"""Importing datasets from another registry (georeg or DroneDB-compatible) over HTTP: ``/sys/import-dataset`` and
``/sys/import-organization``, run by the ``registry-import`` tool.

An import merges into its destination and never deletes there: the destination organization and dataset are
created when missing; every folder of the source is created; a source file whose path and sha256 already match a
destination entry is skipped, any other is downloaded (``files``: one request a file, streamed to a temp file;
``archive``: the source's zip of the whole dataset, then each file read from it by its entry path), its hash checked
against the source's, and stored like an upload (an existing entry at that path is replaced); metadata values are
added under their source ids (ids already there are skipped; of a singular key the newest ``mtime`` wins); the
dataset's name, description and visibility become the source's.

A file that cannot be imported (the source fails on it, its hash differs, a folder is in the way, the storage
quota is full) leaves nothing behind (no temp file, no entry row) and is listed in the result's ``errors``; the
import goes on with the others.
"""

from __future__ import annotations

import json
import os
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import Field
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from georeg.core.config import Settings
from georeg.core.errors import GeoregError, InvalidInput
from georeg.core.models import CamelModel, Dataset, DatasetMeta, Entry, EntryType, Organization, User, Visibility
from georeg.core.progress import ProgressCallback
from georeg.core.registry import datasets as dataset_repo
from georeg.core.registry import entries as entry_repo
from georeg.core.registry import meta as meta_repo
from georeg.core.registry import orgs as org_repo
from georeg.core.registry.objects import EntryDescription, classify, create_folder, store_object
from georeg.core.registry.remote import RemoteEntry, RemoteRegistry, source_base_url
from georeg.core.registry.schemas import Slug
from georeg.core.slugs import validate_slug
from georeg.core.storage import CHUNK_SIZE, TempWriter, normalize_entry_path

Describe = Callable[[Path, EntryType], EntryDescription]
MAX_ERRORS = 1000


class ImportMode(str, Enum):
    archive = "archive"
    files = "files"


class ImportOrganizationRequest(CamelModel):
    """``POST /sys/import-organization``: every dataset of a source organization the credentials can read."""

    source_registry_url: str = Field(max_length=2048, description="the source registry's origin, "
                                     "scheme://host[:port] (its host in GEOREG_DOWNLOAD_HOSTS)")
    username: str | None = Field(default=None, max_length=256, description="a user of the source registry")
    password: str | None = Field(default=None, max_length=1024)
    source_organization: Slug
    destination_organization: Slug | None = None
    mode: ImportMode = ImportMode.files


class ImportDatasetRequest(ImportOrganizationRequest):
    """``POST /sys/import-dataset``."""

    source_dataset: Slug
    destination_dataset: Slug | None = None


@dataclass
class ImportReport:
    """What an import did: items (files, folders, metadata values) added, files skipped as already there, bytes
    downloaded into the registry, and what could not be imported."""

    imported_items: int = 0
    skipped_files: int = 0
    total_size: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    datasets: list[dict[str, Any]] = field(default_factory=list)

    def error(self, where: str, exc: Exception | str, *, dataset: str | None = None) -> None:
        if len(self.errors) >= MAX_ERRORS:
            return
        message = exc.message if isinstance(exc, GeoregError) else str(exc)
        code = exc.code if isinstance(exc, GeoregError) else "import_failed"
        self.errors.append({**({"dataset": dataset} if dataset else {}), "path": where, "error": message,
                            "code": code})

    def as_result(self) -> dict[str, Any]:
        result = {"importedItems": self.imported_items, "skippedFiles": self.skipped_files,
                  "totalSize": self.total_size, "errors": self.errors}
        return {**result, "datasets": self.datasets} if self.datasets else result


def check_source(client: RemoteRegistry, *, username: str | None, password: str | None, org: str,
                 dataset: str | None = None) -> None:
    """Sign in to the source (when a username is given) and make sure the dataset (or organization) is there:
    ``400 source_auth_failed``, ``404 source_not_found``, ``502 source_unreachable`` / ``504 source_timeout``."""
    if username:
        client.authenticate(username, password or "")
    if dataset:
        client.dataset(org, dataset)
    else:
        client.datasets(org)


def prepare_import(settings: Settings, request: ImportOrganizationRequest) -> dict:
    """Everything an import checks before it is queued, and the parameters of its ``registry-import`` task.

    ``400 invalid_source_url`` / ``403 download_host_not_allowed`` / ``403 address_not_allowed`` for the URL,
    ``400 invalid_*_slug`` for the slugs, then the source is asked (:func:`check_source`). Source credentials are
    kept in a private temp file (:func:`save_credentials`), never in the parameters."""
    base_url = source_base_url(request.source_registry_url, settings.download_hosts)
    source_ds = getattr(request, "source_dataset", None)
    destination_ds = getattr(request, "destination_dataset", None)
    validate_slug(request.source_organization, what="source organization")
    if request.destination_organization is not None:
        validate_slug(request.destination_organization, what="destination organization")
    if isinstance(request, ImportDatasetRequest):
        validate_slug(request.source_dataset, what="source dataset")
        if destination_ds is not None:
            validate_slug(destination_ds, what="destination dataset")
    with RemoteRegistry(base_url, allowed_hosts=settings.download_hosts,
                        timeout=settings.csw_timeout_seconds) as client:
        check_source(client, username=request.username, password=request.password,
                     org=request.source_organization, dataset=source_ds)
    credentials_id = (save_credentials(settings, username=request.username, password=request.password or "")
                      if request.username else None)
    return {"source_registry_url": base_url, "source_organization": request.source_organization,
            "source_dataset": source_ds, "destination_organization": request.destination_organization,
            "destination_dataset": destination_ds, "mode": request.mode.value, "credentials_id": credentials_id}


def import_organization(engine: Engine, settings: Settings, client: RemoteRegistry, *, source_org: str,
                        destination_org: str | None, mode: ImportMode, owner_id: int | None, describe: Describe,
                        progress: ProgressCallback) -> ImportReport:
    """Import every dataset of ``source_org`` the client can read into ``destination_org`` (default: the same
    slug), each under its own slug; a dataset that fails as a whole is an error of the report."""
    listed = client.datasets(source_org)
    report = ImportReport()
    destination_org = destination_org or source_org
    _ensure_org(engine, client, source_org, destination_org, owner_id)
    slugs = sorted({item["slug"] for item in listed if isinstance(item.get("slug"), str)})
    for index, slug in enumerate(slugs):
        def scaled(percent: float, phase: str, message: str = "", index: int = index, slug: str = slug) -> None:
            progress(100.0 * (index + percent / 100.0) / len(slugs), phase, f"{slug}: {message}")

        part = ImportReport()
        try:
            validate_slug(slug, what="dataset slug")
            part = import_dataset(engine, settings, client, source_org=source_org, source_ds=slug,
                                  destination_org=destination_org, destination_ds=slug, mode=mode, owner_id=owner_id,
                                  describe=describe, progress=scaled)
        except GeoregError as exc:
            part.error("", exc)
        report.imported_items += part.imported_items
        report.skipped_files += part.skipped_files
        report.total_size += part.total_size
        report.errors.extend({"dataset": slug, **error} for error in part.errors[:MAX_ERRORS - len(report.errors)])
        report.datasets.append({"slug": slug, "importedItems": part.imported_items, "skippedFiles": part.skipped_files,
                                "totalSize": part.total_size, "errorCount": len(part.errors)})
    return report


def import_dataset(engine: Engine, settings: Settings, client: RemoteRegistry, *, source_org: str, source_ds: str,
                   destination_org: str | None, destination_ds: str | None, mode: ImportMode, owner_id: int | None,
                   describe: Describe, progress: ProgressCallback) -> ImportReport:
    """Import ``source_org/source_ds`` into ``destination_org/destination_ds`` (default: the source's slugs)."""
    destination_org, destination_ds = destination_org or source_org, destination_ds or source_ds
    progress(0.0, "listing", f"{source_org}/{source_ds}")
    info = client.dataset(source_org, source_ds)
    listed = client.entries(source_org, source_ds)
    records = client.meta_dump(source_org, source_ds)
    report = ImportReport()
    entries: list[RemoteEntry] = []
    for entry in listed:
        try:
            entries.append(RemoteEntry(path=normalize_entry_path(entry.path), is_directory=entry.is_directory,
                                       size=entry.size, sha256=entry.sha256))
        except GeoregError as exc:
            report.error(entry.path, exc)
    with Session(engine, expire_on_commit=False) as session:
        existing = _existing_entries(session, destination_org, destination_ds)
    needed = []
    for entry in entries:
        have = existing.get(entry.path)
        if entry.is_directory:
            continue
        if have is not None and entry.sha256 and have.sha256 == entry.sha256:
            report.skipped_files += 1
        else:
            needed.append(entry)
    # the archive comes before anything is created: a source that cannot send it leaves no trace here
    archive = _download_archive(client, settings, source_org, source_ds, progress) if (
        needed and mode is ImportMode.archive) else None
    try:
        _ensure_org(engine, client, source_org, destination_org, owner_id)
        with Session(engine, expire_on_commit=False) as session:
            org = org_repo.get_org(session, slug=destination_org)
            dataset = dataset_repo.find_dataset(session, org=org, slug=destination_ds)
            if dataset is None:
                visibility = dataset_repo.parse_visibility(info.get("visibility")) or Visibility.private
                dataset = dataset_repo.create_dataset(session, org=org, slug=destination_ds, visibility=visibility)
                session.commit()
            for entry in entries:
                have = existing.get(entry.path)
                if entry.is_directory and (have is None or have.type != EntryType.directory.value):
                    try:
                        create_folder(session, settings=settings, org=org, dataset=dataset, path=entry.path)
                        report.imported_items += 1
                    except GeoregError as exc:
                        session.rollback()
                        report.error(entry.path, exc)
            store = _Storer(session, settings, org, dataset, describe, report)
            if archive is not None:
                _store_from_archive(archive, needed, store, progress)
            else:
                for index, entry in enumerate(needed):
                    progress(5.0 + 85.0 * index / len(needed), "downloading", entry.path)
                    store.download(client, source_org, source_ds, entry)
            progress(90.0, "metadata", f"{len(records)} values")
            _import_meta(session, dataset, records, report)
            _apply_info(session, dataset, info)
    finally:
        if archive is not None:
            archive.discard()
    progress(100.0, "done", f"{report.imported_items} imported, {report.skipped_files} skipped, "
                            f"{len(report.errors)} errors")
    return report


def _existing_entries(session: Session, org_slug: str, ds_slug: str) -> dict[str, Entry]:
    org = org_repo.find_org(session, slug=org_slug)
    dataset = dataset_repo.find_dataset(session, org=org, slug=ds_slug) if org is not None else None
    return {row.path: row for row in entry_repo.all_entries(session, dataset=dataset)} if dataset else {}


def _ensure_org(engine: Engine, client: RemoteRegistry, source_org: str, destination_org: str,
                owner_id: int | None) -> None:
    with Session(engine, expire_on_commit=False) as session:
        if org_repo.find_org(session, slug=destination_org) is not None:
            return
        try:
            source = client.organization(source_org)
        except GeoregError:
            source = {}
        name = source.get("name") if isinstance(source.get("name"), str) and source.get("name") else destination_org
        description = source.get("description") if isinstance(source.get("description"), str) else ""
        owner = session.get(User, owner_id) if owner_id else None
        org_repo.create_org(session, slug=destination_org, name=name[:256], owner=owner,
                            description=description, is_public=source.get("isPublic") is True)
        session.commit()


class _Storer:
    """Stores downloaded files as entries of the destination dataset, one transaction each."""

    def __init__(self, session: Session, settings: Settings, org: Organization, dataset: Dataset,
                 describe: Describe, report: ImportReport) -> None:
        self.session, self.settings, self.org, self.dataset = session, settings, org, dataset
        self.describe, self.report = describe, report

    def writer(self, entry: RemoteEntry) -> TempWriter:
        limit = self.settings.download_max_bytes
        return TempWriter(self.settings.tmp_dir, max_bytes=min(entry.size, limit) if entry.sha256 else limit)

    def download(self, client: RemoteRegistry, org: str, ds: str, entry: RemoteEntry) -> None:
        writer = self.writer(entry)
        try:
            client.download(org, ds, writer, path=entry.path)
            self.store(entry, writer)
        except (GeoregError, OSError) as exc:
            self.report.error(entry.path, exc)
        finally:
            writer.discard()

    def store(self, entry: RemoteEntry, writer: TempWriter) -> None:
        """Check the finished ``writer`` against the source's hash and store it as ``entry.path`` (the caller
        discards the temp file whatever happens)."""
        if entry.sha256 and writer.sha256 != entry.sha256:
            raise InvalidInput(f"sha256 {writer.sha256} of the downloaded file differs from the source's "
                               f"{entry.sha256}", code="hash_mismatch")
        try:
            description = self.describe(writer.path, classify(entry.path))
            store_object(self.session, settings=self.settings, org=self.org, dataset=self.dataset, path=entry.path,
                         upload=writer, description=description)
        except BaseException:
            self.session.rollback()
            raise
        self.report.imported_items += 1
        self.report.total_size += writer.size


def _download_archive(client: RemoteRegistry, settings: Settings, org: str, ds: str,
                      progress: ProgressCallback) -> TempWriter:
    """The source's zip of the whole dataset, in a temp file (the caller discards it)."""
    progress(5.0, "downloading", f"archive of {org}/{ds}")
    archive = TempWriter(settings.tmp_dir, max_bytes=settings.download_max_bytes)
    try:
        client.download(org, ds, archive)
        archive.finish(archive.path, durable=False)
        if not zipfile.is_zipfile(archive.path):
            raise InvalidInput(f"the source's archive of {org}/{ds} is not a zip file", code="bad_archive")
    except BaseException:
        archive.discard()
        raise
    return archive


def _store_from_archive(archive_file: TempWriter, needed: list[RemoteEntry], store: _Storer,
                        progress: ProgressCallback) -> None:
    """Store each needed file read from the archive by its entry path (member names are never used as paths;
    members that are not needed are not read)."""
    with zipfile.ZipFile(archive_file.path) as archive:
        for index, entry in enumerate(needed):
            progress(50.0 + 40.0 * index / len(needed), "extracting", entry.path)
            writer = store.writer(entry)
            try:
                try:
                    with archive.open(archive.getinfo(entry.path)) as member:
                        while chunk := member.read(CHUNK_SIZE):
                            writer.write(chunk)
                except KeyError as exc:
                    raise InvalidInput(f"{entry.path!r} is missing from the source's archive",
                                       code="missing_from_archive") from exc
                except (zipfile.BadZipFile, EOFError) as exc:
                    raise InvalidInput(f"cannot read {entry.path!r} from the source's archive: {exc}",
                                       code="bad_archive") from exc
                store.store(entry, writer)
            except (GeoregError, OSError) as exc:
                store.report.error(entry.path, exc)
            finally:
                writer.discard()


def _mtime(value: Any) -> datetime:
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, tz=UTC)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        pass
    return datetime.now(UTC)


def _import_meta(session: Session, dataset: Dataset, records: list[dict], report: ImportReport) -> None:
    """Add the source's metadata values the dataset lacks (by id); of a singular key the newest value stays."""
    have = set(session.exec(select(DatasetMeta.id).where(DatasetMeta.dataset_id == dataset.id)).all())
    paths = set(session.exec(select(Entry.path).where(Entry.dataset_id == dataset.id)).all()) | {""}
    singular: set[tuple[str, str]] = set()
    added = 0
    for record in records:
        where = f"meta {record.get('key')!r} of {record.get('path') or 'the dataset'!r}"
        try:
            meta_id = str(uuid.UUID(str(record.get("id"))))
            key = meta_repo.validate_key(str(record.get("key")))
            path = normalize_entry_path(record.get("path") or "", allow_root=True)
        except (GeoregError, ValueError) as exc:
            report.error(where, exc if isinstance(exc, GeoregError) else InvalidInput(f"invalid metadata: {exc}"))
            continue
        if meta_id in have:
            continue
        if path not in paths:
            report.error(where, InvalidInput(f"its entry {path!r} was not imported", code="entry_not_imported"))
            continue
        session.add(DatasetMeta(id=meta_id, dataset_id=dataset.id, path=path, key=key, data=record.get("data"),
                                mtime=_mtime(record.get("mtime"))))
        have.add(meta_id)
        added += 1
        if not meta_repo.is_plural(key):
            singular.add((path, key))
    session.flush()
    meta_repo.keep_newest(session, dataset=dataset, keys=singular)
    if added:
        dataset_repo.touch(session, dataset=dataset)
    session.commit()
    report.imported_items += added


def _apply_info(session: Session, dataset: Dataset, info: dict) -> None:
    """The dataset's name, description and visibility become the source's (those it states)."""
    visibility = dataset_repo.parse_visibility(info.get("visibility"))
    if visibility is not None:
        dataset.visibility = visibility.value
    name = info.get("name")
    if isinstance(name, str) and name.strip():
        dataset.name = name[:256]
    description = info.get("description")
    if isinstance(description, str):
        dataset.description = description
    session.add(dataset)
    session.commit()


# --- source credentials: kept out of the task's parameters (which task views show) ---------------------------------

CREDENTIALS_PREFIX = "import-credentials-"
CREDENTIALS_ID_PATTERN = r"^[0-9a-f]{32}$"


def _credentials_file(settings: Settings, credentials_id: str) -> Path:
    if len(credentials_id) != 32 or any(c not in "0123456789abcdef" for c in credentials_id):
        raise InvalidInput("invalid credentials id", code="invalid_parameters")
    return settings.tmp_dir / f"{CREDENTIALS_PREFIX}{credentials_id}.json"


def save_credentials(settings: Settings, *, username: str, password: str) -> str:
    """Keep the source credentials of an import for its flow run in a private file of the temp dir (the daily
    cleanup removes it after ``GEOREG_TEMP_FILE_TTL_HOURS``; a successful import at once); returns its id."""
    credentials_id = uuid.uuid4().hex
    target = _credentials_file(settings, credentials_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump({"username": username, "password": password}, handle)
    return credentials_id


def load_credentials(settings: Settings, credentials_id: str) -> tuple[str, str]:
    try:
        stored = json.loads(_credentials_file(settings, credentials_id).read_text())
        return str(stored["username"]), str(stored["password"])
    except (OSError, ValueError, KeyError) as exc:
        raise InvalidInput("the source credentials of this import are gone (they are kept for "
                           "GEOREG_TEMP_FILE_TTL_HOURS): start a new import", code="credentials_expired") from exc


def drop_credentials(settings: Settings, credentials_id: str | None) -> None:
    if credentials_id:
        _credentials_file(settings, credentials_id).unlink(missing_ok=True)
