"""``/sys`` administration (admins only; others ``403``): move datasets, merge organizations, remove empty
datasets, take visibility from metadata, purge old task records, reconcile a dataset with its files."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.concurrency import run_in_threadpool
from sqlmodel import Session

from georeg.api.deps import ActorDep, AdminUser, SessionDep, SettingsDep, TaskServiceDep
from georeg.api.schemas import AUTH_ERRORS, COMMON_ERRORS, errors
from georeg.api.tasks.views import job_accepted
from georeg.core.config import Settings
from georeg.core.errors import InvalidParameters
from georeg.core.models import CamelModel, UtcDateTime
from georeg.core.registry import admin, imports
from georeg.core.registry import datasets as dataset_repo
from georeg.core.registry import orgs as org_repo
from georeg.core.slugs import SLUG_PATTERN
from georeg.core.tasks.lifecycle import purge_finished_tasks
from georeg.core.tasks.schemas import JobAccepted
from georeg.core.tasks.tools.check_artifacts import CHECK_ARTIFACTS
from georeg.core.tasks.tools.registry_cleanup import REGISTRY_CLEANUP
from georeg.core.tasks.tools.registry_import import REGISTRY_IMPORT
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


@router.post("/cleanup", status_code=200, responses={**errors(404, 503), 202: {"model": JobAccepted}})
async def cleanup(actor: ActorDep, _: AdminUser, session: SessionDep, settings: SettingsDep, tasks: TaskServiceDep,
                  response: Response, org_slug: Annotated[Slug | None, Query(alias="orgSlug")] = None,
                  ds_slug: Annotated[Slug | None, Query(alias="dsSlug")] = None) -> admin.DatasetCleanup | JobAccepted:
    """Remove the rows of entries whose files are gone from storage, and the build artifacts of contents no entry
    holds any more. With ``orgSlug`` and ``dsSlug``: that dataset, answered synchronously with its report. With
    neither: every dataset, as a ``registry-cleanup`` task (202; its result is the report)."""
    if org_slug is None and ds_slug is None:
        submission = await tasks.submit_registry_job(actor=actor, tool_id=REGISTRY_CLEANUP.id, parameters={},
                                                     force=False)
        response.status_code = 202 if submission.created else 200
        return job_accepted(submission.task)
    if org_slug is None or ds_slug is None:
        raise InvalidParameters("name both orgSlug and dsSlug (one dataset), or neither (every dataset)",
                                code="dataset_incomplete")
    return await run_in_threadpool(_cleanup_dataset, session, settings, org_slug, ds_slug)


def _cleanup_dataset(session: Session, settings: Settings, org_slug: str, ds_slug: str) -> admin.DatasetCleanup:
    org = org_repo.get_org(session, slug=org_slug)
    dataset = dataset_repo.get_dataset(session, org=org, slug=ds_slug)
    return admin.cleanup_dataset(session, settings=settings, org=org, dataset=dataset)


class BuildPendingStatus(CamelModel):
    """The figures of the newest finished artifact-completeness scan (``None`` before the first)."""

    job_id: str | None
    state: str | None
    finished_at: UtcDateTime | None
    figures: dict[str, Any] | None


@router.post("/check-artifact-completeness", status_code=202, responses=errors(503))
async def check_artifact_completeness(actor: ActorDep, _: AdminUser, tasks: TaskServiceDep,
                                      response: Response) -> JobAccepted:
    """Scan every dataset for buildable entries (georeferenced rasters, LAS/LAZ point clouds) whose builds are
    missing and queue their builds (a new flow run each time: follow it with ``GET /datasets/jobs/{jobId}``);
    ``GET /sys/build-pending-status`` reports its figures."""
    submission = await tasks.submit_registry_job(actor=actor, tool_id=CHECK_ARTIFACTS.id, parameters={}, force=True)
    response.status_code = 202 if submission.created else 200
    return job_accepted(submission.task)


@router.get("/build-pending-status")
async def build_pending_status(_: AdminUser, tasks: TaskServiceDep) -> BuildPendingStatus:
    """The newest finished scan: buildable contents, built, missing, queued, already queued, not queued."""
    scan = await tasks.latest_succeeded(CHECK_ARTIFACTS.id)
    if scan is None:
        return BuildPendingStatus(job_id=None, state=None, finished_at=None, figures=None)
    return BuildPendingStatus(job_id=scan.id, state=scan.state, finished_at=scan.finished_at, figures=scan.result)


IMPORT_ERRORS = {**errors(400, 404, 502, 503, 504)}


async def _start_import(actor: ActorDep, tasks: TaskServiceDep, settings: SettingsDep,
                        request: imports.ImportOrganizationRequest) -> JobAccepted:
    parameters = await tasks.in_thread(imports.prepare_import, settings, request)
    try:
        submission = await tasks.submit_registry_job(actor=actor, tool_id=REGISTRY_IMPORT.id, parameters=parameters,
                                                     force=True)
    except BaseException:
        imports.drop_credentials(settings, parameters["credentials_id"])
        raise
    return job_accepted(submission.task)


@router.post("/import-dataset", status_code=202, responses=IMPORT_ERRORS)
async def import_dataset(actor: ActorDep, _: AdminUser, body: imports.ImportDatasetRequest, settings: SettingsDep,
                         tasks: TaskServiceDep) -> JobAccepted:
    """Copy a dataset from another registry (georeg or DroneDB-compatible) as a ``registry-import`` job (202; follow
    it with ``GET /datasets/jobs/{jobId}``; its result is ``{importedItems, skippedFiles, totalSize, errors}``).
    The URL, the slugs, the credentials and the dataset's existence are checked first: ``400 invalid_source_url``,
    ``403 download_host_not_allowed`` / ``address_not_allowed``, ``400 source_auth_failed``, ``404 source_not_found``,
    ``502 source_unreachable``, ``504 source_timeout``."""
    return await _start_import(actor, tasks, settings, body)


@router.post("/import-organization", status_code=202, responses=IMPORT_ERRORS)
async def import_organization(actor: ActorDep, _: AdminUser, body: imports.ImportOrganizationRequest,
                              settings: SettingsDep, tasks: TaskServiceDep) -> JobAccepted:
    """Copy every dataset of another registry's organization that the credentials can read, each under its own slug
    (a ``registry-import`` job, as ``POST /sys/import-dataset``)."""
    return await _start_import(actor, tasks, settings, body)
