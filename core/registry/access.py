"""Who may do what: organization membership, dataset visibility and the 401/403/404 rules.

- No token and the resource is not public -> :class:`AuthenticationRequired` (401).
- Authenticated but the resource is invisible to the user -> :class:`NotFound` (404), so private
  datasets and organizations do not leak their existence.
- Visible but the permission is too low -> :class:`PermissionDenied` (403).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, select

from georeg.core.errors import AuthenticationRequired, NotFound, PermissionDenied
from georeg.core.models import Dataset, Organization, OrgMember, Permission, User, Visibility


@dataclass(frozen=True)
class Actor:
    """The caller: a user (or ``None`` when anonymous) and whether it holds the admin role."""

    user: User | None
    is_admin: bool = False

    @property
    def anonymous(self) -> bool:
        return self.user is None

    @property
    def username(self) -> str | None:
        return self.user.username if self.user else None


ANONYMOUS = Actor(user=None)


def require_user(actor: Actor) -> User:
    if actor.user is None:
        raise AuthenticationRequired("authentication required")
    return actor.user


def require_admin(actor: Actor) -> User:
    user = require_user(actor)
    if not actor.is_admin:
        raise PermissionDenied("administrator role required", code="admin_required")
    return user


def org_permission(session: Session, *, org: Organization, actor: Actor) -> Permission | None:
    """The caller's permission on ``org``: admin for system admins and owners, else membership."""
    if actor.user is None:
        return None
    if actor.is_admin or org.owner_id == actor.user.id:
        return Permission.admin
    member = session.exec(
        select(OrgMember).where(OrgMember.org_id == org.id, OrgMember.user_id == actor.user.id)
    ).first()
    return Permission(member.permission) if member else None


def _deny(actor: Actor, *, visible: bool, what: str, need: Permission) -> None:
    if actor.anonymous:
        raise AuthenticationRequired(f"authentication required to access {what}")
    if not visible:
        raise NotFound(f"{what} not found", code="not_found")
    raise PermissionDenied(f"{need.value} permission required on {what}")


def check_org(session: Session, *, org: Organization, actor: Actor, need: Permission) -> Permission | None:
    """Raise unless ``actor`` holds ``need`` on ``org`` (reading a public org needs nothing)."""
    permission = org_permission(session, org=org, actor=actor)
    if need is Permission.read and (org.is_public or permission is not None):
        return permission
    if permission is not None and permission.rank >= need.rank:
        return permission
    _deny(actor, visible=org.is_public or permission is not None, what=f"organization {org.slug!r}", need=need)
    return permission


def dataset_permission(
    session: Session, *, org: Organization, dataset: Dataset, actor: Actor
) -> Permission | None:
    """Effective permission: the organization's, else read for public and unlisted datasets."""
    permission = org_permission(session, org=org, actor=actor)
    if permission is None and dataset.visibility in (Visibility.public.value, Visibility.unlisted.value):
        return Permission.read
    return permission


def check_dataset(session: Session, *, org: Organization, dataset: Dataset, actor: Actor, need: Permission) -> None:
    permission = dataset_permission(session, org=org, dataset=dataset, actor=actor)
    if permission is not None and permission.rank >= need.rank:
        return
    _deny(actor, visible=permission is not None, what=f"dataset {org.slug}/{dataset.slug}", need=need)
