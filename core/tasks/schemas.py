"""What the task platform answers: tasks (Registry API, camelCase), jobs (the Datasets API's snake_case view of
the same tasks), tools, logs and submissions."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from georeg.core.models import CamelModel, Permission, UtcDateTime
from georeg.core.paging import OffsetPage, SkipTakePage
from georeg.core.tasks.model import TaskState

MAX_PATH_LENGTH = 1024


class TaskSubmit(CamelModel):
    """The body of ``POST .../tasks``."""

    tool_id: str = Field(min_length=1, max_length=64, description="one of GET .../tasks/tools")
    path: str | None = Field(default=None, max_length=MAX_PATH_LENGTH, description="the entry the tool works on")
    parameters: dict[str, Any] = Field(default_factory=dict, description="matching the tool's parametersSchema")
    force: bool = Field(default=False, description="skip the 24 h dedup of identical submissions")


class ToolSummary(CamelModel):
    id: str
    version: str
    title: str
    description: str
    required_access: Permission
    produces_artifact: bool
    artifact_extension: str | None


class ToolDescription(ToolSummary):
    parameters_schema: dict[str, Any] = Field(description="JSON Schema of the tool's parameters")


class TaskProgress(BaseModel):
    percent: float = 0.0
    phase: str = ""
    message: str = ""


class TaskArtifact(CamelModel):
    size_bytes: int
    sha256: str
    result_url: str
    expires_at: UtcDateTime


class TaskAttempt(CamelModel):
    """An earlier attempt of a retried task; ``restarted``: georeg started the next one itself (its run crashed
    before it started)."""

    attempt: int
    flow_run_id: str | None = None
    state: str
    error: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    restarted: bool = False


class TaskPublic(CamelModel):
    task_id: str
    tool_id: str
    version: str
    state: TaskState
    org_slug: str
    ds_slug: str
    path: str | None
    parameters: dict[str, Any]
    user_name: str | None
    progress: TaskProgress
    created_at: UtcDateTime
    started_at: UtcDateTime | None
    finished_at: UtcDateTime | None
    log_cursor: str | None = Field(description="follow the log from the tail with GET .../log?since=<cursor>")
    log_tail: list[str] | None = Field(description="the last 200 log lines (single-task views only)")
    artifact: TaskArtifact | None
    result: dict[str, Any] | None
    error: str | None
    flow_run_id: str | None
    attempts: int
    history: list[TaskAttempt]


class TaskPage(SkipTakePage[TaskPublic]):
    """A page of tasks."""


class TaskLog(BaseModel):
    lines: list[str]
    cursor: str = Field(description="opaque; pass it as ``since`` to read on")
    complete: bool = Field(description="the run ended and every line was returned")


class CancelOutcome(CamelModel):
    task_id: str
    state: TaskState
    cancel_requested: bool = False


class ClearedTasks(BaseModel):
    deleted: int


class JobPublic(BaseModel):
    """The Datasets API's snake_case view of a task."""

    job_id: str
    tool_id: str
    status: TaskState
    state: TaskState
    org: str
    dataset: str
    path: str | None
    parameters: dict[str, Any]
    progress: TaskProgress
    created_at: UtcDateTime
    started_at: UtcDateTime | None
    finished_at: UtcDateTime | None
    error: str | None
    result: dict[str, Any] | None
    result_url: str | None
    status_url: str
    flow_run_id: str | None
    attempts: int


class JobPage(OffsetPage[JobPublic]):
    """A page of jobs."""


class JobAccepted(BaseModel):
    """A job that was queued (202), or the identical recent one (200)."""

    job_id: str
    status_url: str
    tool_id: str
    status: TaskState


class JobCancelOutcome(BaseModel):
    job_id: str
    status: TaskState
    cancel_requested: bool = False
