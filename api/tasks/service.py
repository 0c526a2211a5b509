"""The task service: submitting, showing and steering tasks, for every route that starts or steers work.

Submission: the tool and its parameters are checked, an identical recent task is answered instead of a new one
(dedup), the quotas are enforced, then the task row is written and its first flow run created; when the run
cannot be created the row (and any run Prefect stored) is removed again, so nothing is left half-done.

Reading never writes: a task shown is its row with the state of its flow run laid over it (or the cached
state when Prefect cannot answer); rows are brought up to date by the writers here and by the state
synchroniser (:mod:`georeg.api.tasks.sync`).

Database work runs in worker threads (one session per service, used by one thread at a time); only the calls
to Prefect are awaited on the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

import anyio
from sqlalchemy.engine import Engine
from sqlmodel import Session

from georeg.api.prefect_client import PrefectClient
from georeg.api.tasks.logs import log_tail, read_log
from georeg.api.tasks.submitter import TaskSubmitter
from georeg.api.tasks.views import job_public, task_public
from georeg.core.config import Settings
from georeg.core.errors import (
    Conflict,
    GeoregError,
    Gone,
    InvalidInput,
    InvalidParameters,
    NotFound,
    PermissionDenied,
    ServiceUnavailable,
)
from georeg.core.models import Dataset, Organization, Permission, Task, User
from georeg.core.rasters.service import REGISTRY_DATASET, REGISTRY_ORG, registry_location
from georeg.core.registry import entries as entry_repo
from georeg.core.registry import users as user_repo
from georeg.core.registry.access import DatasetAccess, check_dataset, load_dataset
from georeg.core.registry.actor import Actor, require_user
from georeg.core.storage import normalize_entry_path
from georeg.core.tasks import repository as task_repo
from georeg.core.tasks.lifecycle import (
    RunState,
    apply_run,
    artifact_dir,
    begin_retry,
    check_active_quota,
    check_output_quota,
    mark_deleted,
    new_task,
    validated_parameters,
)
from georeg.core.tasks.model import ACTIVE_STATES, TaskState, Tool, ToolRegistry, dedup_key, map_prefect_state
from georeg.core.tasks.schemas import (
    CancelOutcome,
    ClearedTasks,
    JobPage,
    JobPublic,
    TaskLog,
    TaskPage,
    TaskPublic,
    TaskSubmit,
    ToolDescription,
)
from georeg.core.tasks.tools.build import BUILD, BUILDABLE, NotBuildable, buildable_artifact
from georeg.core.timeutil import as_utc, utcnow

logger = logging.getLogger(__name__)
Result = TypeVar("Result")
POLL_SECONDS = 0.5
MAX_BUILDS_PER_UPLOAD = 100
RETRYABLE = (TaskState.failed.value, TaskState.cancelled.value)


@dataclass(frozen=True)
class Submission:
    """A submitted task, where it runs, and whether the submission created it (else it is an identical recent
    one)."""

    task: Task
    org: Organization
    dataset: Dataset
    created: bool


@dataclass(frozen=True)
class ResultFile:
    path: Path
    filename: str
    sha256: str


class TaskService:
    """Tasks for one request: its own session (closed by :meth:`close`), the Prefect client and the tools."""

    def __init__(self, *, engine: Engine, settings: Settings, prefect: PrefectClient, tools: ToolRegistry,
                 submitter: TaskSubmitter | None = None) -> None:
        self.settings = settings
        self.prefect = prefect
        self.tools = tools
        self.submitter = submitter
        self.session = Session(engine, expire_on_commit=False)

    def close(self) -> None:
        self.session.close()

    async def in_thread(self, function: Callable[..., Result], /, *args: object, **kwargs: object) -> Result:
        """``function(*args, **kwargs)`` in a worker thread (database work stays off the event loop). A caller
        cancelled meanwhile (the API shutting down cancels the synchroniser) waits for the call to end before the
        cancellation goes on, so that :meth:`close` never runs while another thread still uses the session."""
        call = asyncio.ensure_future(anyio.to_thread.run_sync(functools.partial(function, *args, **kwargs)))
        try:
            return await asyncio.shield(call)
        except asyncio.CancelledError:
            await asyncio.wait([call])
            if not call.cancelled():
                call.exception()  # retrieved: what the caller sees is its cancellation
            raise

    # --- tools ---------------------------------------------------------------------------------------------------

    def tool(self, tool_id: str) -> Tool:
        tool = self.tools.get(tool_id)
        if tool is None:
            raise NotFound(f"unknown tool {tool_id!r}; available: {', '.join(t.id for t in self.tools.all())}",
                           code="tool_not_found")
        return tool

    def tool_descriptions(self) -> list[ToolDescription]:
        return [describe_tool(tool) for tool in self.tools.all()]

    # --- submission ----------------------------------------------------------------------------------------------

    async def submit(self, *, actor: Actor, org_slug: str, ds_slug: str, request: TaskSubmit) -> Submission:
        """A task of ``request.tool_id`` on a dataset (the tool's required access is checked)."""
        require_user(actor)
        tool = self.tool(request.tool_id)
        access = await self.in_thread(self._load_dataset, actor, org_slug, ds_slug, tool.required_access)
        if tool.scope == "registry" and (access.org.slug, access.dataset.slug) != (REGISTRY_ORG, REGISTRY_DATASET):
            raise InvalidInput(f"tool {tool.id!r} works on the raster registry ({REGISTRY_ORG}/{REGISTRY_DATASET}) "
                               "only; start it through the Datasets API", code="registry_tool")
        path = normalize_entry_path(request.path) if request.path else None
        return await self._start(actor, access.org, access.dataset, tool, path, request.parameters, request.force)

    async def submit_registry_job(self, *, actor: Actor, tool_id: str, parameters: dict,
                                  force: bool = False) -> Submission:
        """A job of a registry tool on the raster registry's dataset (``default/registry``); an identical recent
        one is answered instead unless ``force``."""
        require_user(actor)
        tool = self.tool(tool_id)
        org, dataset = await self.in_thread(self._registry_location, actor, tool.required_access)
        return await self._start(actor, org, dataset, tool, None, parameters, force)

    def _load_dataset(self, actor: Actor, org_slug: str, ds_slug: str, need: Permission) -> DatasetAccess:
        return load_dataset(self.session, actor=actor, org_slug=org_slug, ds_slug=ds_slug, need=need)

    def _registry_location(self, actor: Actor, need: Permission) -> tuple[Organization, Dataset]:
        org, dataset = registry_location(self.session)
        check_dataset(self.session, org=org, dataset=dataset, actor=actor, need=need)
        return org, dataset

    async def _start(self, actor: Actor, org: Organization, dataset: Dataset, tool: Tool, path: str | None,
                     parameters: dict, force: bool) -> Submission:
        user = require_user(actor)
        if tool.needs_path and not path:
            raise InvalidParameters(f"tool {tool.id!r} needs the 'path' of an entry")
        parameters = validated_parameters(tool, parameters)
        if not force:
            existing = await self._identical(tool, dataset, path, user, parameters)
            if existing is not None:
                return Submission(task=existing, org=org, dataset=dataset, created=False)
        await self._check_quotas(actor, org)
        task = await self.in_thread(self._create_row, tool, org, dataset, user, path, parameters)
        await self._hand_to_submitter(task)
        return Submission(task=task, org=org, dataset=dataset, created=True)

    async def _hand_to_submitter(self, task: Task) -> None:
        """The queued ``task`` goes to the submitter, which creates its flow run; wait a little for it so that
        the answer usually carries the run (``GEOREG_TASK_SUBMIT_WAIT_SECONDS``), then show the row as it is."""
        if self.submitter is None:
            raise RuntimeError("this task service has no submitter")
        self.submitter.accept(task.id)
        await self.submitter.wait(task.id, self.settings.task_submit_wait_seconds)
        await self.in_thread(self.session.refresh, task)

    async def _identical(self, tool: Tool, dataset: Dataset, path: str | None, user: User,
                         parameters: dict) -> Task | None:
        """A task of the last ``GEOREG_TASK_DEDUP_HOURS`` with the same tool, version, dataset, path, user and
        parameters that did not fail or get cancelled."""
        key = dedup_key(tool=tool, dataset_id=dataset.id, path=path, user_id=user.id, parameters=parameters)
        since = utcnow() - timedelta(hours=self.settings.task_dedup_hours)
        candidates = await self.in_thread(task_repo.dedup_candidates, self.session, key=key, since=since)
        await self.sync(candidates)
        return next((task for task in candidates if task.state not in RETRYABLE), None)

    async def _check_quotas(self, actor: Actor, org: Organization) -> None:
        if actor.is_admin and self.settings.admins_exempt_from_quotas:
            return
        active = await self.in_thread(task_repo.active_tasks, self.session, user_id=actor.user.id)
        if len(active) >= self.settings.max_active_tasks_per_user:
            # cached states go stale only towards "active": ask Prefect before refusing (and only then, so that a
            # burst of submissions does not re-read every active run on each one)
            await self.sync(active)
            active = [task for task in active if TaskState(task.state) in ACTIVE_STATES]
        check_active_quota(active, settings=self.settings, username=actor.username)
        await self.in_thread(check_output_quota, self.session, settings=self.settings, org=org)

    def _create_row(self, tool: Tool, org: Organization, dataset: Dataset, user: User, path: str | None,
                    parameters: dict) -> Task:
        task = new_task(self.session, tool=tool, org=org, dataset=dataset, user=user, path=path,
                        parameters=parameters, state=TaskState.queued)
        self.session.commit()
        return task

    def _save(self, task: Task) -> None:
        self.session.add(task)
        self.session.commit()

    # --- flow-run states -----------------------------------------------------------------------------------------

    async def _runs(self, tasks: list[Task]) -> dict[str, RunState]:
        ids = [task.flow_run_id for task in tasks if task.flow_run_id and TaskState(task.state) in ACTIVE_STATES]
        return await self.prefect.flow_runs(ids) if ids else {}

    def _apply(self, tasks: list[Task], runs: dict[str, RunState], *, persist: bool) -> None:
        """Lay each run's state over its task (re-reading the row first when the run ended: the worker's last
        writes landed after it was read); ``persist`` commits the changes, otherwise they stay in memory."""
        changed = False
        for task in tasks:
            run = runs.get(task.flow_run_id) if task.flow_run_id else None
            if run is not None and map_prefect_state(run.state_type, run.state_name).is_terminal:
                self._reread(task)
            if not persist and task in self.session:
                self.session.expunge(task)
            changed = apply_run(task, run, restart=True) or changed
        if persist and changed:
            self.session.commit()

    def _reread(self, task: Task) -> None:
        """Load ``task``'s row again (also into a task :meth:`show` detached from the session)."""
        if task in self.session:
            self.session.refresh(task)
            return
        row = self.session.get(Task, task.id, populate_existing=True)
        if row is not None:
            for column in (column.key for column in Task.__table__.columns):
                setattr(task, column, getattr(row, column))
            self.session.expunge(row)

    async def sync(self, tasks: list[Task]) -> None:
        """Bring active tasks' rows up to date with their flow runs (for writers: 503 when Prefect cannot answer);
        a task whose run crashed before it started is queued again, for the submitter."""
        runs = await self._runs(tasks)
        attempts = {task.id: task.attempts for task in tasks}
        await self.in_thread(self._apply, tasks, runs, persist=True)
        if self.submitter is not None:
            for task in tasks:
                if task.attempts != attempts[task.id]:
                    self.submitter.accept(task.id)

    async def show(self, tasks: list[Task]) -> None:
        """Lay the current state of their flow runs over tasks about to be shown, without writing; the cached
        states stand when Prefect cannot answer (they go stale only towards "active")."""
        try:
            runs = await self._runs(tasks)
        except ServiceUnavailable as exc:
            logger.info("task states not read, showing cached ones: %s", exc)
            runs = {}
        await self.in_thread(self._apply, tasks, runs, persist=False)

    async def wait(self, task: Task, seconds: float) -> Task:
        """Poll a job's flow run until it is terminal or ``seconds`` have passed (the job is accepted already: a
        Prefect API too busy to answer leaves it as last seen)."""
        deadline = time.monotonic() + seconds
        while True:
            await self.show([task])
            if TaskState(task.state).is_terminal or time.monotonic() >= deadline:
                return task
            await asyncio.sleep(POLL_SECONDS)

    # --- reading -------------------------------------------------------------------------------------------------

    async def get(self, access: DatasetAccess, task_id: str) -> TaskPublic:
        """One task with its log tail."""
        task = await self.in_thread(task_repo.get_task, self.session, task_id=task_id, dataset_id=access.dataset.id)
        return await self.public(task, org=access.org, dataset=access.dataset)

    async def public(self, task: Task, *, org: Organization, dataset: Dataset) -> TaskPublic:
        """The view of one task (current state, log tail)."""
        await self.show([task])
        tail, cursor = await log_tail(self.prefect, task)
        users = await self.in_thread(self._users, [task])
        return task_public(task, org=org, dataset=dataset, user=users.get(task.user_id), log_tail=tail,
                           log_cursor=cursor)

    async def list(self, access: DatasetAccess, *, tool_id: str | None, state: TaskState | None, skip: int,
                   take: int) -> TaskPage:
        rows, total = await self.in_thread(task_repo.list_tasks, self.session, dataset_id=access.dataset.id,
                                      tool_id=tool_id, state=state.value if state else None, skip=skip, take=take)
        await self.show(rows)
        users = await self.in_thread(self._users, rows)
        items = [task_public(task, org=access.org, dataset=access.dataset, user=users.get(task.user_id))
                 for task in rows]
        return TaskPage(items=items, total=total, skip=skip, take=take)

    async def list_all(self, *, user_name: str | None, tool_id: str | None, state: TaskState | None, skip: int,
                       take: int) -> TaskPage:
        """Every dataset's tasks (for administrators); ``user_name`` narrows them to one user's."""
        user_id = None
        if user_name:
            user_id = (await self.in_thread(user_repo.get_user, self.session, username=user_name)).id
        rows, total = await self.in_thread(task_repo.list_tasks, self.session, user_id=user_id, tool_id=tool_id,
                                      state=state.value if state else None, skip=skip, take=take)
        await self.show(rows)
        places, users = await self.in_thread(self._places, rows), await self.in_thread(self._users, rows)
        items = [task_public(task, org=places[task.dataset_id][0], dataset=places[task.dataset_id][1],
                             user=users.get(task.user_id)) for task in rows]
        return TaskPage(items=items, total=total, skip=skip, take=take)

    async def log(self, access: DatasetAccess, task_id: str, *, since: str | None, limit: int) -> TaskLog:
        task = await self.in_thread(task_repo.get_task, self.session, task_id=task_id, dataset_id=access.dataset.id)
        await self.show([task])
        return await read_log(self.prefect, task, since, limit=limit)

    async def result(self, access: DatasetAccess, task_id: str) -> ResultFile:
        """The artifact of a succeeded task (404 before success, 410 once expired)."""
        task = await self.in_thread(task_repo.get_task, self.session, task_id=task_id, dataset_id=access.dataset.id)
        await self.show([task])
        if task.state == TaskState.succeeded.value and (task.result or {}).get("artifactExpired"):
            raise Gone("the task's result has expired and was removed", code="result_expired")
        if task.state != TaskState.succeeded.value or not task.artifact:
            raise NotFound(f"task {task.id} has no result (state {task.state})", code="no_result")
        target = artifact_dir(self.settings, task.id) / task.artifact["file"]
        expired = as_utc(datetime.fromisoformat(task.artifact["expiresAt"])) <= utcnow()
        if expired or not target.is_file():
            raise Gone("the task's result has expired", code="result_expired")
        return ResultFile(path=target, filename=f"{access.dataset.slug}-{task.tool_id}-{task.id[:8]}{target.suffix}",
                          sha256=task.artifact["sha256"])

    def _users(self, tasks: list[Task]) -> dict[int, User]:
        ids = {task.user_id for task in tasks if task.user_id}
        return {user.id: user for user in (self.session.get(User, user_id) for user_id in ids) if user}

    def _places(self, tasks: list[Task]) -> dict[int, tuple[Organization, Dataset]]:
        places: dict[int, tuple[Organization, Dataset]] = {}
        for task in tasks:
            if task.dataset_id not in places:
                dataset = self.session.get(Dataset, task.dataset_id)
                places[task.dataset_id] = (self.session.get(Organization, dataset.org_id), dataset)
        return places

    # --- steering ------------------------------------------------------------------------------------------------

    def _steerable(self, actor: Actor, access: DatasetAccess, task_id: str) -> Task:
        """A task the caller may cancel, delete or retry: its own, or any of a dataset it may write."""
        task = task_repo.get_task(self.session, task_id=task_id, dataset_id=access.dataset.id)
        owner = actor.user is not None and task.user_id == actor.user.id
        if not owner and not access.allows(Permission.write):
            require_user(actor)
            raise PermissionDenied("only the task's owner or a dataset writer may change this task")
        return task

    async def cancel_or_delete(self, actor: Actor, access: DatasetAccess, task_id: str) -> CancelOutcome:
        task = await self.in_thread(self._steerable, actor, access, task_id)
        return await self._cancel_or_delete(task)

    async def _cancel_or_delete(self, task: Task) -> CancelOutcome:
        """Cancel an active task (Prefect Cancelling -> Cancelled); mark a terminal one Deleted."""
        await self.sync([task])
        if TaskState(task.state).is_terminal:
            await self.in_thread(self._delete_finished, task)
            return CancelOutcome(task_id=task.id, state=TaskState(task.state))
        if task.flow_run_id is None:
            await self.in_thread(self._cancel_unsubmitted, task)
            return CancelOutcome(task_id=task.id, state=TaskState(task.state), cancel_requested=True)
        target = "CANCELLING" if task.state == TaskState.processing.value else "CANCELLED"
        await self.prefect.set_state(task.flow_run_id, target, "cancelled through the georeg API")
        await self.sync([task])
        await self._cancel_children(task)
        return CancelOutcome(task_id=task.id, state=TaskState(task.state), cancel_requested=True)

    async def _cancel_children(self, task: Task) -> None:
        """Cancel the unfinished child tasks a fan-out task started (``hyspex-parent``); the parent's flow stops
        starting new ones once it sees itself cancelling."""
        children = await self.in_thread(task_repo.active_children, self.session, parent_task_id=task.id)
        if not children:
            return
        await self.sync(children)
        for child in children:
            if TaskState(child.state).is_terminal:
                continue
            if child.flow_run_id is None:
                await self.in_thread(self._cancel_unsubmitted, child)
                continue
            target = "CANCELLING" if child.state == TaskState.processing.value else "CANCELLED"
            await self.prefect.set_state(child.flow_run_id, target, "its parent job was cancelled")
        await self.sync(children)

    def _delete_finished(self, task: Task) -> None:
        mark_deleted(self.session, self.settings, task)
        self.session.commit()

    def _cancel_unsubmitted(self, task: Task) -> None:
        task.state, task.finished_at = TaskState.cancelled.value, utcnow()
        self.session.add(task)
        self.session.commit()

    async def retry(self, actor: Actor, access: DatasetAccess, task_id: str) -> TaskPublic:
        """Run a failed or cancelled task again as a new flow run under the same id (history kept)."""
        task = await self.in_thread(self._steerable, actor, access, task_id)
        await self.sync([task])
        if task.state not in RETRYABLE:
            raise Conflict(f"only failed or cancelled tasks can be retried (state {task.state})",
                           code="not_retryable")
        self.tool(task.tool_id)
        await self._check_quotas(actor, access.org)
        begin_retry(task)
        await self.in_thread(self._save, task)
        await self._hand_to_submitter(task)
        return await self.public(task, org=access.org, dataset=access.dataset)

    async def submit_build(self, *, actor: Actor, access: DatasetAccess, path: str, force: bool) -> Submission:
        """A ``build`` task of the entry ``path`` (``422 not_buildable`` for entries without artifacts); an active
        build of the same content is ``409 build_running`` unless ``force``."""
        entry = await self.in_thread(entry_repo.get_entry, self.session, dataset=access.dataset, path=path)
        buildable_artifact(entry)
        if not force:
            active = await self.in_thread(task_repo.active_tasks, self.session, dataset_id=access.dataset.id)
            running = [task for task in active if task.tool_id == BUILD.id
                       and task.parameters.get("hash") == entry.sha256]
            if running:
                raise Conflict(f"a build of {path!r} is already {running[0].state.lower()} (task {running[0].id}); "
                               "force=true starts another", code="build_running")
        return await self._start(actor, access.org, access.dataset, self.tool(BUILD.id), path,
                                 {"hash": entry.sha256}, True)

    async def latest_succeeded(self, tool_id: str, *, among: int = 5) -> Task | None:
        """The newest task of ``tool_id`` that succeeded, looking at the newest ``among`` (states read from
        Prefect, nothing written)."""
        rows, _ = await self.in_thread(task_repo.list_tasks, self.session, tool_id=tool_id, take=among)
        await self.show(rows)
        return next((task for task in rows if task.state == TaskState.succeeded.value), None)

    async def build_after_upload(self, *, actor: Actor, access: DatasetAccess, paths: list[str]) -> None:
        """Start the builds of just-added files (an upload, a share or push commit) that are buildable, one per
        content, at most ``MAX_BUILDS_PER_UPLOAD`` (the nightly completeness scan queues the rest), when
        ``GEOREG_BUILD_ON_UPLOAD``. The upload stands whatever happens here: a busy Prefect, a quota or a build
        already running are logged."""
        if not self.settings.build_on_upload or not paths:
            return
        entries = await self.in_thread(entry_repo.entries_at, self.session, dataset=access.dataset, paths=paths)
        wanted = {entry.sha256: entry.path for entry in entries if entry.type in BUILDABLE and entry.sha256}
        for started, path in enumerate(sorted(wanted.values())):
            if started >= MAX_BUILDS_PER_UPLOAD:
                logger.info("%d more buildable files added to %s/%s: left to the completeness scan",
                            len(wanted) - started, access.org.slug, access.dataset.slug)
                return
            try:
                await self.submit_build(actor=actor, access=access, path=path, force=False)
            except NotBuildable:
                continue
            except GeoregError as exc:
                logger.info("no build started after adding %s: %s", path, exc.message)

    async def clear(self, access: DatasetAccess, *, tool_id: str | None) -> ClearedTasks:
        """Delete the dataset's finished tasks (of one tool, when given), after bringing active ones up to date."""
        active = await self.in_thread(task_repo.active_tasks, self.session, dataset_id=access.dataset.id)
        await self.sync([task for task in active if tool_id is None or task.tool_id == tool_id])
        return await self.in_thread(self._clear, access.dataset.id, tool_id)

    def _clear(self, dataset_id: int, tool_id: str | None) -> ClearedTasks:
        tasks = task_repo.terminal_tasks(self.session, dataset_id=dataset_id, tool_id=tool_id)
        for task in tasks:
            mark_deleted(self.session, self.settings, task)
        self.session.commit()
        return ClearedTasks(deleted=len(tasks))

    # --- the Datasets API's jobs ---------------------------------------------------------------------------------

    async def jobs(self, actor: Actor, *, status: TaskState | None, tool_id: str | None, limit: int,
                   offset: int) -> JobPage:
        """The caller's jobs (every job for administrators), newest first."""
        user_id = None if actor.is_admin else require_user(actor).id
        rows, total = await self.in_thread(task_repo.list_tasks, self.session, user_id=user_id, tool_id=tool_id,
                                      state=status.value if status else None, skip=offset, take=limit)
        await self.show(rows)
        places = await self.in_thread(self._places, rows)
        items = [job_public(task, org=places[task.dataset_id][0], dataset=places[task.dataset_id][1])
                 for task in rows]
        return JobPage.of(items, total=total, limit=limit, offset=offset)

    def _job(self, actor: Actor, job_id: str) -> Task:
        task = task_repo.get_task(self.session, task_id=job_id)
        if not actor.is_admin and task.user_id != require_user(actor).id:
            raise NotFound(f"job {job_id} not found", code="job_not_found")
        return task

    async def job(self, actor: Actor, job_id: str) -> JobPublic:
        task = await self.in_thread(self._job, actor, job_id)
        await self.show([task])
        return await self.job_view(task)

    async def job_view(self, task: Task) -> JobPublic:
        org, dataset = (await self.in_thread(self._places, [task]))[task.dataset_id]
        return job_public(task, org=org, dataset=dataset)

    async def cancel_or_delete_job(self, actor: Actor, job_id: str) -> CancelOutcome:
        task = await self.in_thread(self._job, actor, job_id)
        return await self._cancel_or_delete(task)


def describe_tool(tool: Tool) -> ToolDescription:
    return ToolDescription(
        id=tool.id, version=tool.version, title=tool.title, description=tool.description,
        required_access=tool.required_access, produces_artifact=tool.produces_artifact,
        artifact_extension=tool.artifact_extension, parameters_schema=tool.parameters_schema(),
    )
