"""Shapes the API answers that belong to no domain: the error body, documented on every route, and the system
routes' answers."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from georeg.core.models import CamelModel
from georeg.core.tasks.schemas import ToolSummary


class ErrorBody(BaseModel):
    """Every error answer: a message for people and a stable code for programs (``details`` when there is more)."""

    model_config = ConfigDict(extra="allow")

    error: str = Field(description="what went wrong, for people")
    code: str = Field(description="a stable, machine-readable code (e.g. not_found, invalid_path)")
    details: Any | None = Field(default=None, description="more about the error: invalid fields, limits, ...")


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` documenting ``statuses`` as :class:`ErrorBody` answers."""
    return {status: {"model": ErrorBody, "description": HTTPStatus(status).phrase} for status in statuses}


# Statuses every route can answer: bad input (400), validation (422), and 503 when a database or Prefect is busy.
COMMON_ERRORS = errors(400, 422, 503)
AUTH_ERRORS = errors(401, 403, 404)


class Version(BaseModel):
    version: str
    name: str


class TaskStateInfo(CamelModel):
    state: str
    is_terminal: bool


class Features(CamelModel):
    """Platform capabilities (DroneDB's ``/sys/features``) plus the task tools and states."""

    organization_member_management: bool
    user_management: bool
    storage_limiter: bool
    max_concurrent_downloads_per_user: int | None
    disable_anonymous_bulk_downloads: bool
    password_policy: dict | None
    dataset_thumbnail_candidates: list[str]
    max_export_size_bytes: int | None
    max_upload_size_bytes: int
    bulk_download_async_threshold_bytes: int
    task_tools: list[ToolSummary]
    task_states: list[TaskStateInfo]
    hub_options: dict | None
    hub_version: str | None
    registry_version: str
    ddb_version: str | None


class QuickHealth(BaseModel):
    status: str


class HealthCheck(BaseModel):
    healthy: bool
    detail: str


class Health(BaseModel):
    status: str = Field(description="Healthy, Degraded (the Prefect API does not answer: flow runs wait) or Unhealthy "
                        "(database or data dir failing; then the answer is 503)")
    checks: dict[str, HealthCheck]
