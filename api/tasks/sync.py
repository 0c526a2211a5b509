"""The state synchroniser: a background loop of the API process that writes the state of every active task's
flow run to its row (and fails tasks whose submission never reached Prefect), so that listings filtered by
state are current within ``GEOREG_TASK_STATE_SYNC_SECONDS`` while reads themselves write nothing. Several API
processes may each run one: a pass only writes what Prefect says."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.engine import Engine

from georeg.api.prefect_client import PrefectClient
from georeg.api.tasks.service import TaskService
from georeg.api.tasks.submitter import TaskSubmitter
from georeg.core.config import Settings
from georeg.core.errors import GeoregError
from georeg.core.tasks import repository as task_repo
from georeg.core.tasks.model import ToolRegistry

logger = logging.getLogger(__name__)


async def sync_once(*, engine: Engine, settings: Settings, prefect: PrefectClient, tools: ToolRegistry,
                    submitter: TaskSubmitter | None = None) -> int:
    """One pass over the active tasks (those whose run crashed before it started go to ``submitter`` again);
    returns how many there were."""
    service = TaskService(engine=engine, settings=settings, prefect=prefect, tools=tools, submitter=submitter)
    try:
        active = await service.in_thread(task_repo.active_tasks, service.session)
        if active:
            await service.sync(active)
        return len(active)
    finally:
        await service.in_thread(service.close)


async def sync_forever(*, engine: Engine, settings: Settings, prefect: PrefectClient, tools: ToolRegistry,
                       submitter: TaskSubmitter | None = None) -> None:
    """:func:`sync_once` every ``settings.task_state_sync_seconds`` until cancelled; a failed pass is logged."""
    while True:
        await asyncio.sleep(settings.task_state_sync_seconds)
        try:
            await sync_once(engine=engine, settings=settings, prefect=prefect, tools=tools, submitter=submitter)
        except (GeoregError, OSError, RuntimeError) as exc:
            logger.info("task states not synchronised this time: %s", exc)
        except Exception:
            logger.exception("task state synchronisation failed")
