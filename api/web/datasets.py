"""Pages of organizations and datasets: ``/r/{org}`` (datasets: search, totals, visibility; a form to create one) and
``/r/{org}/{ds}`` (files by folder: sizes, download, move, delete, the upload box; metadata, set and removed by
writers as ``…/meta`` does; the visibility, changed by dataset administrators as ``…/chattr`` does; the STAC link).

Permissions are the JSON API's (``core.registry.access``): a private dataset sends an anonymous caller to the
sign-in page and answers an outsider 404, as ``GET /orgs/{org}/ds/{ds}`` does."""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request, Response
from sqlalchemy import func, or_
from sqlmodel import Session, select

from georeg.api.deps import SessionDep, SettingsDep
from georeg.api.downloads import file_response, zip_response
from georeg.api.errors import status_for
from georeg.api.web.render import PageRoute, redirect, render
from georeg.api.web.session import PageActor, check_csrf
from georeg.core.config import Settings
from georeg.core.errors import Conflict, GeoregError, InvalidInput, NotFound
from georeg.core.models import Dataset, EntryType, Organization, Permission, Visibility
from georeg.core.registry import datasets as dataset_repo
from georeg.core.registry import entries as entry_repo
from georeg.core.registry import meta as meta_repo
from georeg.core.registry import objects
from georeg.core.registry.access import DatasetAccess, check_org, load_dataset, load_org, org_permission
from georeg.core.registry.actor import Actor
from georeg.core.registry.schemas import ChattrRequest, DatasetUpdate
from georeg.core.storage import MAX_PATH_LENGTH, normalize_entry_path

router = APIRouter(prefix="/r", route_class=PageRoute, include_in_schema=False)

DATASETS_PER_PAGE = 50
META_PREVIEW_CHARS = 2000
DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024
"""The upload box's chunk size (at most the server's ``share_max_chunk_bytes``)."""

EntryPathQuery = Annotated[str, Query(max_length=MAX_PATH_LENGTH)]


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_datasets(session: Session, *, org: Organization, include_private: bool, q: str, skip: int,
                    take: int) -> tuple[list[Dataset], int]:
    """The organization's datasets the caller may list (as ``GET /orgs/{org}/ds``: members all, others the public
    ones) whose slug, name or description contains ``q`` (case-insensitive), by slug, with their total."""
    query = select(Dataset).where(Dataset.org_id == org.id)
    if not include_private:
        query = query.where(Dataset.visibility == Visibility.public.value)
    if q:
        pattern = _like(q.lower())
        query = query.where(or_(func.lower(Dataset.slug).like(pattern, escape="\\"),
                                func.lower(Dataset.name).like(pattern, escape="\\"),
                                func.lower(Dataset.description).like(pattern, escape="\\")))
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(Dataset.slug).offset(skip).limit(take)).all()
    return list(rows), int(total)


def _org_page(request: Request, session: Session, *, org: Organization, actor: Actor, q: str, skip: int,
              form: dict[str, str] | None = None, message: str | None = None, status: int = 200) -> Response:
    permission = org_permission(session, org=org, actor=actor)
    rows, total = search_datasets(session, org=org, include_private=permission is not None, q=q.strip(),
                                  skip=skip, take=DATASETS_PER_PAGE)
    datasets = [dataset_repo.dataset_public(session, org=org, dataset=dataset) for dataset in rows]
    context = {"org": org, "datasets": datasets, "total": total, "q": q, "skip": skip, "take": DATASETS_PER_PAGE,
               "can_write": permission is not None and permission.rank >= Permission.write.rank,
               "form": form or {"slug": "", "name": "", "visibility": "private"}, "message": message,
               "visibilities": [v.value for v in Visibility]}
    template = "datasets_table.html" if request.headers.get("hx-request") == "true" else "org.html"
    return render(request, template, context, status=status)


@router.get("/{org_slug}")
def org_datasets(request: Request, org_slug: str, session: SessionDep, actor: PageActor,
                 q: Annotated[str, Query(max_length=200)] = "", skip: Annotated[int, Query(ge=0)] = 0) -> Response:
    org = load_org(session, actor=actor, slug=org_slug, need=Permission.read)
    return _org_page(request, session, org=org, actor=actor, q=q, skip=skip)


@router.post("/{org_slug}")
def create_dataset(request: Request, org_slug: str, session: SessionDep, actor: PageActor,
                   slug: Annotated[str, Form(max_length=128)] = "", name: Annotated[str, Form(max_length=256)] = "",
                   visibility: Annotated[str, Form(max_length=16)] = "private",
                   csrf_token: Annotated[str, Form(max_length=256)] = "") -> Response:
    """Create a dataset (write permission on the organization), then open it."""
    check_csrf(request, csrf_token)
    org = load_org(session, actor=actor, slug=org_slug, need=Permission.read)
    check_org(session, org=org, actor=actor, need=Permission.write)
    form = {"slug": slug, "name": name, "visibility": visibility}
    try:
        if visibility not in {v.value for v in Visibility}:
            raise InvalidInput("choose a visibility: private, unlisted or public")
        dataset = dataset_repo.create_dataset(session, org=org, slug=slug.strip(), name=name.strip() or None,
                                              visibility=Visibility(visibility))
        session.commit()
    except (InvalidInput, Conflict) as exc:
        session.rollback()
        status = 409 if isinstance(exc, Conflict) else 400
        return _org_page(request, session, org=org, actor=actor, q="", skip=0, form=form, message=exc.message,
                         status=status)
    return redirect(request, f"/r/{org.slug}/{dataset.slug}?created=1")


def _meta_rows(session: Session, dataset: Dataset) -> list[dict[str, Any]]:
    rows = []
    for key in meta_repo.list_keys(session, dataset=dataset, path=""):
        try:
            value = meta_repo.get_meta(session, dataset=dataset, key=key.key, path="")
        except NotFound:
            continue
        data = [item.data for item in value] if isinstance(value, list) else value.data
        text = json.dumps(data, ensure_ascii=False, indent=1) if not isinstance(data, str) else data
        rows.append({"key": key.key, "count": key.count,
                     "text": text if len(text) <= META_PREVIEW_CHARS else text[:META_PREVIEW_CHARS] + " …"})
    return rows


def _breadcrumbs(folder: str) -> list[tuple[str, str]]:
    crumbs = []
    parts = folder.split("/") if folder else []
    for index, part in enumerate(parts):
        crumbs.append((part, "/".join(parts[: index + 1])))
    return crumbs


def _dataset_page(request: Request, session: Session, settings: Settings, access: DatasetAccess, *, path: str = "",
                  created: bool = False, notice: str | None = None, meta_form: dict[str, str] | None = None,
                  message: str | None = None, section: str = "", status: int = 200) -> Response:
    folder = normalize_entry_path(path, allow_root=True)
    if folder:
        entry = entry_repo.get_entry(session, dataset=access.dataset, path=folder)
        if entry.type != EntryType.directory.value:
            folder = str(PurePosixPath(folder).parent).strip(".")
    entries = entry_repo.list_children(session, dataset=access.dataset, path=folder)
    entries.sort(key=lambda entry: (entry.type != EntryType.directory.value, entry.path.lower()))
    public = dataset_repo.dataset_public(session, org=access.org, dataset=access.dataset)
    context = {
        "org": access.org, "dataset": public, "folder": folder, "crumbs": _breadcrumbs(folder),
        "entries": [{"name": PurePosixPath(entry.path).name, "path": entry.path, "type": entry.type,
                     "size": entry.size, "mtime": entry.mtime,
                     "is_dir": entry.type == EntryType.directory.value} for entry in entries],
        "can_write": access.allows(Permission.write), "can_admin": access.allows(Permission.admin),
        "meta": _meta_rows(session, access.dataset), "meta_form": meta_form or {"key": "", "value": ""},
        "key_rules": meta_repo.KEY_RULES, "visibilities": [v.value for v in Visibility],
        "created": created, "notice": notice, "message": message, "section": section,
        "chunk_size": min(DEFAULT_CHUNK_BYTES, settings.share_max_chunk_bytes),
    }
    return render(request, "dataset.html", context, status=status)


def _edit_form(session: Session, access: DatasetAccess, key: str) -> dict[str, str] | None:
    """The metadata form filled with the value of the singular ``key`` (as JSON text), to change it."""
    if not key or meta_repo.is_plural(key):
        return None
    try:
        value = meta_repo.get_meta(session, dataset=access.dataset, key=key, path="")
    except GeoregError:
        return None
    return {"key": key, "value": json.dumps(value.data, ensure_ascii=False, indent=1)}


DATASET_NOTICES = {"meta": "Metadata saved.", "meta-removed": "Metadata removed.",
                   "visibility": "Visibility changed."}


@router.get("/{org_slug}/{ds_slug}")
def dataset_page(request: Request, org_slug: str, ds_slug: str, session: SessionDep, settings: SettingsDep,
                 actor: PageActor, path: EntryPathQuery = "", created: int = 0,
                 edit: Annotated[str, Query(max_length=meta_repo.MAX_KEY_LENGTH)] = "",
                 done: Annotated[str, Query(max_length=32)] = "") -> Response:
    access = load_dataset(session, actor=actor, org_slug=org_slug, ds_slug=ds_slug, need=Permission.read)
    meta_form = _edit_form(session, access, edit) if access.allows(Permission.write) else None
    return _dataset_page(request, session, settings, access, path=path, created=bool(created),
                         notice=DATASET_NOTICES.get(done), meta_form=meta_form)


def _dataset_url(access: DatasetAccess) -> str:
    return f"/r/{access.org.slug}/{access.dataset.slug}"


@router.post("/{org_slug}/{ds_slug}/meta")
def set_meta(request: Request, org_slug: str, ds_slug: str, session: SessionDep, settings: SettingsDep,
             actor: PageActor, key: Annotated[str, Form(max_length=1024)] = "",
             value: Annotated[str, Form(max_length=3 * meta_repo.MAX_DATA_BYTES)] = "",
             csrf_token: Annotated[str, Form(max_length=256)] = "") -> Response:
    """Set a singular key's value, or add a value to a plural key (ending in 's'): ``value`` is JSON text, as the
    JSON API's ``POST …/meta/{key}/set`` and ``POST …/meta/{key}`` take it (write permission)."""
    check_csrf(request, csrf_token)
    access = load_dataset(session, actor=actor, org_slug=org_slug, ds_slug=ds_slug, need=Permission.write)
    key = key.strip()
    try:
        data = meta_repo.parse_data(value, what="the value")
        if meta_repo.is_plural(meta_repo.validate_key(key)):
            meta_repo.add_meta(session, dataset=access.dataset, key=key, data=data, path="")
        else:
            meta_repo.set_meta(session, dataset=access.dataset, key=key, data=data, path="")
    except GeoregError as exc:
        session.rollback()
        return _dataset_page(request, session, settings, access, meta_form={"key": key, "value": value},
                             message=exc.message, section="meta", status=status_for(exc))
    return redirect(request, f"{_dataset_url(access)}?done=meta#meta-heading")


@router.post("/{org_slug}/{ds_slug}/meta/remove")
def remove_meta(request: Request, org_slug: str, ds_slug: str, session: SessionDep, settings: SettingsDep,
                actor: PageActor, key: Annotated[str, Form(max_length=1024)] = "",
                csrf_token: Annotated[str, Form(max_length=256)] = "") -> Response:
    """Remove every value of a key (as ``DELETE …/meta/{key}``; write permission)."""
    check_csrf(request, csrf_token)
    access = load_dataset(session, actor=actor, org_slug=org_slug, ds_slug=ds_slug, need=Permission.write)
    try:
        removed = meta_repo.remove_meta(session, dataset=access.dataset, key_or_id=meta_repo.validate_key(key.strip()),
                                        path="")
    except GeoregError as exc:
        session.rollback()
        return _dataset_page(request, session, settings, access, message=exc.message, section="meta",
                             status=status_for(exc))
    if not removed:
        return _dataset_page(request, session, settings, access, message=f"There is no metadata {key.strip()!r}.",
                             section="meta", status=404)
    return redirect(request, f"{_dataset_url(access)}?done=meta-removed#meta-heading")


@router.post("/{org_slug}/{ds_slug}/visibility")
def change_visibility(request: Request, org_slug: str, ds_slug: str, session: SessionDep, settings: SettingsDep,
                      actor: PageActor, visibility: Annotated[str, Form(max_length=16)] = "",
                      csrf_token: Annotated[str, Form(max_length=256)] = "") -> Response:
    """Set the dataset's visibility (as ``POST …/chattr``; admin permission on the dataset)."""
    check_csrf(request, csrf_token)
    access = load_dataset(session, actor=actor, org_slug=org_slug, ds_slug=ds_slug, need=Permission.admin)
    if visibility not in {v.value for v in Visibility}:
        return _dataset_page(request, session, settings, access, section="visibility", status=400,
                             message="Choose a visibility: private, unlisted or public.")
    dataset_repo.update_dataset(session, dataset=access.dataset,
                                update=DatasetUpdate(visibility=ChattrRequest(visibility=visibility).visibility))
    return redirect(request, f"{_dataset_url(access)}?done=visibility")


@router.get("/{org_slug}/{ds_slug}/download")
def download(org_slug: str, ds_slug: str, session: SessionDep, settings: SettingsDep, actor: PageActor,
             path: EntryPathQuery = "") -> Response:
    """A file (``Range`` supported) or a zip of a folder / the whole dataset, as ``GET …/download`` sends them."""
    access = load_dataset(session, actor=actor, org_slug=org_slug, ds_slug=ds_slug, need=Permission.read)
    paths = [normalize_entry_path(path, allow_root=True)]
    entry, files = objects.download_selection(session, settings=settings, org=access.org, dataset=access.dataset,
                                              paths=paths)
    if entry is not None:
        return file_response(files[entry.path], filename=PurePosixPath(entry.path).name)
    name = PurePosixPath(paths[0]).name if paths[0] else access.dataset.slug
    return zip_response(sorted(files.items()), filename=f"{name}.zip")


def _folder_of(path: str) -> str:
    parent = str(PurePosixPath(path).parent)
    return "" if parent == "." else parent


@router.post("/{org_slug}/{ds_slug}/delete")
def delete_entry(request: Request, org_slug: str, ds_slug: str, session: SessionDep, settings: SettingsDep,
                 actor: PageActor, path: Annotated[str, Form(max_length=MAX_PATH_LENGTH)] = "",
                 csrf_token: Annotated[str, Form(max_length=256)] = "") -> Response:
    """Delete a file, or a folder with everything in it (write permission)."""
    check_csrf(request, csrf_token)
    access = load_dataset(session, actor=actor, org_slug=org_slug, ds_slug=ds_slug, need=Permission.write)
    target = normalize_entry_path(path)
    objects.delete_objects(session, settings=settings, org=access.org, dataset=access.dataset, paths=[target])
    return redirect(request, f"/r/{access.org.slug}/{access.dataset.slug}?path={_quote(_folder_of(target))}")


@router.post("/{org_slug}/{ds_slug}/move")
def move_entry(request: Request, org_slug: str, ds_slug: str, session: SessionDep, settings: SettingsDep,
               actor: PageActor, source: Annotated[str, Form(max_length=MAX_PATH_LENGTH)] = "",
               destination: Annotated[str, Form(max_length=MAX_PATH_LENGTH)] = "",
               csrf_token: Annotated[str, Form(max_length=256)] = "") -> Response:
    """Move (rename) a file or folder; ``destination`` is the new path in the dataset (write permission)."""
    check_csrf(request, csrf_token)
    access = load_dataset(session, actor=actor, org_slug=org_slug, ds_slug=ds_slug, need=Permission.write)
    source_path, destination_path = normalize_entry_path(source), normalize_entry_path(destination)
    try:
        objects.move_object(session, settings=settings, org=access.org, dataset=access.dataset, source=source_path,
                            destination=destination_path)
    except GeoregError:
        session.rollback()
        raise
    return redirect(request,
                    f"/r/{access.org.slug}/{access.dataset.slug}?path={_quote(_folder_of(destination_path))}")


def _quote(text: str) -> str:
    return quote(text, safe="")
