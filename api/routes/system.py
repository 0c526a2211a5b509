"""System routes: version, features, health."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import text

from georeg.api.deps import CurrentUser, EngineDep, SettingsDep, ToolsDep
from georeg.core import __version__
from georeg.core.tasks.model import TaskState

router = APIRouter(tags=["system"])


def _version() -> dict:
    return {"version": __version__, "name": "georeg"}


@router.get("/version")
def version() -> dict:
    return _version()


@router.get("/sys/version")
def sys_version() -> dict:
    return _version()


@router.get("/sys/features")
def features(settings: SettingsDep, tools: ToolsDep) -> dict:
    """Platform capabilities (anonymous), including the task tool catalogue and state machine."""
    return {
        "organizationMemberManagement": True,
        "userManagement": True,
        "storageLimiter": settings.default_user_storage_bytes is not None,
        "maxConcurrentDownloadsPerUser": None,
        "disableAnonymousBulkDownloads": False,
        "passwordPolicy": None,
        "datasetThumbnailCandidates": ["thumbnail.png", "thumbnail.jpg", "cover.png", "cover.jpg"],
        "maxExportSizeBytes": None,
        "maxUploadSizeBytes": settings.max_upload_bytes,
        "bulkDownloadAsyncThresholdBytes": 1024**3,
        "taskTools": [
            {key: value for key, value in tool.describe().items() if key != "parametersSchema"}
            for tool in tools.all()
        ],
        "taskStates": [{"state": state.value, "isTerminal": state.is_terminal} for state in TaskState],
        "hubOptions": None,
        "hubVersion": None,
        "registryVersion": __version__,
        "ddbVersion": None,
    }


@router.get("/quickhealth")
def quickhealth(_: CurrentUser) -> dict:
    return {"status": "Healthy"}


def _check_database(engine) -> tuple[bool, str]:  # noqa: ANN001
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return True, f"ok ({engine.dialect.name})"
    except Exception as exc:  # noqa: BLE001
        return False, f"{exc.__class__.__name__}: {exc}"


def _check_data_dir(settings) -> tuple[bool, str]:  # noqa: ANN001
    probe = settings.tmp_dir / f".health-{uuid.uuid4().hex}"
    try:
        settings.tmp_dir.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"ok")
        probe.unlink()
        return True, f"ok ({settings.resolved_data_dir})"
    except OSError as exc:
        return False, f"not writable: {exc}"


@router.get("/health")
async def health(request: Request, _: CurrentUser, engine: EngineDep, settings: SettingsDep) -> JSONResponse:
    """Database, Prefect API and data dir; 503 when any check fails."""
    results = {
        "database": await run_in_threadpool(_check_database, engine),
        "prefect": await request.app.state.prefect.health(),
        "dataDir": await run_in_threadpool(_check_data_dir, settings),
    }
    healthy = all(ok for ok, _ in results.values())
    body = {
        "status": "Healthy" if healthy else "Unhealthy",
        "checks": {name: {"healthy": ok, "detail": detail} for name, (ok, detail) in results.items()},
    }
    return JSONResponse(body, status_code=200 if healthy else 503)
