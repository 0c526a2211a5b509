"""One Prefect flow per task tool, derived from the tool list (``georeg.core.tasks.tools.TOOLS``); each is
deployed as ``<tool id>/<tool id>`` (prefect.yaml, entrypoint ``flows/tools.py:<tool_id with underscores>``).

A flow-run process imports this module before its run can enter Running (the task's Processing), so it
imports Prefect and the tool list only: the tool itself is loaded, with the registry database code and
whatever the tool needs (rasterio, SQLModel, ...), inside the run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prefect import Flow, flow, get_run_logger
from prefect.runtime import flow_run

from georeg.core.tasks.tools import TOOLS

if TYPE_CHECKING:
    from georeg.core.config import Settings
    from georeg.core.tasks.model import ChildRuns, Tool


def tool_flow(tool: Tool | str) -> Flow:
    """A thin flow running one attempt of a task of ``tool`` in the worker: a :class:`Tool`, or the id of a
    shipped tool, looked up when a run starts."""
    tool_id = tool if isinstance(tool, str) else tool.id
    description = None if isinstance(tool, str) else tool.description

    @flow(name=tool_id, description=description, flow_run_name=f"{tool_id}-{{task_id}}", log_prints=True)
    def run_task(task_id: str) -> dict:
        return run_tool(tool, task_id)

    return run_task


def child_runs(settings: Settings, tool: Tool) -> ChildRuns | None:
    """Prefect child runs for a tool that fans out (``Tool.fans_out``), else None."""
    if not tool.fans_out:
        return None
    from georeg.flows.children import PrefectChildRuns

    return PrefectChildRuns(settings)


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
        return execute_task(settings, engine, task_id=task_id, tool=tool, logger=get_run_logger(),
                            children=child_runs(settings, tool), flow_run_id=flow_run.get_id())
    finally:
        engine.dispose()


def __getattr__(name: str) -> Flow:
    """``bulk_download`` -> the flow of the ``bulk-download`` tool (made once, on first use)."""
    tool_id = name.replace("_", "-")
    if tool_id not in TOOLS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = tool_flow(tool_id)
    return globals()[name]


def __dir__() -> list[str]:
    return sorted([*globals(), *(tool_id.replace("-", "_") for tool_id in TOOLS)])
