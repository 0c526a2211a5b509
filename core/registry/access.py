"""Who may do what: organization membership, dataset visibility and the 401/403/404 rules.

- No token and the resource is not public -> :class:`AuthenticationRequired` (401).
- Authenticated but the resource is invisible to the user -> :class:`NotFound` (404), so private
  datasets and organizations do not leak their existence.
- Visible but the permission is too low -> :class:`PermissionDenied` (403).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

from sqlmodel import Session, select

from georeg.core.errors import AuthenticationRequired, NotFound, PermissionDenied
from georeg.core.models import Dataset, Organization, OrgMember, Permission, Visibility
from georeg.core.registry import datasets as dataset_repo
from georeg.core.registry import orgs as org_repo
from georeg.core.registry.actor import Actor


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


def _deny(actor: Actor, *, visible: bool, what: str, need: Permission) -> NoReturn:
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


def dataset_permission(
    session: Session, *, org: Organization, dataset: Dataset, actor: Actor
) -> Permission | None:
    """Effective permission: the organization's, else read for public and unlisted datasets."""
    permission = org_permission(session, org=org, actor=actor)
    if permission is None and dataset.visibility in (Visibility.public.value, Visibility.unlisted.value):
        return Permission.read
    return permission


def check_dataset(
    session: Session, *, org: Organization, dataset: Dataset, actor: Actor, need: Permission
) -> Permission | None:
    """Raise unless ``actor`` holds ``need`` on ``dataset``; returns the caller's effective permission."""
    permission = dataset_permission(session, org=org, dataset=dataset, actor=actor)
    if permission is not None and permission.rank >= need.rank:
        return permission
    _deny(actor, visible=permission is not None, what=f"dataset {org.slug}/{dataset.slug}", need=need)


@dataclass(frozen=True)
class DatasetAccess:
    """A dataset the caller may use, with its organization and the caller's effective permission."""

    org: Organization
    dataset: Dataset
    permission: Permission | None

    def allows(self, need: Permission) -> bool:
        return self.permission is not None and self.permission.rank >= need.rank


def load_org(session: Session, *, actor: Actor, slug: str, need: Permission) -> Organization:
    """The organization ``slug`` if ``actor`` holds ``need`` on it (401/403/404 otherwise, see the module doc)."""
    org = org_repo.get_org(session, slug=slug)
    check_org(session, org=org, actor=actor, need=need)
    return org


def load_dataset(session: Session, *, actor: Actor, org_slug: str, ds_slug: str, need: Permission) -> DatasetAccess:
    """The dataset ``org_slug/ds_slug`` if ``actor`` holds ``need`` on it (404 when either does not exist)."""
    org = org_repo.get_org(session, slug=org_slug)
    dataset = dataset_repo.get_dataset(session, org=org, slug=ds_slug)
    return DatasetAccess(org=org, dataset=dataset,
                         permission=check_dataset(session, org=org, dataset=dataset, actor=actor, need=need))
