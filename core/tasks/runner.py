"""Running one attempt of a task inside a flow run: context, progress, artifact, errors."""

from __future__ import annotations

import logging
import os
import shutil
from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from georeg.core.config import Settings
from georeg.core.errors import Conflict, GeoregError, NotFound
from georeg.core.models import Dataset, Organization, Task
from georeg.core.storage import dataset_dir, sha256_file
from georeg.core.tasks import repository as task_repo
from georeg.core.tasks.lifecycle import artifact_dir, new_task, validated_parameters
from georeg.core.tasks.model import ChildRuns, TaskState, Tool, ToolContext
from georeg.core.timeutil import utcnow


def _update(engine: Engine, task_id: str, **fields: object) -> None:
    with Session(engine) as session:
        task = session.get(Task, task_id)
        if task is None:
            return
        for name, value in fields.items():
            setattr(task, name, value)
        session.add(task)
        session.commit()


def execute_task(settings: Settings, engine: Engine, *, task_id: str, tool: Tool, logger: logging.Logger,
                 children: ChildRuns | None = None, flow_run_id: str | None = None) -> dict:
    """Run ``tool`` for task ``task_id``; record progress, result and artifact on the task row (``children``:
    how a tool that fans out starts child runs).

    A stale run does nothing: one whose task has finished (it failed because its run could not be created in
    time, or was cancelled), or whose task records another run (``flow_run_id``: this run's id). A queued task
    without a run adopts this one (its creation succeeded but the answer never reached the submitter). The run
    claims its attempt as it starts the tool (:func:`~georeg.core.tasks.repository.claim_attempt`): the same run
    executing a second time (:func:`repeated_execution`) does not run the tool again.
    Errors are recorded on the row and re-raised so that the flow run ends Failed.
    """
    with Session(engine, expire_on_commit=False) as session:
        task = session.get(Task, task_id)
        if task is None:
            raise NotFound(f"task {task_id} not found")
        if flow_run_id and task.flow_run_id is None and task.state == TaskState.queued.value:
            # the run started before the submitter heard of it (Prefect's answer was lost): the task adopts it
            task_repo.record_flow_run(session, task_id=task_id, attempt=task.attempts, flow_run_id=flow_run_id)
            session.refresh(task)
        attempt = task.attempts
        if not _runnable(task, flow_run_id) or not task_repo.claim_attempt(
                session, task_id=task_id, attempt=attempt, flow_run_id=flow_run_id,
                progress={"percent": 0.0, "phase": "starting", "message": ""}):
            session.refresh(task)
            return _refuse(task, flow_run_id, logger)
        dataset = session.get(Dataset, task.dataset_id)
        org = session.get(Organization, task.org_id)
        params = tool.parameters.model_validate(task.parameters)

    work_dir = artifact_dir(settings, task_id) / f"work-{attempt}"
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True, exist_ok=True)
    last = {"percent": -1.0, "phase": ""}

    def report(percent: float, phase: str, message: str) -> None:
        if percent - last["percent"] < 1 and phase == last["phase"] and percent < 100:
            return
        last.update(percent=percent, phase=phase)
        try:
            _update(engine, task_id, progress={"percent": round(percent, 1), "phase": phase, "message": message})
        except OperationalError as exc:
            logger.warning("progress not recorded (%s)", exc.__class__.__name__)

    context = ToolContext(
        task_id=task_id, settings=settings, engine=engine, org_slug=org.slug, dataset_id=dataset.id,
        dataset_slug=dataset.slug, dataset_root=dataset_dir(settings.storage_dir, org.slug, dataset.slug),
        path=task.path, work_dir=work_dir, report=report, logger=logger, children=children,
    )
    try:
        outcome = tool.run(context, params)
    except Exception as exc:
        message = exc.message if isinstance(exc, GeoregError) else f"{type(exc).__name__}: {exc}"
        _update(engine, task_id, error=message, progress={**last, "message": message})
        shutil.rmtree(work_dir, ignore_errors=True)
        raise
    artifact = None
    if outcome.artifact is not None:
        target = artifact_dir(settings, task_id) / f"result-{attempt}{tool.artifact_extension or ''}"
        os.replace(outcome.artifact, target)
        size, sha256 = sha256_file(target)
        artifact = {
            "file": target.name, "sizeBytes": size, "sha256": sha256,
            "expiresAt": (utcnow() + timedelta(hours=settings.artifact_ttl_hours)).isoformat(),
        }
    shutil.rmtree(work_dir, ignore_errors=True)
    fields: dict = {"result": outcome.result, "progress": {"percent": 100.0, "phase": "done", "message": ""}}
    if artifact:
        fields.update(artifact=artifact, artifact_bytes=artifact["sizeBytes"])
    _update(engine, task_id, **fields)
    return {"result": outcome.result, "artifact": artifact}


def _runnable(task: Task, flow_run_id: str | None) -> bool:
    """Whether a run may start ``task``'s current attempt: the task's run, the attempt not started, not finished."""
    return (not TaskState(task.state).is_terminal and (flow_run_id is None or task.flow_run_id == flow_run_id)
            and task.executed_attempt != task.attempts)


def _refuse(task: Task, flow_run_id: str | None, logger: logging.Logger) -> dict:
    """A run that may not start ``task``'s attempt: the same run again (:func:`repeated_execution`), or a stale
    run (``stale_run`` conflict)."""
    if task.executed_attempt == task.attempts and (flow_run_id is None or task.flow_run_id == flow_run_id):
        return repeated_execution(task, logger)
    raise Conflict(f"task {task.id} is {task.state.lower()} with run {task.flow_run_id}: run {flow_run_id} "
                   "is stale and does nothing", code="stale_run")


def repeated_execution(task: Task, logger: logging.Logger) -> dict:
    """What a second execution of the run that already executed ``task``'s attempt does: nothing but repeat the
    first execution's outcome, so that the flow run ends as it did (Prefect lets a finished run without a persisted
    result go back to Pending, and a worker that read it as Scheduled before it finished submits it again)."""
    logger.warning("run %s already executed attempt %s of task %s: this second execution does not run the tool",
                   task.flow_run_id, task.attempts, task.id)
    if (task.progress or {}).get("phase") == "done":
        return {"result": task.result, "artifact": task.artifact}
    raise Conflict(f"run {task.flow_run_id} already executed attempt {task.attempts} of task {task.id}, which did "
                   f"not succeed ({task.error or 'its first execution did not finish'})", code="repeated_run")


def create_scheduled_task(engine: Engine, *, tool: Tool, parameters: dict, flow_run_id: str) -> str:
    """A task row for a run started by a schedule (no user): it shows in the job lists like any other."""
    from georeg.core.rasters.service import registry_location

    validated = validated_parameters(tool, parameters)
    with Session(engine, expire_on_commit=False) as session:
        org, dataset = registry_location(session)
        task = new_task(session, tool=tool, org=org, dataset=dataset, user=None, path=None, parameters=validated,
                        flow_run_id=flow_run_id, state=TaskState.processing,
                        dedup_extra={"scheduled_run": flow_run_id})
        session.commit()
        return task.id
