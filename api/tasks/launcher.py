"""The only place that starts flow runs: one Prefect run per task attempt."""

from __future__ import annotations

from georeg.api.prefect_client import PrefectClient
from georeg.core.config import Settings
from georeg.core.models import Task
from georeg.core.tasks.model import Tool


async def launch(client: PrefectClient, *, task: Task, tool: Tool, settings: Settings) -> str:
    """Schedule the tool's deployment for ``task``'s current attempt; returns the flow run id.

    The idempotency key (task id + attempt) makes a repeated call return the same run. The run's
    environment names the API's registry database and data dir, so worker and API always agree.
    """
    return await client.create_flow_run(
        tool.deployment,
        parameters={"task_id": task.id},
        idempotency_key=f"{task.id}:{task.attempts}",
        tags=["georeg", f"tool:{tool.id}", f"task:{task.id}"],
        job_variables={"env": settings.task_environment()},
    )
