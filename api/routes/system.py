"""System routes: version, features, health."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.engine import Engine

from georeg.api.deps import AdminUser, CurrentUser, EngineDep, PrefectDep, SessionDep, SettingsDep, ToolsDep
from georeg.api.schemas import COMMON_ERRORS, Features, Health, HealthCheck, QuickHealth, TaskStateInfo, Version, errors
from georeg.core import __version__
from georeg.core.config import Settings
from georeg.core.rasters.entry_previews import THUMBNAIL_CANDIDATES
from georeg.core.registry.batches import BatchCleanup, cleanup_batches
from georeg.core.tasks.model import TaskState
from georeg.core.tasks.schemas import ToolSummary

router = APIRouter(tags=["system"], responses=COMMON_ERRORS)


@router.get("/version")
def version() -> Version:
    return Version(version=__version__, name="georeg")


@router.get("/sys/version")
def sys_version() -> Version:
    return Version(version=__version__, name="georeg")


@router.get("/sys/features")
def features(settings: SettingsDep, tools: ToolsDep) -> Features:
    """Platform capabilities (anonymous), including the task tool catalogue and state machine."""
    return Features(
        organization_member_management=True, user_management=True,
        storage_limiter=settings.default_user_storage_bytes is not None, max_concurrent_downloads_per_user=None,
        disable_anonymous_bulk_downloads=False, password_policy=None,
        dataset_thumbnail_candidates=THUMBNAIL_CANDIDATES, max_export_size_bytes=None,
        max_upload_size_bytes=settings.max_upload_bytes, bulk_download_async_threshold_bytes=1024**3,
        task_tools=[ToolSummary(id=tool.id, version=tool.version, title=tool.title, description=tool.description,
                                required_access=tool.required_access, produces_artifact=tool.produces_artifact,
                                artifact_extension=tool.artifact_extension) for tool in tools.all()],
        task_states=[TaskStateInfo(state=state.value, is_terminal=state.is_terminal) for state in TaskState],
        hub_options=None, hub_version=None, registry_version=__version__, ddb_version=None,
    )


@router.get("/quickhealth", responses=errors(401))
def quickhealth(_: CurrentUser) -> QuickHealth:
    return QuickHealth(status="Healthy")


def check_database(engine: Engine) -> HealthCheck:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return HealthCheck(healthy=True, detail=f"ok ({engine.dialect.name})")
    except Exception as exc:  # noqa: BLE001 - any failure is the answer
        return HealthCheck(healthy=False, detail=f"{exc.__class__.__name__}: {exc}")


def check_data_dir(settings: Settings) -> HealthCheck:
    probe = settings.tmp_dir / f".health-{uuid.uuid4().hex}"
    try:
        settings.tmp_dir.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"ok")
        probe.unlink()
        return HealthCheck(healthy=True, detail=f"ok ({settings.resolved_data_dir})")
    except OSError as exc:
        return HealthCheck(healthy=False, detail=f"not writable: {exc}")


@router.get("/health", response_model=Health, responses={**errors(401), 503: {"model": Health,
                                                                              "description": "a check failed"}})
async def health(_: CurrentUser, engine: EngineDep, settings: SettingsDep, prefect: PrefectDep) -> JSONResponse:
    """Database, Prefect API and data dir. 503 (``Unhealthy``) when the database or the data dir fails; a Prefect
    API that does not answer makes it ``Degraded`` (200): reads go on and submissions are accepted (their flow runs
    are created once Prefect answers again)."""
    healthy_prefect, detail = await prefect.health()
    checks = {
        "database": await run_in_threadpool(check_database, engine),
        "prefect": HealthCheck(healthy=healthy_prefect, detail=detail),
        "dataDir": await run_in_threadpool(check_data_dir, settings),
    }
    essential = checks["database"].healthy and checks["dataDir"].healthy
    status = "Unhealthy" if not essential else "Healthy" if healthy_prefect else "Degraded"
    body = Health(status=status, checks=checks)
    return JSONResponse(body.model_dump(), status_code=503 if status == "Unhealthy" else 200)


@router.post("/sys/cleanupbatches", responses=errors(401, 403))
def cleanup_upload_batches(_: AdminUser, session: SessionDep, settings: SettingsDep) -> BatchCleanup:
    """Roll back share and push batches idle for ``GEOREG_UPLOAD_BATCH_TIMEOUT_MINUTES`` and remove staging folders
    of no running batch (admin; the ``cleanup-batches`` deployment does the same every 15 minutes)."""
    return cleanup_batches(session, settings=settings)
