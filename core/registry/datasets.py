"""Datasets inside organizations."""

from __future__ import annotations

import hashlib

from sqlalchemy import func
from sqlmodel import Session, select

from georeg.core.errors import Conflict, NotFound
from georeg.core.models import Dataset, DatasetMeta, Entry, EntryType, Organization, Visibility
from georeg.core.registry.schemas import DatasetPublic, DatasetStamp, DatasetUpdate
from georeg.core.slugs import validate_slug
from georeg.core.timeutil import utcnow


def get_dataset(session: Session, *, org: Organization, slug: str) -> Dataset:
    dataset = session.exec(select(Dataset).where(Dataset.org_id == org.id, Dataset.slug == slug)).first()
    if dataset is None:
        raise NotFound(f"dataset {org.slug}/{slug} not found", code="dataset_not_found")
    return dataset


def find_dataset(session: Session, *, org: Organization, slug: str) -> Dataset | None:
    return session.exec(select(Dataset).where(Dataset.org_id == org.id, Dataset.slug == slug)).first()


def create_dataset(
    session: Session,
    *,
    org: Organization,
    slug: str,
    name: str | None = None,
    description: str = "",
    visibility: Visibility = Visibility.private,
) -> Dataset:
    validate_slug(slug, what="dataset slug")
    if find_dataset(session, org=org, slug=slug) is not None:
        raise Conflict(f"dataset {org.slug}/{slug} already exists", code="dataset_exists")
    dataset = Dataset(org_id=org.id, slug=slug, name=name or slug, description=description, visibility=visibility.value)
    session.add(dataset)
    session.flush()
    return dataset


def list_datasets(
    session: Session, *, org: Organization, include_private: bool, skip: int = 0, take: int = 100
) -> tuple[list[Dataset], int]:
    """Datasets of ``org``; without ``include_private`` only public ones (unlisted are reachable by link)."""
    query = select(Dataset).where(Dataset.org_id == org.id)
    if not include_private:
        query = query.where(Dataset.visibility == Visibility.public.value)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(Dataset.slug).offset(skip).limit(take)).all()
    return list(rows), total


def touch(session: Session, *, dataset: Dataset) -> None:
    dataset.updated_at = utcnow()
    session.add(dataset)


def rename_dataset(session: Session, *, org: Organization, dataset: Dataset, new_slug: str) -> Dataset:
    validate_slug(new_slug, what="dataset slug")
    if new_slug != dataset.slug and find_dataset(session, org=org, slug=new_slug) is not None:
        raise Conflict(f"dataset {org.slug}/{new_slug} already exists", code="dataset_exists")
    dataset.slug = new_slug
    touch(session, dataset=dataset)
    session.flush()
    return dataset


def dataset_totals(session: Session, *, dataset: Dataset) -> tuple[int, int]:
    """(number of file entries, total bytes)."""
    count, size = session.exec(
        select(func.count(), func.coalesce(func.sum(Entry.size), 0)).where(
            Entry.dataset_id == dataset.id, Entry.type != EntryType.directory.value
        )
    ).one()
    return int(count), int(size or 0)


def dataset_stamp(session: Session, *, dataset: Dataset) -> DatasetStamp:
    """DroneDB's stamp: every entry's hash ('' for folders) by path and every metadata id ascending; the checksum is
    the sha256 of each entry's path then hash, in path order, followed by each metadata id in ascending order."""
    digest = hashlib.sha256()
    rows = session.exec(select(Entry.path, Entry.sha256).where(Entry.dataset_id == dataset.id)).all()
    entries = {path: sha or "" for path, sha in rows}
    # sorted in Python (code points): the databases' collations need not agree on the order of paths and ids
    for path in sorted(entries):
        digest.update(path.encode())
        digest.update(entries[path].encode())
    meta_ids = sorted(session.exec(select(DatasetMeta.id).where(DatasetMeta.dataset_id == dataset.id)).all())
    for meta_id in meta_ids:
        digest.update(meta_id.encode())
    return DatasetStamp(checksum=digest.hexdigest(), entries=[{path: entries[path]} for path in sorted(entries)],
                        meta=meta_ids)


def dataset_public(session: Session, *, org: Organization, dataset: Dataset) -> DatasetPublic:
    count, size = dataset_totals(session, dataset=dataset)
    return DatasetPublic(
        slug=dataset.slug, org_slug=org.slug, name=dataset.name, description=dataset.description,
        visibility=Visibility(dataset.visibility), meta=dataset.meta, creation_date=dataset.created_at,
        last_update=dataset.updated_at, entries=count, size=size,
    )


def update_dataset(session: Session, *, dataset: Dataset, update: DatasetUpdate) -> Dataset:
    """Apply the fields ``update`` sets (null ones are left as they are)."""
    for field in update.model_fields_set:
        value = getattr(update, field)
        if value is not None:
            setattr(dataset, field, value.value if isinstance(value, Visibility) else value)
    touch(session, dataset=dataset)
    session.commit()
    return dataset


VISIBILITY_CODES = {0: Visibility.private, 1: Visibility.unlisted, 2: Visibility.public}
"""DroneDB's visibility numbers."""


def parse_visibility(value: object) -> Visibility | None:
    """A visibility from DroneDB's 0/1/2 (a number or its text) or a name; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return VISIBILITY_CODES.get(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text.isdigit():
            return VISIBILITY_CODES.get(int(text))
        return next((item for item in Visibility if item.value == text), None)
    return None
