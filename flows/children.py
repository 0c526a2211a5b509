"""Child flow runs for tools that fan out (``Tool.fans_out``, e.g. ``hyspex-parent``): the Prefect side of
:class:`georeg.core.tasks.model.ChildRuns`.

Each child task's run is a run of the child tool's own deployment started with ``run_deployment(...,
as_subflow=True)``: it shows in the Prefect UI as a subflow of the parent run, is cancellable on its own, and is
the same kind of run the child tool gets when the API submits it (one task row, one flow run).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

from georeg.core.tasks.lifecycle import RunState

if TYPE_CHECKING:
    from georeg.core.config import Settings
    from georeg.core.tasks.model import Tool


class PrefectChildRuns:
    """Starts, reads and cancels child flow runs from inside the parent's flow run."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def start(self, task_id: str, tool: Tool) -> str:
        from prefect.deployments import run_deployment

        run = run_deployment(
            tool.deployment, parameters={"task_id": task_id}, timeout=0, as_subflow=True,
            idempotency_key=f"{task_id}:0", tags=["georeg", f"tool:{tool.id}", f"task:{task_id}"],
            job_variables={"env": self.settings.task_environment()},
        )
        return str(run.id)

    def states(self, flow_run_ids: list[str]) -> dict[str, RunState]:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        if not flow_run_ids:
            return {}
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(
                any_=[UUID(item) for item in flow_run_ids])), limit=len(flow_run_ids))
        return {str(run.id): RunState(id=str(run.id), state_type=run.state.type.value, state_name=run.state.name,
                                      state_message=run.state.message, start_time=run.start_time,
                                      end_time=run.end_time, run_count=run.run_count)
                for run in runs if run.state is not None}

    def cancel(self, flow_run_id: str) -> None:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.objects import StateType
        from prefect.states import Cancelled, Cancelling

        with get_client(sync_client=True) as client:
            run = client.read_flow_run(UUID(flow_run_id))
            if run.state is None or run.state.is_final():
                return
            state = Cancelling if run.state.type in (StateType.RUNNING, StateType.PAUSED) else Cancelled
            client.set_flow_run_state(UUID(flow_run_id), state(message="its parent run was cancelled"), force=True)

    def cancelling(self) -> bool:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.objects import StateType
        from prefect.runtime import flow_run

        if not flow_run.id:
            return False
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(UUID(flow_run.id)).state
        return state is not None and state.type in (StateType.CANCELLING, StateType.CANCELLED)
