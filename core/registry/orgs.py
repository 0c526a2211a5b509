"""Organizations and their members."""

from __future__ import annotations

from sqlalchemy import func, or_
from sqlmodel import Session, delete, select

from georeg.core.config import Settings
from georeg.core.errors import Conflict, InvalidInput, NotFound
from georeg.core.models import Organization, OrgMember, Permission, User
from georeg.core.registry.actor import Actor
from georeg.core.registry.objects import remove_org_files
from georeg.core.registry.schemas import OrgPage, OrgPublic, OrgUpdate
from georeg.core.slugs import validate_slug


def find_org(session: Session, *, slug: str) -> Organization | None:
    return session.exec(select(Organization).where(Organization.slug == slug)).first()


def get_org(session: Session, *, slug: str) -> Organization:
    org = find_org(session, slug=slug)
    if org is None:
        raise NotFound(f"organization {slug!r} not found", code="org_not_found")
    return org


def create_org(
    session: Session, *, slug: str, name: str, owner: User | None, description: str = "", is_public: bool = False
) -> Organization:
    validate_slug(slug, what="organization slug")
    if find_org(session, slug=slug) is not None:
        raise Conflict(f"organization {slug!r} already exists", code="org_exists")
    org = Organization(
        slug=slug, name=name, description=description, is_public=is_public, owner_id=owner.id if owner else None
    )
    session.add(org)
    session.flush()
    return org


def list_orgs(
    session: Session, *, actor: Actor, public_only: bool = False, skip: int = 0, take: int = 100
) -> tuple[list[Organization], int]:
    """Organizations visible to ``actor``: all for admins, else public, owned and member ones."""
    query = select(Organization)
    if public_only or actor.user is None:
        query = query.where(Organization.is_public.is_(True))
    elif not actor.is_admin:
        member_of = select(OrgMember.org_id).where(OrgMember.user_id == actor.user.id)
        query = query.where(
            or_(Organization.is_public.is_(True), Organization.owner_id == actor.user.id,
                Organization.id.in_(member_of))
        )
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(Organization.slug).offset(skip).limit(take)).all()
    return list(rows), total


def owner_name(session: Session, *, org: Organization) -> str | None:
    if org.owner_id is None:
        return None
    owner = session.get(User, org.owner_id)
    return owner.username if owner else None


def set_user_orgs(session: Session, *, user: User, memberships: dict[str, Permission]) -> None:
    """Replace ``user``'s memberships (organizations it owns are unaffected)."""
    orgs = {}
    for slug in memberships:
        orgs[slug] = get_org(session, slug=slug)
    session.exec(delete(OrgMember).where(OrgMember.user_id == user.id))
    for slug, permission in memberships.items():
        if orgs[slug].owner_id == user.id:
            continue
        session.add(OrgMember(org_id=orgs[slug].id, user_id=user.id, permission=permission.value))
    session.flush()


def ensure_not_personal(org: Organization, *, user: User | None) -> None:
    if user is not None and org.slug == user.username and org.owner_id == user.id:
        raise InvalidInput("a user's personal organization cannot be deleted", code="personal_org")


def org_public(session: Session, *, org: Organization) -> OrgPublic:
    return OrgPublic(slug=org.slug, name=org.name, description=org.description, is_public=org.is_public,
                     owner=owner_name(session, org=org), creation_date=org.created_at)


def org_page(session: Session, *, actor: Actor, public_only: bool, skip: int, take: int) -> OrgPage:
    """A page of the organizations visible to ``actor`` (only public ones with ``public_only``)."""
    orgs, total = list_orgs(session, actor=actor, public_only=public_only, skip=skip, take=take)
    return OrgPage(items=[org_public(session, org=org) for org in orgs], total=total, skip=skip, take=take)


def update_org(session: Session, *, org: Organization, update: OrgUpdate) -> Organization:
    for field in update.model_fields_set:
        value = getattr(update, field)
        if value is not None:
            setattr(org, field, value)
    session.add(org)
    session.commit()
    return org


def delete_org(session: Session, *, settings: Settings, org: Organization) -> None:
    """Delete an organization with its datasets and files (a user's personal organization stays)."""
    owner = session.get(User, org.owner_id) if org.owner_id else None
    ensure_not_personal(org, user=owner)
    slug = org.slug
    session.delete(org)
    session.commit()
    remove_org_files(settings, org_slug=slug)
