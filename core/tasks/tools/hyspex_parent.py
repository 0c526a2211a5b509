"""``hyspex-parent``: every child of a HySpex campaign record as its own ``nc-to-geotiff`` task and flow run.

The run pages through the campaign's children (``apiso:ParentIdentifier``, sorted), and keeps at most
``concurrency`` child runs going (default ``GEOREG_HYSPEX_CHILD_CONCURRENCY``): for each child it writes a task row
(``parent_task_id`` set, so it shows in ``/datasets/jobs`` and is cancelled with its parent) and starts the child
tool's deployment as a subflow run of its own (:class:`~georeg.core.tasks.model.ChildRuns`, given by the flow).
Children already registered with every variant, or with an active task, are skipped with the reason. Progress is
children finished / total. When the parent is being cancelled it starts no more children and cancels those not
finished (the API cancels them as well, see ``TaskService``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from pydantic import BaseModel, Field
from sqlmodel import Session, select

from georeg.core.catalog.csw import CswClient, CswRecord
from georeg.core.catalog.hyspex import MAX_CHILDREN, VARIANTS, Variant, campaign_children, registered_variants
from georeg.core.errors import GeoregError
from georeg.core.models import Dataset, Organization, Permission, Task, User
from georeg.core.tasks.lifecycle import apply_run, new_task, validated_parameters
from georeg.core.tasks.model import ACTIVE_STATES, TaskState, Tool, ToolContext, ToolOutcome, map_prefect_state
from georeg.core.tasks.tools.nc_to_geotiff import NC_TO_GEOTIFF

POLL_SECONDS = 0.5
CANCEL_GRACE_SECONDS = 30.0


class HyspexParentParams(BaseModel):
    identifier: str = Field(min_length=1, max_length=256, description="the campaign (parent) record")
    endpoint: str | None = Field(default=None, description="the CSW (default: the first configured)")
    variants: list[Variant] = Field(default_factory=lambda: list(VARIANTS), min_length=1, max_length=2)
    limit: int | None = Field(default=None, ge=1, le=MAX_CHILDREN, description="at most this many children")
    concurrency: int | None = Field(default=None, ge=1, le=64,
                                    description="child runs at a time (default GEOREG_HYSPEX_CHILD_CONCURRENCY)")


@dataclass
class ChildCheck:
    """What is left to do for a child: the variants to queue, those registered, an active task for it."""

    identifier: str
    registered: dict[str, list[str]]
    to_queue: list[str]
    active_task: Task | None = None

    @property
    def skip_reason(self) -> str | None:
        if self.active_task is not None:
            return "already_queued"
        if not self.to_queue:
            return "already_registered"
        return None


def active_child_tasks(session: Session, identifier: str) -> list[Task]:
    """Active (as cached) ``nc-to-geotiff`` tasks of a child identifier."""
    rows = session.exec(select(Task).where(Task.tool_id == NC_TO_GEOTIFF.id,
                                           Task.state.in_([state.value for state in ACTIVE_STATES]))).all()
    return [task for task in rows if (task.parameters.get("record") or {}).get("identifier") == identifier]


def check_child(session: Session, identifier: str, variants: list[str]) -> ChildCheck:
    registered = registered_variants(session, identifier)
    active = active_child_tasks(session, identifier)
    return ChildCheck(identifier=identifier, registered=registered,
                      to_queue=[variant for variant in variants if variant not in registered],
                      active_task=active[0] if active else None)


def child_parameters(record: CswRecord, variants: list[str], endpoint: str | None,
                     parent_task_id: str | None = None) -> dict:
    return {"record": record.model_dump(mode="json"), "variants": variants, "endpoint": endpoint,
            "parent_task_id": parent_task_id}


@dataclass
class _Fanout:
    context: ToolContext
    params: HyspexParentParams
    parent: Task
    total: int
    concurrency: int
    entries: list[dict] = field(default_factory=list)
    active: dict[str, dict] = field(default_factory=dict)
    finished: int = 0

    def report(self) -> None:
        percent = 100.0 * self.finished / self.total if self.total else 100.0
        self.context.progress(min(percent, 99.0) if self.finished < self.total else 100.0, "children",
                              f"{self.finished}/{self.total} children finished")

    def queue(self, session: Session, record: CswRecord, endpoint: str) -> None:
        entry: dict = {"identifier": record.identifier, "title": record.title}
        self.entries.append(entry)
        check = check_child(session, record.identifier, self.params.variants)
        if check.skip_reason:
            entry.update(skipped=check.skip_reason, registered=check.registered,
                         task_id=check.active_task.id if check.active_task else None)
            self.finished += 1
            return
        parameters = validated_parameters(NC_TO_GEOTIFF, child_parameters(record, check.to_queue, endpoint,
                                                                           self.parent.id))
        org, dataset = session.get(Organization, self.parent.org_id), session.get(Dataset, self.parent.dataset_id)
        user = session.get(User, self.parent.user_id) if self.parent.user_id else None
        task = new_task(session, tool=NC_TO_GEOTIFF, org=org, dataset=dataset, user=user, path=None,
                        parameters=parameters)
        session.commit()
        entry.update(task_id=task.id, variants=check.to_queue, state=task.state)
        try:
            task.flow_run_id = self.context.children.start(task.id, NC_TO_GEOTIFF)
        except Exception as exc:  # noqa: BLE001 - any failure to start is this child's, recorded on its row
            task.state, task.error = TaskState.failed.value, f"its flow run could not be started: {exc}"
            session.add(task)
            session.commit()
            entry.update(state=task.state, error=task.error)
            self.finished += 1
            return
        session.add(task)
        session.commit()
        entry["flow_run_id"] = task.flow_run_id
        self.active[task.flow_run_id] = entry
        self.context.logger.info("child %s: task %s, flow run %s", record.identifier, task.id, task.flow_run_id)

    def poll(self, session: Session) -> None:
        if not self.active:
            return
        runs = self.context.children.states(list(self.active))
        for flow_run_id, run in runs.items():
            entry = self.active[flow_run_id]
            task = session.get(Task, entry["task_id"])
            if task is not None and apply_run(task, run):
                session.add(task)
                session.commit()
            state = map_prefect_state(run.state_type, run.state_name)
            entry["state"] = state.value
            if state.is_terminal:
                del self.active[flow_run_id]
                self.finished += 1

    def cancel_active(self) -> None:
        for flow_run_id in list(self.active):
            self.context.children.cancel(flow_run_id)
            self.active[flow_run_id]["state"] = TaskState.cancelled.value


def run_hyspex_parent(context: ToolContext, params: HyspexParentParams) -> ToolOutcome:
    if context.children is None:
        raise GeoregError("hyspex-parent starts child flow runs: it runs only as its Prefect flow",
                          code="no_child_runs")
    settings = context.settings
    with CswClient.for_settings(settings, params.endpoint) as client:
        campaign = client.get_record(params.identifier)
        children = campaign_children(client, campaign.identifier, limit=params.limit)
        endpoint = client.endpoint
    context.logger.info("campaign %s: %d children", campaign.identifier, len(children))
    with Session(context.engine, expire_on_commit=False) as session:
        parent = session.get(Task, context.task_id)
        fanout = _Fanout(context=context, params=params, parent=parent, total=len(children),
                         concurrency=params.concurrency or settings.hyspex_child_concurrency)
        pending = list(children)
        fanout.report()
        while pending or fanout.active:
            if context.children.cancelling():
                fanout.cancel_active()
                context.logger.info("cancelled: %d children not started", len(pending))
                time.sleep(CANCEL_GRACE_SECONDS)  # the worker ends this run; it never gets past here
                raise GeoregError("the hyspex-parent job was cancelled", code="cancelled")
            fanout.poll(session)
            while pending and len(fanout.active) < fanout.concurrency:
                fanout.queue(session, pending.pop(0), endpoint)
            fanout.report()
            if fanout.active:
                time.sleep(POLL_SECONDS)
    counts: dict[str, int] = {}
    for entry in fanout.entries:
        key = entry.get("skipped") or entry.get("state") or "unknown"
        counts[key] = counts.get(key, 0) + 1
    return ToolOutcome(result={"identifier": campaign.identifier, "title": campaign.title, "endpoint": endpoint,
                               "total": len(children), "counts": counts, "children": fanout.entries})


HYSPEX_PARENT = Tool(
    id="hyspex-parent", version="1.0.0", title="HySpex campaign: every child as rgb and z GeoTIFFs",
    description="Page through a HySpex campaign's child records and run one nc-to-geotiff child flow run each, "
                "under a concurrency limit; cancelling it cancels the children not finished.",
    parameters=HyspexParentParams, run=run_hyspex_parent, required_access=Permission.write, scope="registry",
    fans_out=True,
)
