"""Task state machine and the tool registry (tools are added by the task platform)."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel


class TaskState(str, Enum):
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


class ToolSpec(BaseModel):
    id: str
    version: str
    title: str
    description: str
    required_access: str
    produces_artifact: bool
    artifact_extension: str | None = None
    deployment: str


class ToolRegistry:
    """Tools by id. Each tool module registers itself through :meth:`register`."""

    def __init__(self) -> None:
        self._tools: dict[str, ToolSpec] = {}

    def register(self, spec: ToolSpec) -> ToolSpec:
        self._tools[spec.id] = spec
        return spec

    def all(self) -> list[ToolSpec]:
        return sorted(self._tools.values(), key=lambda tool: tool.id)


def default_registry() -> ToolRegistry:
    """The shipped tools (the task platform adds them here)."""
    return ToolRegistry()
