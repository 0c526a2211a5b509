"""``/orgs``: organizations."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from georeg.api.deps import ActorDep, AdministeredOrg, CurrentUser, PageDep, ReadableOrg, SessionDep, SettingsDep
from georeg.api.schemas import AUTH_ERRORS, COMMON_ERRORS, errors
from georeg.core.registry import orgs as org_repo
from georeg.core.registry.schemas import OrgCreate, OrgPage, OrgPublic, OrgUpdate

router = APIRouter(prefix="/orgs", tags=["organizations"], responses=COMMON_ERRORS)


@router.get("")
def list_orgs(session: SessionDep, actor: ActorDep, page: PageDep) -> OrgPage:
    """Organizations visible to the caller (anonymous callers see public ones), with a total."""
    return org_repo.org_page(session, actor=actor, public_only=False, skip=page.skip, take=page.take)


@router.get("/public")
def list_public_orgs(session: SessionDep, actor: ActorDep, page: PageDep) -> OrgPage:
    return org_repo.org_page(session, actor=actor, public_only=True, skip=page.skip, take=page.take)


@router.post("", status_code=status.HTTP_201_CREATED, responses=errors(401, 409))
def create_org(body: OrgCreate, session: SessionDep, user: CurrentUser) -> OrgPublic:
    org = org_repo.create_org(session, slug=body.slug, name=body.name, description=body.description,
                              is_public=body.is_public, owner=user)
    session.commit()
    return org_repo.org_public(session, org=org)


@router.get("/{orgSlug}", responses=AUTH_ERRORS)
def get_org(org: ReadableOrg, session: SessionDep) -> OrgPublic:
    return org_repo.org_public(session, org=org)


@router.put("/{orgSlug}", responses=AUTH_ERRORS)
def update_org(org: AdministeredOrg, body: OrgUpdate, session: SessionDep) -> OrgPublic:
    return org_repo.org_public(session, org=org_repo.update_org(session, org=org, update=body))


@router.delete("/{orgSlug}", status_code=status.HTTP_204_NO_CONTENT, responses=AUTH_ERRORS)
def delete_org(org: AdministeredOrg, session: SessionDep, settings: SettingsDep) -> Response:
    """Delete the organization, its datasets and their files."""
    org_repo.delete_org(session, settings=settings, org=org)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
