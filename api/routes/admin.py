"""``/sys`` administration (admins only; others ``403``): move datasets, merge organizations, remove empty
datasets, take visibility from metadata, purge old task records, reconcile a dataset with its files."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from georeg.api.deps import AdminUser, SessionDep, SettingsDep
from georeg.api.schemas import AUTH_ERRORS, COMMON_ERRORS, errors
from georeg.core.models import CamelModel
from georeg.core.registry import admin
from georeg.core.registry import datasets as dataset_repo
from georeg.core.registry import orgs as org_repo
from georeg.core.slugs import SLUG_PATTERN
from georeg.core.tasks.lifecycle import purge_finished_tasks
from georeg.core.timeutil import utcnow

router = APIRouter(prefix="/sys", tags=["administration"], responses={**COMMON_ERRORS, **AUTH_ERRORS, **errors(403)})
Slug = Annotated[str, Query(max_length=128, json_schema_extra={"pattern": SLUG_PATTERN})]


class DeletedRecords(CamelModel):
    deleted: int


@router.post("/move-datasets", responses=errors(400, 404))
def move_datasets(_: AdminUser, body: admin.MoveDatasetsRequest, session: SessionDep,
                  settings: SettingsDep) -> list[admin.MoveResult]:
    """Move datasets to another organization; a slug taken there halts the batch, is overwritten or renamed."""
    return admin.move_datasets(session, settings=settings, request=body)


@router.post("/merge-organizations", responses=errors(404))
def merge_organizations(_: AdminUser, body: admin.MergeOrganizationsRequest, session: SessionDep,
                        settings: SettingsDep) -> admin.MergeResult:
    """Move every dataset and member of one organization into another; the source goes only if every move
    succeeded (and ``deleteSourceOrganization``)."""
    return admin.merge_organizations(session, settings=settings, request=body)


@router.post("/cleanupdatasets")
def cleanup_datasets(_: AdminUser, session: SessionDep, settings: SettingsDep) -> admin.RemovedDatasets:
    """Remove every dataset that holds no entries and no metadata."""
    return admin.cleanup_empty_datasets(session, settings=settings)


@router.post("/migratevisibility")
def migrate_visibility(_: AdminUser, session: SessionDep) -> admin.VisibilityMigration:
    """Set datasets' visibility from their ``visibility`` metadata (DroneDB's 0/1/2 or a name)."""
    return admin.migrate_visibility(session)


@router.post("/cleanup-jobindices")
def cleanup_job_indices(_: AdminUser, session: SessionDep, settings: SettingsDep,
                        retention_days: Annotated[int, Query(alias="retentionDays", ge=1, le=36500)] = 60,
                        ) -> DeletedRecords:
    """Remove the records (and result files) of tasks that finished more than ``retentionDays`` ago."""
    deleted = purge_finished_tasks(session, settings, older_than=utcnow() - timedelta(days=retention_days))
    return DeletedRecords(deleted=deleted)


@router.post("/cleanup", responses=errors(404))
def cleanup_dataset(_: AdminUser, session: SessionDep, settings: SettingsDep,
                    org_slug: Annotated[Slug, Query(alias="orgSlug")],
                    ds_slug: Annotated[Slug, Query(alias="dsSlug")]) -> admin.DatasetCleanup:
    """Remove the rows of a dataset's entries whose files are gone from storage (a synchronous report)."""
    org = org_repo.get_org(session, slug=org_slug)
    dataset = dataset_repo.get_dataset(session, org=org, slug=ds_slug)
    return admin.cleanup_dataset(session, settings=settings, org=org, dataset=dataset)
