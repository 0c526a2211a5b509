"""``/orgs/{orgSlug}/ds/{dsSlug}``: objects (files) inside a dataset."""

from __future__ import annotations

import fnmatch
from pathlib import PurePosixPath
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from georeg.api.deps import ActorDep, SessionDep, SettingsDep
from georeg.api.downloads import file_response, zip_response
from georeg.api.routes.datasets import entry_public
from georeg.api.uploads import receive_upload
from georeg.core.errors import InvalidInput, InvalidPath, NotFound
from georeg.core.models import CamelModel, Entry, EntryType, Permission
from georeg.core.registry import datasets as dataset_repo
from georeg.core.registry import entries as entry_repo
from georeg.core.registry.guards import load_dataset
from georeg.core.registry.objects import delete_objects, entry_files, move_object, storage_root, store_object
from georeg.core.storage import normalize_entry_path, resolve_inside

router = APIRouter(prefix="/orgs/{orgSlug}/ds/{dsSlug}", tags=["objects"])


class PathBody(CamelModel):
    path: str = ""


class PathsBody(CamelModel):
    paths: list[str]


class MoveBody(CamelModel):
    source: str
    dest: str


class SearchBody(CamelModel):
    query: str = "*"
    path: str = ""
    recursive: bool = True


def _split_paths(values: list[str]) -> list[str]:
    paths = [part for value in values for part in value.split(",")]
    return [normalize_entry_path(p, allow_root=True) for p in paths]


def _list(session, dataset, raw_path: str) -> list[dict]:  # noqa: ANN001
    path = normalize_entry_path(raw_path, allow_root=True)
    return [entry_public(e) for e in entry_repo.list_children(session, dataset=dataset, path=path)]


@router.get("/list")
def list_objects(orgSlug: str, dsSlug: str, session: SessionDep, actor: ActorDep, path: str = "") -> list[dict]:  # noqa: N803
    _, dataset = load_dataset(session, actor=actor, org_slug=orgSlug, ds_slug=dsSlug, need=Permission.read)
    return _list(session, dataset, path)


@router.post("/list")
def list_objects_post(orgSlug: str, dsSlug: str, body: PathBody, session: SessionDep, actor: ActorDep) -> list[dict]:  # noqa: N803
    _, dataset = load_dataset(session, actor=actor, org_slug=orgSlug, ds_slug=dsSlug, need=Permission.read)
    return _list(session, dataset, body.path)


@router.post("/search")
def search_objects(orgSlug: str, dsSlug: str, body: SearchBody, session: SessionDep, actor: ActorDep) -> list[dict]:  # noqa: N803
    """Entries whose name (or path, when the pattern has a '/') matches a glob pattern."""
    _, dataset = load_dataset(session, actor=actor, org_slug=orgSlug, ds_slug=dsSlug, need=Permission.read)
    base = normalize_entry_path(body.path, allow_root=True)
    pattern = body.query or "*"
    candidates = entry_repo.subtree(session, dataset=dataset, path=base) if base else entry_repo.all_entries(
        session, dataset=dataset
    )
    matches = []
    for entry in candidates:
        relative = entry.path[len(base) + 1 :] if base else entry.path
        if not relative or (not body.recursive and "/" in relative):
            continue
        subject = relative if "/" in pattern else PurePosixPath(relative).name
        if fnmatch.fnmatchcase(subject, pattern):
            matches.append(entry_public(entry))
    return matches


@router.get("/obj")
def get_object(orgSlug: str, dsSlug: str, session: SessionDep, actor: ActorDep, path: str) -> dict:  # noqa: N803
    _, dataset = load_dataset(session, actor=actor, org_slug=orgSlug, ds_slug=dsSlug, need=Permission.read)
    return entry_public(entry_repo.get_entry(session, dataset=dataset, path=normalize_entry_path(path)))


@router.post("/obj", status_code=201)
async def upload_object(orgSlug: str, dsSlug: str, request: Request, session: SessionDep, actor: ActorDep, settings: SettingsDep) -> dict:  # noqa: N803
    """Multipart upload: ``file`` and the destination ``path`` (defaults to the file name; a path
    ending in '/' is a folder). Without a file part, ``path`` creates a folder."""
    org, dataset = load_dataset(session, actor=actor, org_slug=orgSlug, ds_slug=dsSlug, need=Permission.write)
    upload = await receive_upload(request, tmp_dir=settings.tmp_dir, max_bytes=settings.max_upload_bytes)
    try:
        raw_path = upload.fields.get("path", "")
        if upload.file is None:
            path = normalize_entry_path(raw_path)
            return await run_in_threadpool(_create_folder, session, settings, org, dataset, path)
        if not raw_path or raw_path.endswith("/"):
            raw_path = f"{raw_path}{_plain_filename(upload.filename)}"
        path = normalize_entry_path(raw_path)
        entry = await run_in_threadpool(
            store_object, session, settings=settings, org=org, dataset=dataset, path=path, upload=upload.file
        )
        return entry_public(entry)
    finally:
        upload.discard()


def _plain_filename(filename: str | None) -> str:
    """The uploaded file name, which must be a bare name (no directories, no traversal)."""
    name = filename or ""
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise InvalidPath(f"file name {name!r} must be a plain name; give the destination in 'path'")
    return name


def _create_folder(session, settings, org, dataset, path: str) -> dict:  # noqa: ANN001
    existing = entry_repo.find_entry(session, dataset=dataset, path=path)
    if existing is not None and existing.type != EntryType.directory.value:
        raise InvalidInput(f"{path!r} is a file", code="path_conflict")
    entry_repo.ensure_directories(session, dataset=dataset, path=f"{path}/x")
    resolve_inside(storage_root(settings, org, dataset), path).mkdir(parents=True, exist_ok=True)
    dataset_repo.touch(session, dataset=dataset)
    session.commit()
    return entry_public(entry_repo.get_entry(session, dataset=dataset, path=path))


@router.put("/obj")
def move(orgSlug: str, dsSlug: str, body: MoveBody, session: SessionDep, actor: ActorDep, settings: SettingsDep) -> list[dict]:  # noqa: N803
    org, dataset = load_dataset(session, actor=actor, org_slug=orgSlug, ds_slug=dsSlug, need=Permission.write)
    entries = move_object(
        session, settings=settings, org=org, dataset=dataset,
        source=normalize_entry_path(body.source), destination=normalize_entry_path(body.dest),
    )
    return [entry_public(e) for e in entries]


@router.delete("/obj")
def delete_object(orgSlug: str, dsSlug: str, session: SessionDep, actor: ActorDep, settings: SettingsDep, path: str) -> dict:  # noqa: N803
    org, dataset = load_dataset(session, actor=actor, org_slug=orgSlug, ds_slug=dsSlug, need=Permission.write)
    removed = delete_objects(session, settings=settings, org=org, dataset=dataset, paths=[normalize_entry_path(path)])
    return {"removed": removed}


@router.delete("/obj/batch")
def delete_batch(orgSlug: str, dsSlug: str, body: PathsBody, session: SessionDep, actor: ActorDep, settings: SettingsDep) -> dict:  # noqa: N803
    org, dataset = load_dataset(session, actor=actor, org_slug=orgSlug, ds_slug=dsSlug, need=Permission.write)
    if not body.paths:
        raise InvalidInput("paths must not be empty", code="empty_paths")
    paths = sorted({normalize_entry_path(p) for p in body.paths})
    removed = delete_objects(session, settings=settings, org=org, dataset=dataset, paths=paths)
    return {"removed": removed}


def _download(session, settings, actor, org_slug: str, ds_slug: str, raw_paths: list[str]):  # noqa: ANN001, ANN202
    org, dataset = load_dataset(session, actor=actor, org_slug=org_slug, ds_slug=ds_slug, need=Permission.read)
    root = storage_root(settings, org, dataset)
    paths = _split_paths(raw_paths) if raw_paths else [""]
    if len(paths) == 1 and paths[0]:
        entry = entry_repo.get_entry(session, dataset=dataset, path=paths[0])
        if entry.type != EntryType.directory.value:
            target = entry_files(session, settings, root, [entry])[entry.path]
            return file_response(target, filename=PurePosixPath(entry.path).name)
    entries: dict[str, Entry] = {}
    for path in paths:
        found = entry_repo.subtree(session, dataset=dataset, path=path) if path else entry_repo.all_files(
            session, dataset=dataset
        )
        if path and not found:
            raise NotFound(f"no entry at {path!r}", code="entry_not_found")
        entries.update((e.path, e) for e in found if e.type != EntryType.directory.value)
    files = entry_files(session, settings, root, list(entries.values()))
    return zip_response(sorted(files.items()), filename=f"{ds_slug}.zip")


@router.get("/download")
def download(
    orgSlug: str, dsSlug: str, session: SessionDep, actor: ActorDep, settings: SettingsDep,  # noqa: N803
    path: Annotated[list[str] | None, Query()] = None,
):
    """One file (``Range`` supported) or a zip stream of several paths / folders / the whole dataset."""
    return _download(session, settings, actor, orgSlug, dsSlug, path or [])


@router.post("/download")
def download_post(orgSlug: str, dsSlug: str, body: PathsBody, session: SessionDep, actor: ActorDep, settings: SettingsDep):  # noqa: N803
    return _download(session, settings, actor, orgSlug, dsSlug, body.paths)
