"""``check-artifacts``: find buildable entries (georeferenced rasters, LAS/LAZ point clouds) of every dataset whose
build artifacts are missing and queue their builds, one per content hash, as child flow runs; its result is the figure
``GET /sys/build-pending-status`` reports. Scheduled nightly; admins start it with
``POST /sys/check-artifact-completeness``."""

from __future__ import annotations

from pydantic import BaseModel, Field
from sqlmodel import Session, select

from georeg.core.models import Dataset, Entry, Organization, Permission, Task, User
from georeg.core.registry.artifacts import build_dir
from georeg.core.tasks.lifecycle import new_task, validated_parameters
from georeg.core.tasks.model import ACTIVE_STATES, TaskState, Tool, ToolContext, ToolOutcome
from georeg.core.tasks.tools.build import BUILD, BUILDABLE, is_buildable
from georeg.core.timeutil import utcnow

_BATCH = 2000


class CheckParams(BaseModel):
    max_builds: int = Field(default=1000, ge=0, le=100_000, description="queue at most this many builds (0: count)")


def _queued_hashes(session: Session) -> set[str]:
    active = [state.value for state in ACTIVE_STATES]
    rows = session.exec(select(Task.parameters).where(Task.tool_id == BUILD.id, Task.state.in_(active))).all()
    return {parameters.get("hash") for parameters in rows if parameters}


def run_check(context: ToolContext, params: CheckParams) -> ToolOutcome:
    figures = {"buildable": 0, "built": 0, "missing": 0, "queued": 0, "alreadyQueued": 0, "notQueued": 0,
               "failedToQueue": 0}
    seen: set[str] = set()
    with Session(context.engine) as session:
        queued = _queued_hashes(session)
        parent = session.get(Task, context.task_id)
        user = session.get(User, parent.user_id) if parent and parent.user_id else None
        last_id = 0
        while True:
            entries = session.exec(select(Entry).where(Entry.type.in_(list(BUILDABLE)), Entry.sha256.is_not(None),
                                                       Entry.id > last_id).order_by(Entry.id).limit(_BATCH)).all()
            for entry in entries:
                if not is_buildable(entry) or entry.sha256 in seen:
                    continue
                seen.add(entry.sha256)
                figures["buildable"] += 1
                if (build_dir(context.settings, entry.sha256) / BUILDABLE[entry.type]).is_file():
                    figures["built"] += 1
                    continue
                figures["missing"] += 1
                if entry.sha256 in queued:
                    figures["alreadyQueued"] += 1
                elif figures["queued"] + figures["failedToQueue"] >= params.max_builds or context.children is None:
                    figures["notQueued"] += 1
                else:
                    figures[_queue(session, context, entry, user)] += 1
            context.progress(50.0 if len(entries) == _BATCH else 99.0, "scanning",
                             f"{figures['buildable']} buildable, {figures['missing']} missing")
            if len(entries) < _BATCH:
                break
            last_id = entries[-1].id
    context.logger.info("artifacts: %s", figures)
    return ToolOutcome(result={**figures, "scannedAt": utcnow().isoformat()})


def _queue(session: Session, context: ToolContext, entry: Entry, user: User | None) -> str:
    dataset = session.get(Dataset, entry.dataset_id)
    org = session.get(Organization, dataset.org_id)
    task = new_task(session, tool=BUILD, org=org, dataset=dataset, user=user, path=entry.path,
                    parameters=validated_parameters(BUILD, {"hash": entry.sha256}))
    session.commit()
    try:
        task.flow_run_id = context.children.start(task.id, BUILD)
    except Exception as exc:  # noqa: BLE001 - a build that cannot start is recorded on its own row
        task.state, task.error = TaskState.failed.value, f"its flow run could not be started: {exc}"
        session.add(task)
        session.commit()
        return "failedToQueue"
    session.add(task)
    session.commit()
    return "queued"


CHECK_ARTIFACTS = Tool(id="check-artifacts", version="1.0.0", title="Check artifact completeness",
                       description="Find buildable entries (georeferenced rasters, LAS/LAZ point clouds) whose "
                       "builds are missing and queue their builds.",
                       parameters=CheckParams, run=run_check, required_access=Permission.admin, scope="registry",
                       fans_out=True)
