"""``/orgs/{orgSlug}/ds/{dsSlug}``: objects (files) inside a dataset."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, StreamingResponse

from georeg.api.deps import ActorDep, ReadableDataset, SessionDep, SettingsDep, TaskServiceDep, WritableDataset
from georeg.api.downloads import file_response, zip_response
from georeg.api.schemas import AUTH_ERRORS, COMMON_ERRORS, errors
from georeg.api.uploads import MULTIPART_UPLOAD, receive_upload
from georeg.core.errors import InvalidInput, InvalidPath
from georeg.core.rasters.entries import store_file
from georeg.core.registry import entries as entry_repo
from georeg.core.registry import objects
from georeg.core.registry.schemas import (
    ENTRY_PATH_PATTERN,
    ENTRY_PATH_RULES,
    ROOT_OR_ENTRY_PATH_PATTERN,
    EntryPublic,
    MoveBody,
    PathBody,
    PathsBody,
    Removed,
    SearchBody,
)
from georeg.core.storage import MAX_PATH_LENGTH, normalize_entry_path

router = APIRouter(prefix="/orgs/{orgSlug}/ds/{dsSlug}", tags=["objects"], responses={**COMMON_ERRORS, **AUTH_ERRORS})

EntryPathQuery = Annotated[str, Query(max_length=MAX_PATH_LENGTH, description=ENTRY_PATH_RULES,
                                      json_schema_extra={"pattern": ENTRY_PATH_PATTERN})]
FolderQuery = Annotated[str, Query(max_length=MAX_PATH_LENGTH, description=f"{ENTRY_PATH_RULES}; '' is the root",
                                   json_schema_extra={"pattern": ROOT_OR_ENTRY_PATH_PATTERN})]
DOWNLOAD_RESPONSES = {200: {"content": {"application/octet-stream": {}, "application/zip": {}},
                            "description": "the file (Range supported) or a zip stream of several"},
                      206: {"description": "a range of the file"}, **errors(416)}


@router.get("/list")
def list_objects(access: ReadableDataset, session: SessionDep, path: FolderQuery = "") -> list[EntryPublic]:
    """The entries of a folder (the root by default); a file path lists that file."""
    folder = normalize_entry_path(path, allow_root=True)
    entries = entry_repo.list_children(session, dataset=access.dataset, path=folder)
    return [objects.entry_public(entry) for entry in entries]


@router.post("/list")
def list_objects_post(access: ReadableDataset, body: PathBody, session: SessionDep) -> list[EntryPublic]:
    return [objects.entry_public(entry) for entry in entry_repo.list_children(session, dataset=access.dataset,
                                                                             path=body.path)]


@router.post("/search")
def search_objects(access: ReadableDataset, body: SearchBody, session: SessionDep) -> list[EntryPublic]:
    """Entries whose name (or path, when the pattern has a '/') matches a glob pattern."""
    matches = objects.search_entries(session, dataset=access.dataset, pattern=body.query, base=body.path,
                                     recursive=body.recursive)
    return [objects.entry_public(entry) for entry in matches]


@router.get("/obj")
def get_object(access: ReadableDataset, session: SessionDep, path: EntryPathQuery) -> EntryPublic:
    entry = entry_repo.get_entry(session, dataset=access.dataset, path=normalize_entry_path(path))
    return objects.entry_public(entry)


@router.post("/obj", status_code=201, responses={**errors(409, 413, 429, 507)}, openapi_extra=MULTIPART_UPLOAD)
async def upload_object(access: WritableDataset, request: Request, session: SessionDep, settings: SettingsDep,
                        actor: ActorDep, tasks: TaskServiceDep) -> EntryPublic:
    """Multipart upload: ``file`` and the destination ``path`` (defaults to the file name; a path ending in '/' is
    a folder). Without a file part, ``path`` creates a folder."""
    upload = await receive_upload(request, tmp_dir=settings.tmp_dir, max_bytes=settings.max_upload_bytes)
    try:
        raw_path = upload.fields.get("path", "")
        if upload.file is None:
            entry = await run_in_threadpool(objects.create_folder, session, settings=settings, org=access.org,
                                            dataset=access.dataset, path=normalize_entry_path(raw_path))
            return objects.entry_public(entry)
        if not raw_path or raw_path.endswith("/"):
            raw_path = f"{raw_path}{_plain_filename(upload.filename)}"
        entry = await run_in_threadpool(store_file, session, settings=settings, org=access.org,
                                        dataset=access.dataset, path=normalize_entry_path(raw_path),
                                        upload=upload.file)
        public = objects.entry_public(entry)
        await tasks.build_after_upload(actor=actor, access=access, paths=[entry.path])
        return public
    finally:
        upload.discard()


def _plain_filename(filename: str | None) -> str:
    """The uploaded file name, which must be a bare name (no directories, no traversal)."""
    name = filename or ""
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise InvalidPath(f"file name {name!r} must be a plain name; give the destination in 'path'")
    return name


@router.put("/obj", responses=errors(409))
def move(access: WritableDataset, body: MoveBody, session: SessionDep, settings: SettingsDep) -> list[EntryPublic]:
    """Move (rename) a file or folder; an existing destination is a conflict."""
    entries = objects.move_object(session, settings=settings, org=access.org, dataset=access.dataset,
                                  source=body.source, destination=body.dest)
    return [objects.entry_public(entry) for entry in entries]


@router.delete("/obj")
def delete_object(access: WritableDataset, session: SessionDep, settings: SettingsDep,
                  path: EntryPathQuery) -> Removed:
    """Delete a file, or a folder with everything in it."""
    removed = objects.delete_objects(session, settings=settings, org=access.org, dataset=access.dataset,
                                     paths=[normalize_entry_path(path)])
    return Removed(removed=removed)


@router.delete("/obj/batch")
def delete_batch(access: WritableDataset, body: PathsBody, session: SessionDep, settings: SettingsDep) -> Removed:
    if not body.paths:
        raise InvalidInput("paths must not be empty", code="empty_paths")
    paths = sorted({normalize_entry_path(path) for path in body.paths})
    return Removed(removed=objects.delete_objects(session, settings=settings, org=access.org, dataset=access.dataset,
                                                  paths=paths))


def _download(access: ReadableDataset, session: SessionDep, settings: SettingsDep,
              raw_paths: list[str]) -> FileResponse | StreamingResponse:
    paths = [normalize_entry_path(part, allow_root=True) for value in raw_paths for part in value.split(",")] or [""]
    entry, files = objects.download_selection(session, settings=settings, org=access.org, dataset=access.dataset,
                                              paths=paths)
    if entry is not None:
        return file_response(files[entry.path], filename=PurePosixPath(entry.path).name)
    return zip_response(sorted(files.items()), filename=f"{access.dataset.slug}.zip")


@router.get("/download", response_class=FileResponse, response_model=None, responses=DOWNLOAD_RESPONSES)
def download(access: ReadableDataset, session: SessionDep, settings: SettingsDep,
             path: Annotated[list[Annotated[str, Query(max_length=MAX_PATH_LENGTH)]] | None,
                             Query(max_length=1000, description="paths (or comma-separated lists of paths)")] = None,
             ) -> FileResponse | StreamingResponse:
    """One file (``Range`` supported) or a zip stream of several paths / folders / the whole dataset."""
    return _download(access, session, settings, path or [])


@router.post("/download", response_class=FileResponse, response_model=None, responses=DOWNLOAD_RESPONSES)
def download_post(access: ReadableDataset, body: PathsBody, session: SessionDep,
                  settings: SettingsDep) -> FileResponse | StreamingResponse:
    return _download(access, session, settings, body.paths)
