"""Scheduled registry maintenance: one flow that records a task and runs a registry tool in it."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from georeg.core.config import Settings
from georeg.core.db import make_engine
from georeg.core.tasks.runner import create_scheduled_task, execute_task
from georeg.core.tasks.tools import TOOLS, shipped_tool
from georeg.flows.tools import child_runs


@flow(name="registry-maintenance", log_prints=True)
def registry_maintenance(tool_id: str, parameters: dict | None = None) -> dict:
    """Run a registry tool (``rehash``, ``prune-missing``, ``resync``, ``csw-harvest`` ...) on a schedule, visible
    in ``/datasets/jobs``."""
    tool = shipped_tool(tool_id)
    if tool is None or tool.scope != "registry":
        schedulable = [name for name in TOOLS if shipped_tool(name).scope == "registry"]
        raise ValueError(f"tool {tool_id!r} cannot be scheduled; choose one of {', '.join(schedulable)}")
    settings = Settings()
    engine = make_engine(settings.effective_database_url)
    try:
        task_id = create_scheduled_task(engine, tool=tool, parameters=parameters or {}, flow_run_id=str(flow_run.id))
        return execute_task(settings, engine, task_id=task_id, tool=tool, logger=get_run_logger(),
                            children=child_runs(settings, tool))
    finally:
        engine.dispose()
