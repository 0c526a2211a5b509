"""The two views of a task: the Registry API's camelCase task and the Datasets API's snake_case job."""

from __future__ import annotations

from georeg.core.models import Dataset, Organization, Task, User
from georeg.core.tasks.model import TaskState
from georeg.core.tasks.schemas import (
    JobAccepted,
    JobPublic,
    TaskArtifact,
    TaskAttempt,
    TaskProgress,
    TaskPublic,
)


def result_url(org: Organization, dataset: Dataset, task: Task) -> str:
    return f"/orgs/{org.slug}/ds/{dataset.slug}/tasks/{task.id}/result"


def status_url(task: Task) -> str:
    return f"/datasets/jobs/{task.id}"


def task_public(task: Task, *, org: Organization, dataset: Dataset, user: User | None,
                log_tail: list[str] | None = None, log_cursor: str | None = None) -> TaskPublic:
    artifact = None
    if task.artifact:
        artifact = TaskArtifact(size_bytes=task.artifact["sizeBytes"], sha256=task.artifact["sha256"],
                                result_url=result_url(org, dataset, task), expires_at=task.artifact["expiresAt"])
    return TaskPublic(
        task_id=task.id, tool_id=task.tool_id, version=task.tool_version, state=TaskState(task.state),
        org_slug=org.slug, ds_slug=dataset.slug, path=task.path, parameters=task.parameters,
        user_name=user.username if user else None, progress=TaskProgress(**(task.progress or {})),
        created_at=task.created_at, started_at=task.started_at, finished_at=task.finished_at,
        log_cursor=log_cursor, log_tail=log_tail, artifact=artifact, result=task.result, error=task.error,
        flow_run_id=task.flow_run_id, attempts=task.attempts,
        history=[TaskAttempt.model_validate(item) for item in task.history],
    )


def job_public(task: Task, *, org: Organization, dataset: Dataset) -> JobPublic:
    state = TaskState(task.state)
    return JobPublic(
        job_id=task.id, tool_id=task.tool_id, status=state, state=state, org=org.slug, dataset=dataset.slug,
        path=task.path, parameters=task.parameters, progress=TaskProgress(**(task.progress or {})),
        created_at=task.created_at, started_at=task.started_at, finished_at=task.finished_at, error=task.error,
        result=task.result, result_url=result_url(org, dataset, task) if task.artifact else None,
        status_url=status_url(task), flow_run_id=task.flow_run_id, attempts=task.attempts,
    )


def job_accepted(task: Task) -> JobAccepted:
    return JobAccepted(job_id=task.id, status_url=status_url(task), tool_id=task.tool_id,
                       status=TaskState(task.state))
