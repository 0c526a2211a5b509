"""``/orgs/{orgSlug}/ds``: datasets."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from sqlmodel import Session

from georeg.api.deps import ActorDep, PageDep, SessionDep, SettingsDep
from georeg.core.models import (
    CamelModel,
    Dataset,
    DatasetCreate,
    DatasetPublic,
    DatasetUpdate,
    EntryPublic,
    Organization,
    Permission,
    Visibility,
)
from georeg.core.registry import datasets as dataset_repo
from georeg.core.registry import entries as entry_repo
from georeg.core.registry.access import dataset_permission, org_permission
from georeg.core.registry.guards import load_dataset, load_org
from georeg.core.registry.objects import remove_dataset_files, rename_dataset_files
from georeg.core.timeutil import utcnow

router = APIRouter(prefix="/orgs/{orgSlug}/ds", tags=["datasets"])


class RenameRequest(CamelModel):
    slug: str


class ChattrRequest(CamelModel):
    visibility: Visibility


def dataset_public(session: Session, org: Organization, dataset: Dataset) -> dict:
    count, size = dataset_repo.dataset_totals(session, dataset=dataset)
    return DatasetPublic(
        slug=dataset.slug, org_slug=org.slug, name=dataset.name, description=dataset.description,
        visibility=Visibility(dataset.visibility), meta=dataset.meta, creation_date=dataset.created_at,
        last_update=dataset.updated_at, entries=count, size=size,
    ).model_dump(by_alias=True, mode="json")


def entry_public(entry) -> dict:  # noqa: ANN001
    return EntryPublic(
        id=entry.public_id, path=entry.path, type=entry.type, size=entry.size, hash=entry.sha256, mtime=entry.mtime,
        properties=entry.properties, footprint=entry.footprint, crs=entry.crs, bounds=entry.bounds,
    ).model_dump(by_alias=True, mode="json")


@router.get("")
def list_datasets(orgSlug: str, session: SessionDep, actor: ActorDep, page: PageDep) -> dict:  # noqa: N803
    """Datasets of the organization: members see all, others the public ones."""
    org = load_org(session, actor=actor, slug=orgSlug, need=Permission.read)
    include_private = org_permission(session, org=org, actor=actor) is not None
    rows, total = dataset_repo.list_datasets(
        session, org=org, include_private=include_private, skip=page.skip, take=page.take
    )
    return page.envelope([dataset_public(session, org, ds) for ds in rows], total)


@router.post("", status_code=status.HTTP_201_CREATED)
def create_dataset(orgSlug: str, body: DatasetCreate, session: SessionDep, actor: ActorDep) -> dict:  # noqa: N803
    org = load_org(session, actor=actor, slug=orgSlug, need=Permission.write)
    dataset = dataset_repo.create_dataset(
        session, org=org, slug=body.slug, name=body.name, description=body.description, visibility=body.visibility
    )
    session.commit()
    return dataset_public(session, org, dataset)


@router.get("/{dsSlug}")
def get_dataset_entries(orgSlug: str, dsSlug: str, session: SessionDep, actor: ActorDep) -> list[dict]:  # noqa: N803
    """The dataset's root entries (DroneDB's ``GET /orgs/{org}/ds/{ds}``)."""
    _, dataset = load_dataset(session, actor=actor, org_slug=orgSlug, ds_slug=dsSlug, need=Permission.read)
    return [entry_public(e) for e in entry_repo.list_children(session, dataset=dataset, path="")]


@router.get("/{dsSlug}/ex")
def get_dataset_info(orgSlug: str, dsSlug: str, session: SessionDep, actor: ActorDep) -> dict:  # noqa: N803
    """Extended information: the dataset plus the caller's permissions."""
    org, dataset = load_dataset(session, actor=actor, org_slug=orgSlug, ds_slug=dsSlug, need=Permission.read)
    info = dataset_public(session, org, dataset)
    permission = dataset_permission(session, org=org, dataset=dataset, actor=actor)
    info["permissions"] = {
        "canRead": True,
        "canWrite": bool(permission and permission.rank >= Permission.write.rank),
        "canDelete": bool(permission and permission.rank >= Permission.admin.rank),
    }
    return info


@router.get("/{dsSlug}/stamp")
def get_dataset_stamp(orgSlug: str, dsSlug: str, session: SessionDep, actor: ActorDep) -> dict:  # noqa: N803
    _, dataset = load_dataset(session, actor=actor, org_slug=orgSlug, ds_slug=dsSlug, need=Permission.read)
    return dataset_repo.dataset_stamp(session, dataset=dataset)


@router.put("/{dsSlug}")
def update_dataset(
    orgSlug: str, dsSlug: str, body: DatasetUpdate, session: SessionDep, actor: ActorDep  # noqa: N803
) -> dict:
    need = Permission.admin if body.visibility is not None else Permission.write
    org, dataset = load_dataset(session, actor=actor, org_slug=orgSlug, ds_slug=dsSlug, need=need)
    for field in body.model_fields_set:
        value = getattr(body, field)
        if value is not None:
            setattr(dataset, field, value.value if isinstance(value, Visibility) else value)
    dataset.updated_at = utcnow()
    session.add(dataset)
    session.commit()
    return dataset_public(session, org, dataset)


@router.delete("/{dsSlug}", status_code=status.HTTP_204_NO_CONTENT)
def delete_dataset(
    orgSlug: str, dsSlug: str, session: SessionDep, actor: ActorDep, settings: SettingsDep  # noqa: N803
) -> Response:
    org, dataset = load_dataset(session, actor=actor, org_slug=orgSlug, ds_slug=dsSlug, need=Permission.admin)
    session.delete(dataset)
    session.commit()
    remove_dataset_files(settings, org_slug=org.slug, dataset_slug=dsSlug)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{dsSlug}/rename")
def rename_dataset(
    orgSlug: str, dsSlug: str, body: RenameRequest, session: SessionDep, actor: ActorDep, settings: SettingsDep  # noqa: N803
) -> dict:
    org, dataset = load_dataset(session, actor=actor, org_slug=orgSlug, ds_slug=dsSlug, need=Permission.admin)
    dataset_repo.rename_dataset(session, org=org, dataset=dataset, new_slug=body.slug)
    rename_dataset_files(settings, org_slug=org.slug, old_slug=dsSlug, new_slug=body.slug)
    try:
        session.commit()
    except Exception:
        rename_dataset_files(settings, org_slug=org.slug, old_slug=body.slug, new_slug=dsSlug)
        raise
    return dataset_public(session, org, dataset)


@router.post("/{dsSlug}/chattr")
def change_attributes(
    orgSlug: str, dsSlug: str, body: ChattrRequest, session: SessionDep, actor: ActorDep  # noqa: N803
) -> dict:
    org, dataset = load_dataset(session, actor=actor, org_slug=orgSlug, ds_slug=dsSlug, need=Permission.admin)
    dataset.visibility = body.visibility.value
    dataset.updated_at = utcnow()
    session.add(dataset)
    session.commit()
    return dataset_public(session, org, dataset)
