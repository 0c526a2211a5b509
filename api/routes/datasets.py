"""``/orgs/{orgSlug}/ds``: datasets."""

from __future__ import annotations

import tempfile
from pathlib import Path

from fastapi import APIRouter, Response, status
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from georeg.api.deps import (
    ActorDep,
    AdministeredDataset,
    PageDep,
    ReadableDataset,
    ReadableOrg,
    SessionDep,
    SettingsDep,
    WritableDataset,
    WritableOrg,
)
from georeg.api.downloads import zip_response
from georeg.api.schemas import AUTH_ERRORS, COMMON_ERRORS, errors
from georeg.core.models import Permission
from georeg.core.registry import datasets as dataset_repo
from georeg.core.registry import ddb_index, objects
from georeg.core.registry import entries as entry_repo
from georeg.core.registry.access import check_dataset, org_permission
from georeg.core.registry.schemas import (
    ChattrRequest,
    DatasetCreate,
    DatasetInfo,
    DatasetPage,
    DatasetPermissions,
    DatasetPublic,
    DatasetStamp,
    DatasetUpdate,
    EntryPublic,
    RenameRequest,
)
from georeg.core.storage import remove_tree

router = APIRouter(prefix="/orgs/{orgSlug}/ds", tags=["datasets"], responses={**COMMON_ERRORS, **AUTH_ERRORS})


@router.get("")
def list_datasets(org: ReadableOrg, session: SessionDep, actor: ActorDep, page: PageDep) -> DatasetPage:
    """Datasets of the organization: members see all, others the public ones."""
    include_private = org_permission(session, org=org, actor=actor) is not None
    rows, total = dataset_repo.list_datasets(session, org=org, include_private=include_private, skip=page.skip,
                                             take=page.take)
    items = [dataset_repo.dataset_public(session, org=org, dataset=dataset) for dataset in rows]
    return DatasetPage(items=items, total=total, skip=page.skip, take=page.take)


@router.post("", status_code=status.HTTP_201_CREATED, responses=errors(409))
def create_dataset(org: WritableOrg, body: DatasetCreate, session: SessionDep) -> DatasetPublic:
    dataset = dataset_repo.create_dataset(session, org=org, slug=body.slug, name=body.name,
                                          description=body.description, visibility=body.visibility)
    session.commit()
    return dataset_repo.dataset_public(session, org=org, dataset=dataset)


@router.get("/{dsSlug}")
def get_dataset_entries(access: ReadableDataset, session: SessionDep) -> list[EntryPublic]:
    """The dataset's root entries (DroneDB's ``GET /orgs/{org}/ds/{ds}``)."""
    return [objects.entry_public(entry) for entry in entry_repo.list_children(session, dataset=access.dataset, path="")]


@router.get("/{dsSlug}/ex")
def get_dataset_info(access: ReadableDataset, session: SessionDep) -> DatasetInfo:
    """Extended information: the dataset plus the caller's permissions."""
    public = dataset_repo.dataset_public(session, org=access.org, dataset=access.dataset)
    permissions = DatasetPermissions(can_read=True, can_write=access.allows(Permission.write),
                                     can_delete=access.allows(Permission.admin))
    return DatasetInfo(**public.model_dump(), permissions=permissions)


@router.get("/{dsSlug}/stamp")
def get_dataset_stamp(access: ReadableDataset, session: SessionDep) -> DatasetStamp:
    return dataset_repo.dataset_stamp(session, dataset=access.dataset)


@router.get("/{dsSlug}/ddb", response_class=StreamingResponse, response_model=None,
            responses={200: {"content": {"application/zip": {}},
                             "description": "``{org}-{ds}-ddb.zip``: index.sqlite and stamp.json"}})
def download_index(access: ReadableDataset, session: SessionDep, settings: SettingsDep) -> StreamingResponse:
    """The dataset index (DroneDB's ``.ddb``): ``index.sqlite`` with tables ``entries(path, hash, type, size, mtime,
    properties)`` and ``entries_meta(id, path, key, data, mtime)``, and ``stamp.json``, in a zip."""
    directory = Path(tempfile.mkdtemp(prefix="ddb-", dir=settings.tmp_dir))
    try:
        files = ddb_index.write_index(session, dataset=access.dataset, directory=directory)
    except BaseException:
        remove_tree(directory)
        raise
    return zip_response(files, filename=f"{access.org.slug}-{access.dataset.slug}-ddb.zip",
                        background=BackgroundTask(remove_tree, directory))


@router.put("/{dsSlug}")
def update_dataset(access: WritableDataset, body: DatasetUpdate, session: SessionDep, actor: ActorDep) -> DatasetPublic:
    """Change name, description, metadata (write permission) or visibility (admin permission)."""
    if body.visibility is not None:
        check_dataset(session, org=access.org, dataset=access.dataset, actor=actor, need=Permission.admin)
    dataset = dataset_repo.update_dataset(session, dataset=access.dataset, update=body)
    return dataset_repo.dataset_public(session, org=access.org, dataset=dataset)


@router.delete("/{dsSlug}", status_code=status.HTTP_204_NO_CONTENT)
def delete_dataset(access: AdministeredDataset, session: SessionDep, settings: SettingsDep) -> Response:
    objects.delete_dataset(session, settings=settings, org=access.org, dataset=access.dataset)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{dsSlug}/rename", responses=errors(409))
def rename_dataset(access: AdministeredDataset, body: RenameRequest, session: SessionDep,
                   settings: SettingsDep) -> DatasetPublic:
    dataset = objects.rename_dataset(session, settings=settings, org=access.org, dataset=access.dataset,
                                     new_slug=body.slug)
    return dataset_repo.dataset_public(session, org=access.org, dataset=dataset)


@router.post("/{dsSlug}/chattr")
def change_attributes(access: AdministeredDataset, body: ChattrRequest, session: SessionDep) -> DatasetPublic:
    """Set the dataset's visibility (``public``, ``unlisted``, ``private``)."""
    update = DatasetUpdate(visibility=body.visibility)
    dataset = dataset_repo.update_dataset(session, dataset=access.dataset, update=update)
    return dataset_repo.dataset_public(session, org=access.org, dataset=dataset)
