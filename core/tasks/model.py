"""The task platform's core: states, tools, the registry and dedup keys.

A *tool* is a pydantic parameter model plus a function ``run(context, params) -> ToolOutcome``;
each tool is a Prefect deployment (``<tool id>/<tool id>``) whose flow calls
:func:`georeg.core.tasks.runner.execute_task`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from georeg.core.models import Permission
from georeg.core.progress import ProgressCallback


class TaskState(str, Enum):
    queued = "Queued"  # accepted: its flow run is not created yet (the API's submitter retries while Prefect is busy)
    scheduled = "Scheduled"
    enqueued = "Enqueued"
    processing = "Processing"
    succeeded = "Succeeded"
    failed = "Failed"
    cancelled = "Cancelled"
    deleted = "Deleted"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({TaskState.succeeded, TaskState.failed, TaskState.cancelled, TaskState.deleted})
ACTIVE_STATES = frozenset({TaskState.queued, TaskState.scheduled, TaskState.enqueued, TaskState.processing})

PREFECT_STATE_MAP: dict[str, TaskState] = {
    "SCHEDULED": TaskState.scheduled,
    "PENDING": TaskState.enqueued,
    "RUNNING": TaskState.processing,
    "PAUSED": TaskState.processing,
    "CANCELLING": TaskState.processing,
    "COMPLETED": TaskState.succeeded,
    "FAILED": TaskState.failed,
    "CRASHED": TaskState.failed,
    "CANCELLED": TaskState.cancelled,
}


def map_prefect_state(state_type: str, state_name: str | None = None) -> TaskState:
    """Map a Prefect state (type plus name, for AwaitingRetry) onto a georeg task state."""
    if state_name == "AwaitingRetry":
        return TaskState.scheduled
    return PREFECT_STATE_MAP[state_type.upper()]


class ToolOutcome(BaseModel):
    """What a tool returns: a JSON summary and/or an artifact file it wrote."""

    result: dict[str, Any] | None = None
    artifact: Path | None = None


class ChildRuns(Protocol):
    """Flow runs of child tasks, for a tool that fans out (``Tool.fans_out``): its flow gives one (Prefect) in
    :attr:`ToolContext.children`; core code never talks to Prefect itself."""

    def start(self, task_id: str, tool: Tool) -> str:
        """Start ``tool``'s deployment for child task ``task_id`` as a child of the current run; its id."""

    def states(self, flow_run_ids: list[str]) -> dict[str, Any]:
        """The current state of these flow runs (:class:`~georeg.core.tasks.lifecycle.RunState` by id)."""

    def cancel(self, flow_run_id: str) -> None:
        """Cancel a flow run that has not finished."""

    def cancelling(self) -> bool:
        """Whether the current (parent) run is being cancelled."""


@dataclass
class ToolContext:
    """Everything a tool needs: where the dataset lives, where to write, how to report progress."""

    task_id: str
    settings: Any
    engine: Any
    org_slug: str
    dataset_id: int
    dataset_slug: str
    dataset_root: Path
    path: str | None
    work_dir: Path
    report: ProgressCallback
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("georeg.tasks"))
    children: ChildRuns | None = None

    def progress(self, percent: float, phase: str, message: str = "") -> None:
        self.report(max(0.0, min(100.0, percent)), phase, message)


ToolScope = Literal["dataset", "registry"]


@dataclass(frozen=True)
class Tool:
    """A kind of task: its parameters, the function a flow run calls, and who may run it where.

    ``scope`` ``registry`` tools (rehash, prune-missing, ...) work on the whole raster registry and run only on
    its dataset (``default/registry``), started by the Datasets API's routes or a schedule."""

    id: str
    version: str
    title: str
    description: str
    parameters: type[BaseModel]
    run: Callable[[ToolContext, BaseModel], ToolOutcome]
    required_access: Permission = Permission.read
    produces_artifact: bool = False
    artifact_extension: str | None = None
    needs_path: bool = False
    scope: ToolScope = "dataset"
    fans_out: bool = False

    @property
    def deployment(self) -> str:
        """``<flow name>/<deployment name>`` of the tool's Prefect deployment."""
        return f"{self.id}/{self.id}"

    @property
    def flow_attribute(self) -> str:
        """The attribute of ``flows/tools.py`` holding the tool's flow (its prefect.yaml entrypoint)."""
        return flow_attribute(self.id)

    def parameters_schema(self) -> dict:
        return self.parameters.model_json_schema()


def flow_attribute(tool_id: str) -> str:
    """``bulk-download`` -> ``bulk_download``."""
    return tool_id.replace("-", "_")


class ToolRegistry:
    """Tools by id."""

    def __init__(self, tools: list[Tool] | None = None) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools or []:
            self.register(tool)

    def register(self, tool: Tool) -> Tool:
        self._tools[tool.id] = tool
        return tool

    def get(self, tool_id: str) -> Tool | None:
        return self._tools.get(tool_id)

    def all(self) -> list[Tool]:
        return sorted(self._tools.values(), key=lambda tool: tool.id)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def dedup_key(*, tool: Tool, dataset_id: int, path: str | None, user_id: int | None, parameters: dict) -> str:
    """sha256 of tool | version | dataset | path | user | canonical parameters."""
    material = "|".join(
        [tool.id, tool.version, str(dataset_id), path or "", str(user_id or ""), canonical_json(parameters)]
    )
    return hashlib.sha256(material.encode()).hexdigest()
