"""Administration of the Registry (``/sys``, admins only): move datasets between organizations, merge organizations,
remove empty datasets, take visibility from metadata, and reconcile datasets' rows with their files (and remove the
build artifacts no entry needs any more).

Each dataset moves in its own transaction, its folder with it (and back when the commit fails), so a batch that
stops half-way leaves every dataset either moved or untouched."""

from __future__ import annotations

from enum import Enum

from pydantic import Field
from sqlmodel import Session, select

from georeg.core.config import Settings
from georeg.core.errors import Conflict, GeoregError, InvalidInput
from georeg.core.models import (
    CamelModel,
    Dataset,
    DatasetMeta,
    Entry,
    EntryType,
    Organization,
    OrgMember,
    Permission,
    Raster,
    Task,
    Visibility,
)
from georeg.core.progress import ProgressCallback
from georeg.core.registry import datasets as dataset_repo
from georeg.core.registry import entries as entry_repo
from georeg.core.registry import orgs as org_repo
from georeg.core.registry.artifacts import BUILD_TOOL_ID, remove_orphan_artifacts
from georeg.core.registry.objects import delete_dataset, storage_root
from georeg.core.slugs import validate_slug
from georeg.core.storage import dataset_dir

MAX_DATASETS_PER_MOVE = 1000


class ConflictResolution(str, Enum):
    halt = "halt"
    overwrite = "overwrite"
    rename = "rename"


class MoveDatasetsRequest(CamelModel):
    source_org_slug: str = Field(max_length=128)
    dataset_slugs: list[str] = Field(min_length=1, max_length=MAX_DATASETS_PER_MOVE)
    destination_org_slug: str = Field(max_length=128)
    conflict_resolution: ConflictResolution = ConflictResolution.halt


class MoveResult(CamelModel):
    original_slug: str
    new_slug: str | None = None
    success: bool
    error: str | None = None


class MergeOrganizationsRequest(CamelModel):
    source_org_slug: str = Field(max_length=128)
    destination_org_slug: str = Field(max_length=128)
    conflict_resolution: ConflictResolution = ConflictResolution.halt
    delete_source_organization: bool = False


class MergeResult(CamelModel):
    datasets: list[MoveResult]
    members_merged: int
    source_deleted: bool


class RemovedDatasets(CamelModel):
    removed: list[str] = Field(description="org/ds of each dataset removed")


class VisibilityMigration(CamelModel):
    migrated: list[str] = Field(description="org/ds of each dataset whose visibility was taken from its metadata")


class DatasetCleanup(CamelModel):
    removed_entries: list[str] = Field(description="paths whose rows were removed: their files are gone")
    removed_artifacts: list[str] = Field(default_factory=list, description="content hashes whose build artifacts "
                                         "were removed: no entry of any dataset holds that content any more")
    freed_bytes: int = Field(default=0, description="bytes of build artifacts removed")


class RegistryCleanup(CamelModel):
    """What a cleanup of every dataset removed."""

    datasets: int = Field(description="datasets reconciled with their files")
    removed_entries: dict[str, list[str]] = Field(description="per dataset (``org/ds``), the paths whose rows "
                                                  "were removed; datasets with nothing removed are left out")
    removed_artifacts: list[str] = Field(description="content hashes whose build artifacts were removed")
    freed_bytes: int = Field(description="bytes of build artifacts removed")


def _free_slug(session: Session, org: Organization, slug: str) -> str:
    for number in range(1, 10_000):
        candidate = f"{slug[:120]}-{number}"
        if dataset_repo.find_dataset(session, org=org, slug=candidate) is None:
            return candidate
    raise Conflict(f"no free slug for {slug!r} in {org.slug!r}", code="dataset_exists")


def _move_files(settings: Settings, source: tuple[str, str], target: tuple[str, str]) -> None:
    old = dataset_dir(settings.storage_dir, *source)
    if old.exists():
        new = dataset_dir(settings.storage_dir, *target)
        new.parent.mkdir(parents=True, exist_ok=True)
        old.rename(new)


def move_dataset(session: Session, *, settings: Settings, dataset: Dataset, source: Organization,
                 destination: Organization, resolution: ConflictResolution) -> MoveResult:
    """Move ``dataset`` from ``source`` into ``destination`` (its rows, metadata, rasters and files); a slug taken
    there is an error (``halt``), replaced (``overwrite``) or avoided with a numbered slug (``rename``)."""
    slug = dataset.slug
    taken = dataset_repo.find_dataset(session, org=destination, slug=slug)
    new_slug = slug
    if taken is not None and taken.id != dataset.id:
        if resolution is ConflictResolution.halt:
            raise Conflict(f"dataset {destination.slug}/{slug} already exists", code="dataset_exists")
        if resolution is ConflictResolution.overwrite:
            delete_dataset(session, settings=settings, org=destination, dataset=taken)
        else:
            new_slug = _free_slug(session, destination, slug)
    dataset.org_id, dataset.slug = destination.id, new_slug
    dataset_repo.touch(session, dataset=dataset)
    _move_files(settings, (source.slug, slug), (destination.slug, new_slug))
    try:
        session.commit()
    except Exception:
        session.rollback()
        _move_files(settings, (destination.slug, new_slug), (source.slug, slug))
        raise
    return MoveResult(original_slug=slug, new_slug=new_slug, success=True)


def move_datasets(session: Session, *, settings: Settings, request: MoveDatasetsRequest) -> list[MoveResult]:
    """Move each named dataset; with ``halt`` the first conflict stops the batch (the rest are not attempted)."""
    source = org_repo.get_org(session, slug=request.source_org_slug)
    destination = org_repo.get_org(session, slug=request.destination_org_slug)
    if source.id == destination.id:
        raise InvalidInput("source and destination are the same organization", code="same_organization")
    results: list[MoveResult] = []
    halted = False
    for slug in request.dataset_slugs:
        if halted:
            results.append(MoveResult(original_slug=slug, success=False, error="not attempted: the move halted"))
            continue
        try:
            validate_slug(slug, what="dataset slug")
            dataset = dataset_repo.get_dataset(session, org=source, slug=slug)
            results.append(move_dataset(session, settings=settings, dataset=dataset, source=source,
                                        destination=destination, resolution=request.conflict_resolution))
        except GeoregError as exc:
            session.rollback()
            results.append(MoveResult(original_slug=slug, success=False, error=exc.message))
            halted = request.conflict_resolution is ConflictResolution.halt and isinstance(exc, Conflict)
    return results


def merge_organizations(session: Session, *, settings: Settings, request: MergeOrganizationsRequest) -> MergeResult:
    """Move every dataset of the source into the destination, add the source's members (a member of both keeps
    the higher permission), and delete the source only when asked and every move succeeded."""
    source = org_repo.get_org(session, slug=request.source_org_slug)
    destination = org_repo.get_org(session, slug=request.destination_org_slug)
    slugs = sorted(session.exec(select(Dataset.slug).where(Dataset.org_id == source.id)).all())
    moves = move_datasets(session, settings=settings, request=MoveDatasetsRequest(
        source_org_slug=source.slug, destination_org_slug=destination.slug, dataset_slugs=slugs,
        conflict_resolution=request.conflict_resolution)) if slugs else []
    existing = {m.user_id: m for m in session.exec(select(OrgMember).where(OrgMember.org_id == destination.id))}
    merged = 0
    for member in session.exec(select(OrgMember).where(OrgMember.org_id == source.id)).all():
        if member.user_id == destination.owner_id:
            continue
        current = existing.get(member.user_id)
        if current is None:
            session.add(OrgMember(org_id=destination.id, user_id=member.user_id, permission=member.permission))
            merged += 1
        elif Permission(member.permission).rank > Permission(current.permission).rank:
            current.permission = member.permission
            merged += 1
    session.commit()
    deleted = False
    if request.delete_source_organization and all(move.success for move in moves):
        org_repo.delete_org(session, settings=settings, org=source)
        deleted = True
    return MergeResult(datasets=moves, members_merged=merged, source_deleted=deleted)


def cleanup_empty_datasets(session: Session, *, settings: Settings) -> RemovedDatasets:
    """Remove every dataset without entries or metadata."""
    has_entries = select(Entry.id).where(Entry.dataset_id == Dataset.id).exists()
    has_meta = select(DatasetMeta.id).where(DatasetMeta.dataset_id == Dataset.id).exists()
    empty = session.exec(select(Dataset, Organization).join(Organization, Organization.id == Dataset.org_id)
                         .where(~has_entries, ~has_meta).order_by(Organization.slug, Dataset.slug)).all()
    removed = []
    for dataset, org in empty:
        removed.append(f"{org.slug}/{dataset.slug}")
        delete_dataset(session, settings=settings, org=org, dataset=dataset)
    return RemovedDatasets(removed=removed)


def migrate_visibility(session: Session) -> VisibilityMigration:
    """Set each dataset's visibility from its ``visibility`` metadata (DroneDB's 0/1/2 or a name), newest value."""
    rows = session.exec(select(DatasetMeta, Dataset, Organization).join(Dataset, Dataset.id == DatasetMeta.dataset_id)
                        .join(Organization, Organization.id == Dataset.org_id)
                        .where(DatasetMeta.path == "", DatasetMeta.key == "visibility")
                        .order_by(DatasetMeta.mtime)).all()
    wanted: dict[int, tuple[Dataset, str, Visibility]] = {}
    for value, dataset, org in rows:
        visibility = dataset_repo.parse_visibility(value.data)
        if visibility is not None:
            wanted[dataset.id] = (dataset, f"{org.slug}/{dataset.slug}", visibility)
    migrated = []
    for dataset, name, visibility in wanted.values():
        if dataset.visibility != visibility.value:
            dataset.visibility = visibility.value
            dataset_repo.touch(session, dataset=dataset)
            migrated.append(name)
    session.commit()
    return VisibilityMigration(migrated=sorted(migrated))


def cleanup_dataset(session: Session, *, settings: Settings, org: Organization, dataset: Dataset) -> DatasetCleanup:
    """Remove the rows of file entries whose files are gone from the dataset's storage (entries of rasters
    registered by path are left to the mounted roots)."""
    root = storage_root(settings, org, dataset)
    mounted = select(Raster.entry_id).where(Raster.source_path.is_not(None))
    files = session.exec(select(Entry).where(Entry.dataset_id == dataset.id,
                                             Entry.type != EntryType.directory.value, Entry.id.not_in(mounted))
                         .order_by(Entry.path)).all()
    gone = [entry for entry in files if not (root / entry.path).is_file()]
    for entry in gone:
        entry_repo.delete_entry(session, entry=entry)
    if gone:
        dataset_repo.touch(session, dataset=dataset)
    session.commit()
    built = session.exec(select(Task.parameters).where(Task.dataset_id == dataset.id,
                                                       Task.tool_id == BUILD_TOOL_ID)).all()
    hashes = {entry.sha256 for entry in gone if entry.sha256} | {p.get("hash") for p in built if p and p.get("hash")}
    removed, freed = remove_orphan_artifacts(session, settings=settings, hashes=hashes)
    return DatasetCleanup(removed_entries=[entry.path for entry in gone], removed_artifacts=removed,
                          freed_bytes=freed)


def cleanup_registry(session: Session, *, settings: Settings,
                     report: ProgressCallback | None = None) -> RegistryCleanup:
    """:func:`cleanup_dataset` for every dataset (each in its own transaction), then remove every build whose
    content no entry holds."""
    datasets = session.exec(select(Dataset, Organization).join(Organization, Organization.id == Dataset.org_id)
                            .order_by(Organization.slug, Dataset.slug)).all()
    removed_entries: dict[str, list[str]] = {}
    removed_artifacts: set[str] = set()
    freed = 0
    for index, (dataset, org) in enumerate(datasets):
        name = f"{org.slug}/{dataset.slug}"
        cleaned = cleanup_dataset(session, settings=settings, org=org, dataset=dataset)
        if cleaned.removed_entries:
            removed_entries[name] = cleaned.removed_entries
        removed_artifacts.update(cleaned.removed_artifacts)
        freed += cleaned.freed_bytes
        if report:
            report(90 * (index + 1) / len(datasets), "datasets", name)
    orphans, orphan_bytes = remove_orphan_artifacts(session, settings=settings)
    if report:
        report(100, "artifacts", f"{len(removed_artifacts) + len(orphans)} builds removed")
    return RegistryCleanup(datasets=len(datasets), removed_entries=removed_entries,
                           removed_artifacts=sorted(removed_artifacts | set(orphans)), freed_bytes=freed + orphan_bytes)

