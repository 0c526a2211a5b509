"""``/orgs``: organizations."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from sqlmodel import Session

from georeg.api.deps import ActorDep, CurrentUser, PageDep, SessionDep, SettingsDep
from georeg.core.models import Organization, OrgCreate, OrgPublic, OrgUpdate, Permission
from georeg.core.registry import orgs as org_repo
from georeg.core.registry.guards import load_org
from georeg.core.registry.objects import remove_org_files

router = APIRouter(prefix="/orgs", tags=["organizations"])


def org_public(session: Session, org: Organization) -> dict:
    return OrgPublic(
        slug=org.slug, name=org.name, description=org.description, is_public=org.is_public,
        owner=org_repo.owner_name(session, org=org), creation_date=org.created_at,
    ).model_dump(by_alias=True, mode="json")


@router.get("")
def list_orgs(session: SessionDep, actor: ActorDep, page: PageDep) -> dict:
    """Organizations visible to the caller (anonymous callers see public ones), with a total."""
    orgs, total = org_repo.list_orgs(session, actor=actor, skip=page.skip, take=page.take)
    return page.envelope([org_public(session, org) for org in orgs], total)


@router.get("/public")
def list_public_orgs(session: SessionDep, actor: ActorDep, page: PageDep) -> dict:
    orgs, total = org_repo.list_orgs(session, actor=actor, public_only=True, skip=page.skip, take=page.take)
    return page.envelope([org_public(session, org) for org in orgs], total)


@router.post("", status_code=status.HTTP_201_CREATED)
def create_org(body: OrgCreate, session: SessionDep, user: CurrentUser) -> dict:
    org = org_repo.create_org(
        session, slug=body.slug, name=body.name, description=body.description, is_public=body.is_public, owner=user
    )
    session.commit()
    return org_public(session, org)


@router.get("/{orgSlug}")
def get_org(orgSlug: str, session: SessionDep, actor: ActorDep) -> dict:  # noqa: N803
    return org_public(session, load_org(session, actor=actor, slug=orgSlug, need=Permission.read))


@router.put("/{orgSlug}")
def update_org(orgSlug: str, body: OrgUpdate, session: SessionDep, actor: ActorDep) -> dict:  # noqa: N803
    org = load_org(session, actor=actor, slug=orgSlug, need=Permission.admin)
    for field in body.model_fields_set:
        value = getattr(body, field)
        if value is not None:
            setattr(org, field, value)
    session.add(org)
    session.commit()
    return org_public(session, org)


@router.delete("/{orgSlug}", status_code=status.HTTP_204_NO_CONTENT)
def delete_org(orgSlug: str, session: SessionDep, actor: ActorDep, settings: SettingsDep) -> Response:  # noqa: N803
    org = load_org(session, actor=actor, slug=orgSlug, need=Permission.admin)
    owner = session.get(org_repo.User, org.owner_id) if org.owner_id else None
    org_repo.ensure_not_personal(org, user=owner)
    session.delete(org)
    session.commit()
    remove_org_files(settings, org_slug=orgSlug)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
