"""One Prefect flow per task tool; each is deployed as ``<tool id>/<tool id>`` (see prefect.yaml)."""

from __future__ import annotations

from prefect import Flow, flow, get_run_logger

from georeg.core.config import Settings
from georeg.core.db import make_engine
from georeg.core.task_runner import execute_task
from georeg.core.tasks import Tool
from georeg.core.tools import (
    ARCHIVE_EXTRACT,
    BULK_DOWNLOAD,
    GENERATE_THUMBNAILS,
    PRUNE_MISSING,
    RASTER_EXPORT,
    REHASH,
    RESCAN_INDEX,
    RESYNC,
    SEED_TILES,
)


def tool_flow(tool: Tool) -> Flow:
    """A thin flow running one attempt of a task of ``tool`` in the worker."""

    @flow(name=tool.id, description=tool.description, flow_run_name=f"{tool.id}-{{task_id}}", log_prints=True)
    def run_task(task_id: str) -> dict:
        settings = Settings()
        engine = make_engine(settings.effective_database_url)
        try:
            return execute_task(settings, engine, task_id=task_id, tool=tool, logger=get_run_logger())
        finally:
            engine.dispose()

    return run_task


archive_extract = tool_flow(ARCHIVE_EXTRACT)
bulk_download = tool_flow(BULK_DOWNLOAD)
raster_export = tool_flow(RASTER_EXPORT)
rescan_index = tool_flow(RESCAN_INDEX)
generate_thumbnails = tool_flow(GENERATE_THUMBNAILS)
prune_missing = tool_flow(PRUNE_MISSING)
rehash = tool_flow(REHASH)
resync = tool_flow(RESYNC)
seed_tiles = tool_flow(SEED_TILES)
