"""Load an organization or dataset by slug and check the caller's permission in one step."""

from __future__ import annotations

from sqlmodel import Session

from georeg.core.models import Dataset, Organization, Permission
from georeg.core.registry import datasets as dataset_repo
from georeg.core.registry import orgs as org_repo
from georeg.core.registry.access import Actor, check_dataset, check_org


def load_org(session: Session, *, actor: Actor, slug: str, need: Permission) -> Organization:
    org = org_repo.get_org(session, slug=slug)
    check_org(session, org=org, actor=actor, need=need)
    return org


def load_dataset(
    session: Session, *, actor: Actor, org_slug: str, ds_slug: str, need: Permission
) -> tuple[Organization, Dataset]:
    """(org, dataset) if ``actor`` holds ``need`` on the dataset (404 when either does not exist)."""
    org = org_repo.get_org(session, slug=org_slug)
    dataset = dataset_repo.get_dataset(session, org=org, slug=ds_slug)
    check_dataset(session, org=org, dataset=dataset, actor=actor, need=need)
    return org, dataset
