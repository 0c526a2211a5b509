"""``archive-extract``: unpack a zip entry into the dataset, guarded against zip-slip and zip bombs.

Every member is checked (name, count, declared and actual sizes, compression ratio) and extracted to
temp files first; only when the whole archive passes are the files moved in and registered.
"""

from __future__ import annotations

import stat
import zipfile
from pathlib import PurePosixPath

from pydantic import BaseModel, Field

from georeg.core.errors import InvalidInput, InvalidPath, NotFound, PayloadTooLarge
from georeg.core.models import Permission
from georeg.core.rasters.entries import store_file
from georeg.core.registry import entries as entry_repo
from georeg.core.storage import CHUNK_SIZE, TempWriter, normalize_entry_path, resolve_inside
from georeg.core.tasks.model import Tool, ToolContext, ToolOutcome
from georeg.core.tasks.tools.common import required_path, task_session


class ArchiveExtractParams(BaseModel):
    destination: str | None = Field(default=None, description="folder to extract into; default: beside the archive")
    overwrite: bool = Field(default=False, description="replace existing entries")


def _checked_members(archive: zipfile.ZipFile, context: ToolContext,
                     destination: str) -> list[tuple[zipfile.ZipInfo, str]]:
    settings = context.settings
    members = [info for info in archive.infolist() if not info.is_dir()]
    if len(members) > settings.archive_max_files:
        raise PayloadTooLarge(f"archive has {len(members)} files, more than the limit of {settings.archive_max_files}")
    declared = sum(info.file_size for info in members)
    if declared > settings.archive_max_bytes:
        raise PayloadTooLarge(f"archive expands to {declared} bytes, more than {settings.archive_max_bytes}")
    checked, seen = [], set()
    for info in members:
        if stat.S_ISLNK(info.external_attr >> 16):
            raise InvalidPath(f"archive member {info.filename!r} is a symbolic link")
        try:
            relative = normalize_entry_path(info.filename)
        except InvalidPath as exc:
            raise InvalidPath(f"unsafe archive member {info.filename!r}: {exc.message}") from exc
        target = normalize_entry_path(f"{destination}/{relative}" if destination else relative)
        if target in seen:
            raise InvalidInput(f"archive member {info.filename!r} appears twice", code="duplicate_member")
        seen.add(target)
        if info.compress_size and info.file_size / info.compress_size > settings.archive_max_ratio:
            raise PayloadTooLarge(f"archive member {info.filename!r} compresses suspiciously well (zip bomb?)")
        checked.append((info, target))
    return checked


def _extract(archive: zipfile.ZipFile, info: zipfile.ZipInfo, context: ToolContext, budget: int) -> TempWriter:
    writer = TempWriter(context.settings.tmp_dir, max_bytes=min(info.file_size, budget))
    try:
        with archive.open(info) as member:
            while chunk := member.read(CHUNK_SIZE):
                writer.write(chunk)
    except Exception:
        writer.discard()
        raise
    return writer


def run(context: ToolContext, params: ArchiveExtractParams) -> ToolOutcome:
    archive_path = required_path(context)
    if PurePosixPath(archive_path).suffix.lower() != ".zip":
        raise InvalidInput("archive-extract handles .zip entries", code="unsupported_archive")
    default_destination = str(PurePosixPath(archive_path).with_suffix(""))
    destination = params.destination if params.destination is not None else default_destination
    destination = normalize_entry_path(destination, allow_root=True)
    source = resolve_inside(context.dataset_root, archive_path)
    if not source.is_file():
        raise NotFound(f"archive {archive_path!r} not found in storage", code="file_missing")
    try:
        archive = zipfile.ZipFile(source)
    except zipfile.BadZipFile as exc:
        raise InvalidInput(f"{archive_path!r} is not a valid zip archive: {exc}", code="bad_archive") from exc
    extracted: list[tuple[str, TempWriter]] = []
    try:
        with archive:
            members = _checked_members(archive, context, destination)
            with task_session(context) as (session, _, dataset):
                if not params.overwrite:
                    clashes = [t for _, t in members if entry_repo.find_entry(session, dataset=dataset, path=t)]
                    if clashes:
                        raise InvalidInput(f"entries already exist: {', '.join(clashes[:5])}", code="entry_exists")
            budget = context.settings.archive_max_bytes
            for index, (info, target) in enumerate(members, start=1):
                try:
                    writer = _extract(archive, info, context, budget)
                except PayloadTooLarge as exc:
                    raise PayloadTooLarge(
                        f"archive member {info.filename!r} is larger than declared (zip bomb?)") from exc
                except (zipfile.BadZipFile, EOFError, OSError) as exc:
                    raise InvalidInput(f"cannot extract {info.filename!r}: {exc}", code="bad_archive") from exc
                budget -= writer.size
                extracted.append((target, writer))
                context.progress(80.0 * index / max(len(members), 1), "extracting", info.filename)
        with task_session(context) as (session, org, dataset):
            for index, (target, writer) in enumerate(extracted, start=1):
                store_file(session, settings=context.settings, org=org, dataset=dataset, path=target, upload=writer)
                context.logger.info("extracted %s (%d bytes)", target, writer.size)
                context.progress(80.0 + 20.0 * index / len(extracted), "registering", target)
    finally:
        for _, writer in extracted:
            writer.discard()
    return ToolOutcome(result={"extracted": [t for t, _ in extracted], "destination": destination})


ARCHIVE_EXTRACT = Tool(
    id="archive-extract",
    version="1.0.0",
    title="Extract archive",
    description="Extract a zip entry into the dataset (zip-slip and zip-bomb guarded), registering every file.",
    parameters=ArchiveExtractParams,
    run=run,
    required_access=Permission.write,
    needs_path=True,
)
