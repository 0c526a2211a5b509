"""One Prefect flow per task tool; each is deployed as ``<tool id>/<tool id>`` (see prefect.yaml).

A flow-run process imports this module before its run can enter Running (the task's Processing), so it
imports Prefect only: a shipped tool is named by its id here and loaded, with the registry database code
and whatever the tool needs (rasterio, SQLModel, ...), inside the run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prefect import Flow, flow, get_run_logger

if TYPE_CHECKING:
    from georeg.core.tasks.model import Tool


def tool_flow(tool: Tool | str) -> Flow:
    """A thin flow running one attempt of a task of ``tool`` in the worker: a :class:`Tool`, or the id of a
    shipped tool, looked up when a run starts."""
    tool_id = tool if isinstance(tool, str) else tool.id
    description = None if isinstance(tool, str) else tool.description

    @flow(name=tool_id, description=description, flow_run_name=f"{tool_id}-{{task_id}}", log_prints=True)
    def run_task(task_id: str) -> dict:
        return run_tool(tool, task_id)

    return run_task


def run_tool(tool: Tool | str, task_id: str) -> dict:
    """Run one attempt of task ``task_id`` with ``tool`` (a :class:`Tool` or a shipped tool's id)."""
    from georeg.core.config import Settings
    from georeg.core.db import make_engine
    from georeg.core.tasks.runner import execute_task
    from georeg.core.tasks.tools import shipped_tool

    if isinstance(tool, str):
        tool_id, tool = tool, shipped_tool(tool)
        if tool is None:
            raise ValueError(f"no shipped tool {tool_id!r}")
    settings = Settings()
    engine = make_engine(settings.effective_database_url)
    try:
        return execute_task(settings, engine, task_id=task_id, tool=tool, logger=get_run_logger())
    finally:
        engine.dispose()


archive_extract = tool_flow("archive-extract")
bulk_download = tool_flow("bulk-download")
csw_ingest = tool_flow("csw-ingest")
netcdf_geotiff = tool_flow("netcdf-geotiff")
raster_export = tool_flow("raster-export")
rescan_index = tool_flow("rescan-index")
generate_thumbnails = tool_flow("generate-thumbnails")
prune_missing = tool_flow("prune-missing")
rehash = tool_flow("rehash")
resync = tool_flow("resync")
seed_tiles = tool_flow("seed-tiles")
sentinel_safe = tool_flow("sentinel-safe")
