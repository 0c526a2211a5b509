"""The submitter: the background loop of an API process that creates the flow runs of accepted tasks.

A submission is accepted (``202``, task ``Queued``) once its row is written; the submitter then creates its flow
run, oldest task first, retrying while Prefect is busy or down. The idempotency key ``<taskId>:<attempt>`` makes
every retry, and every other API process that picks the same task up, get the same run: no task runs twice. A
task whose run cannot be created within ``GEOREG_TASK_SUBMIT_BUDGET_SECONDS`` ends ``Failed`` with the reason.

Each process submits the tasks it accepted at once (a request may wait up to ``GEOREG_TASK_SUBMIT_WAIT_SECONDS``
for its run, so a client usually sees the run id in the answer) and sweeps up tasks queued longer than
``ORPHAN_AFTER`` by any process (one that died, or one far behind), so nothing accepted is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from datetime import timedelta

import anyio
from sqlalchemy.engine import Engine
from sqlmodel import Session

from georeg.api.prefect_client import PrefectClient
from georeg.api.tasks.launcher import launch
from georeg.core.config import Settings
from georeg.core.errors import GeoregError
from georeg.core.models import Task
from georeg.core.tasks import repository as task_repo
from georeg.core.tasks.model import ToolRegistry
from georeg.core.timeutil import utcnow

logger = logging.getLogger(__name__)

BATCH = 100
ORPHAN_AFTER = timedelta(seconds=20)
SWEEP_SECONDS = 5.0
FIRST_BACKOFF, MAX_BACKOFF = 0.5, 10.0


class TaskSubmitter:
    """Creates the flow runs of queued tasks; :meth:`run_forever` is the loop the app's lifespan owns."""

    def __init__(self, *, engine: Engine, settings: Settings, prefect: PrefectClient, tools: ToolRegistry) -> None:
        self.engine = engine
        self.settings = settings
        self.prefect = prefect
        self.tools = tools
        self._mine: list[str] = []  # tasks this process accepted, in order
        self._wake = asyncio.Event()
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._first_try: dict[tuple[str, int], float] = {}  # (task, attempt) -> monotonic time of the first try
        self._backoff = FIRST_BACKOFF

    # --- the API side ----------------------------------------------------------------------------------------------

    def accept(self, task_id: str) -> None:
        """A task was queued by this process: submit it next (after those accepted before it)."""
        self._mine.append(task_id)
        self._wake.set()

    async def wait(self, task_id: str, timeout: float) -> None:
        """Until ``task_id`` got its run or failed, at most ``timeout`` seconds (no error either way)."""
        if timeout <= 0:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(task_id, []).append(future)
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            pass
        finally:
            waiting = self._waiters.get(task_id, [])
            if future in waiting:
                waiting.remove(future)
            if not waiting:
                self._waiters.pop(task_id, None)

    # --- the loop ---------------------------------------------------------------------------------------------------

    async def run_forever(self) -> None:
        """Submit whatever is queued, then sleep until a task is accepted or the next sweep; errors are logged."""
        while True:
            try:
                busy = await self.submit_pending()
            except Exception:  # the loop must outlive any one failure
                logger.exception("task submission pass failed")
                busy = True
            if busy:  # Prefect refused: back off, then try the same (oldest) task again
                await asyncio.sleep(self._backoff)
                self._backoff = min(self._backoff * 2, MAX_BACKOFF)
                continue
            self._backoff = FIRST_BACKOFF
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), SWEEP_SECONDS)
            self._wake.clear()

    async def submit_pending(self) -> bool:
        """One pass: this process's tasks, then the orphans; stops at the first task Prefect would not take.
        Returns whether it stopped there (Prefect busy or down)."""
        while True:
            mine, self._mine = self._mine[:BATCH], self._mine[BATCH:]
            tasks = await self._in_thread(self._load, mine) if mine else []
            if not tasks:
                tasks = await self._in_thread(self._load, None)
                if not tasks:
                    self._first_try.clear()  # nothing waits: forget the clocks of tasks others submitted
                    return False
            for index, task in enumerate(tasks):
                if not await self._submit(task):
                    self._mine = [t.id for t in tasks[index:] if t.id in set(mine)] + self._mine
                    return True

    def _load(self, ids: list[str] | None) -> list[Task]:
        with Session(self.engine, expire_on_commit=False) as session:
            if ids is not None:
                found = {task.id: task for task in task_repo.unsubmitted_tasks(session, limit=len(ids), ids=ids)}
                return [found[task_id] for task_id in ids if task_id in found]
            return task_repo.unsubmitted_tasks(session, limit=BATCH, created_before=utcnow() - ORPHAN_AFTER)

    async def _submit(self, task: Task) -> bool:
        """Create ``task``'s run and record it; False when Prefect could not take it yet (the task stays queued,
        or fails once its budget is spent)."""
        key = (task.id, task.attempts)
        first_try = self._first_try.setdefault(key, time.monotonic())
        tool = self.tools.get(task.tool_id)
        if tool is None:
            await self._fail(task, f"tool {task.tool_id!r} is not installed here")
            return True
        try:
            flow_run_id = await launch(self.prefect, task=task, tool=tool, settings=self.settings)
        except GeoregError as exc:
            spent = time.monotonic() - first_try
            if spent < self.settings.task_submit_budget_seconds:
                logger.info("task %s: flow run not created yet (%s); retrying", task.id, exc.message)
                return False
            await self._fail(task, f"its flow run could not be created within {spent:.0f} s: {exc.message}")
            return True
        recorded = await self._in_thread(self._record, task, flow_run_id)
        if not recorded:
            await self._withdraw(task, flow_run_id)
        self._done(task)
        return True

    def _record(self, task: Task, flow_run_id: str) -> bool:
        with Session(self.engine) as session:
            return task_repo.record_flow_run(session, task_id=task.id, attempt=task.attempts,
                                             flow_run_id=flow_run_id)

    async def _withdraw(self, task: Task, flow_run_id: str) -> None:
        """The task stopped waiting while its run was created (cancelled, or recorded by another process with the
        same run): cancel the run unless it is the task's."""
        current = await self._in_thread(self._reload, task.id)
        if current is not None and current.flow_run_id == flow_run_id:
            return
        try:
            await self.prefect.set_state(flow_run_id, "CANCELLED", "its task was cancelled before the run started")
        except GeoregError as exc:
            logger.warning("task %s: run %s of a cancelled task not cancelled: %s", task.id, flow_run_id, exc.message)

    def _reload(self, task_id: str) -> Task | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.get(Task, task_id)

    async def _fail(self, task: Task, error: str) -> None:
        logger.warning("task %s failed: %s", task.id, error)
        await self._in_thread(self._fail_row, task, error)
        self._done(task)

    def _fail_row(self, task: Task, error: str) -> None:
        with Session(self.engine) as session:
            task_repo.fail_unsubmitted(session, task_id=task.id, attempt=task.attempts, error=error, now=utcnow())

    def _done(self, task: Task) -> None:
        self._first_try.pop((task.id, task.attempts), None)
        for future in self._waiters.pop(task.id, []):
            if not future.done():
                future.set_result(None)

    @staticmethod
    async def _in_thread(function, /, *args: object):  # noqa: ANN001, ANN205
        return await anyio.to_thread.run_sync(functools.partial(function, *args))
