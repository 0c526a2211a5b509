"""Scheduled registry maintenance: one flow that records a task and runs a registry tool in it."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from georeg.core.config import Settings
from georeg.core.db import make_engine
from georeg.core.tasks.runner import create_scheduled_task, execute_task
from georeg.core.tasks.tools import PRUNE_MISSING, REHASH, RESYNC
from georeg.core.tasks.tools.csw_harvest import CSW_HARVEST

SCHEDULABLE = {tool.id: tool for tool in (PRUNE_MISSING, REHASH, RESYNC, CSW_HARVEST)}


@flow(name="registry-maintenance", log_prints=True)
def registry_maintenance(tool_id: str, parameters: dict | None = None) -> dict:
    """Run ``rehash``, ``prune-missing``, ``resync`` or ``csw-harvest`` on a schedule, visible in ``/datasets/jobs``."""
    if tool_id not in SCHEDULABLE:
        raise ValueError(f"tool {tool_id!r} cannot be scheduled; choose one of {', '.join(SCHEDULABLE)}")
    tool = SCHEDULABLE[tool_id]
    settings = Settings()
    engine = make_engine(settings.effective_database_url)
    try:
        task_id = create_scheduled_task(engine, tool=tool, parameters=parameters or {}, flow_run_id=str(flow_run.id))
        return execute_task(settings, engine, task_id=task_id, tool=tool, logger=get_run_logger())
    finally:
        engine.dispose()
