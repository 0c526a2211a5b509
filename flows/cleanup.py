"""The scheduled ``cleanup`` flow: stale temp files and orphan rows/folders."""

from __future__ import annotations

from datetime import timedelta

from prefect import flow, get_run_logger, task

from georeg.core.cleanup import CleanupReport, run_cleanup
from georeg.core.config import Settings
from georeg.core.db import make_engine, session_scope
from georeg.core.registry.batches import cleanup_batches as cleanup_upload_batches
from georeg.flows.names import BATCH_CLEANUP_FLOW, CLEANUP_FLOW


@task(name="remove-stale-files-and-orphans")
def cleanup_registry(max_age_hours: float | None) -> CleanupReport:
    settings = Settings()
    engine = make_engine(settings.effective_database_url)
    try:
        max_age = timedelta(hours=max_age_hours) if max_age_hours is not None else None
        return run_cleanup(settings, engine, max_age=max_age)
    finally:
        engine.dispose()


@flow(name=CLEANUP_FLOW, log_prints=True)
def cleanup(max_age_hours: float | None = None) -> dict:
    """Remove temp files older than ``max_age_hours`` (default: ``GEOREG_TEMP_FILE_TTL_HOURS``) and orphans."""
    report = cleanup_registry(max_age_hours)
    get_run_logger().info("cleanup finished: %s", report.model_dump())
    return report.model_dump()


@task(name="roll-back-stale-upload-batches")
def roll_back_stale_batches() -> dict:
    settings = Settings()
    engine = make_engine(settings.effective_database_url)
    try:
        with session_scope(engine) as session:
            return cleanup_upload_batches(session, settings=settings).model_dump(by_alias=True)
    finally:
        engine.dispose()


@flow(name=BATCH_CLEANUP_FLOW, log_prints=True)
def cleanup_batches() -> dict:
    """Roll back share/push batches idle for ``GEOREG_UPLOAD_BATCH_TIMEOUT_MINUTES`` (their staged files and chunks
    go) and remove staging folders of no running batch."""
    report = roll_back_stale_batches()
    get_run_logger().info("upload batch cleanup finished: %s", report)
    return report
