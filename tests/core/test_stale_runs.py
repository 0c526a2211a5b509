"""A flow run does a task's work only when it is that task's run: a finished task's run and a run other than the
one its task records are stale and do nothing; a queued task without a run adopts the run that starts for it; the
same run executing twice (a worker resubmitting a finished run it read as Scheduled) runs the tool once."""

from __future__ import annotations

import logging

import pytest
from pydantic import BaseModel
from sqlmodel import Session

from georeg.core.bootstrap import bootstrap
from georeg.core.db import make_engine, migrate
from georeg.core.errors import Conflict
from georeg.core.models import Dataset, Organization, Permission, Task
from georeg.core.tasks.model import Tool, ToolOutcome
from georeg.core.tasks.runner import execute_task
from tests.helpers import app_settings

RAN: list[str] = []


class NoParams(BaseModel):
    pass


def _record(context, _params) -> ToolOutcome:
    RAN.append(context.task_id)
    return ToolOutcome(result={"ran": True})


def _broken(context, _params) -> ToolOutcome:
    RAN.append(context.task_id)
    raise RuntimeError("disk on fire")


TOOL = Tool(id="record", version="1", title="Record", description="records that it ran", parameters=NoParams,
            run=_record, required_access=Permission.read)


@pytest.fixture
def world(tmp_path):
    settings = app_settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'g.db'}",
                            prefect_api_url="http://127.0.0.1:9/api")
    engine = make_engine(settings.effective_database_url)
    migrate(engine)
    bootstrap(settings, engine)
    with Session(engine) as session:
        org = Organization(slug="o", name="o")
        session.add(org)
        session.flush()
        dataset = Dataset(org_id=org.id, slug="d", name="d")
        session.add(dataset)
        session.commit()
        ids = (org.id, dataset.id)
    RAN.clear()
    yield settings, engine, ids
    engine.dispose()


def _task(engine, ids, task_id: str, *, state: str, flow_run_id: str | None) -> None:
    with Session(engine) as session:
        session.add(Task(id=task_id, org_id=ids[0], dataset_id=ids[1], tool_id="record", tool_version="1",
                         dedup_key="k", state=state, flow_run_id=flow_run_id, parameters={}))
        session.commit()


@pytest.mark.parametrize(("state", "recorded", "this_run"), [
    ("Failed", None, "run-1"),  # gave up before the run started
    ("Cancelled", "run-1", "run-1"),
    ("Scheduled", "run-2", "run-1"),  # the task records another run
])
def test_stale_runs_do_nothing(world, state, recorded, this_run):
    settings, engine, ids = world
    _task(engine, ids, "t" * 32, state=state, flow_run_id=recorded)
    with pytest.raises(Conflict) as refused:
        execute_task(settings, engine, task_id="t" * 32, tool=TOOL, logger=logging.getLogger("t"),
                     flow_run_id=this_run)
    assert refused.value.code == "stale_run" and RAN == []


def test_a_queued_task_adopts_the_run_that_starts_for_it(world):
    settings, engine, ids = world
    _task(engine, ids, "q" * 32, state="Queued", flow_run_id=None)
    result = execute_task(settings, engine, task_id="q" * 32, tool=TOOL, logger=logging.getLogger("t"),
                          flow_run_id="run-9")
    assert result["result"] == {"ran": True} and RAN == ["q" * 32]
    with Session(engine) as session:
        assert session.get(Task, "q" * 32).flow_run_id == "run-9"


def _execute(settings, engine, task_id: str, tool: Tool = TOOL, run: str | None = "run-1") -> dict:
    return execute_task(settings, engine, task_id=task_id, tool=tool, logger=logging.getLogger("t"), flow_run_id=run)


def test_the_same_run_executing_again_repeats_its_outcome_without_running_the_tool(world, caplog):
    settings, engine, ids = world
    _task(engine, ids, "r" * 32, state="Processing", flow_run_id="run-1")
    first = _execute(settings, engine, "r" * 32)
    with Session(engine) as session:
        session.get(Task, "r" * 32).state = "Succeeded"  # what the synchroniser records once the run completed
        session.commit()
    again = _execute(settings, engine, "r" * 32)
    assert again == first and RAN == ["r" * 32]
    assert "does not run the tool" in caplog.text
    with pytest.raises(Conflict) as refused:
        _execute(settings, engine, "r" * 32, run="run-2")
    assert refused.value.code == "stale_run"


def test_a_repeated_execution_of_a_failed_or_unfinished_attempt_fails_again(world):
    settings, engine, ids = world
    _task(engine, ids, "f" * 32, state="Processing", flow_run_id="run-1")
    broken = Tool(id="broken", version="1", title="Broken", description="fails", parameters=NoParams, run=_broken,
                  required_access=Permission.read)
    with pytest.raises(RuntimeError):
        _execute(settings, engine, "f" * 32, tool=broken)
    with pytest.raises(Conflict) as refused:
        _execute(settings, engine, "f" * 32)
    assert refused.value.code == "repeated_run" and "disk on fire" in refused.value.message and RAN == ["f" * 32]
    _task(engine, ids, "u" * 32, state="Processing", flow_run_id="run-7")
    with Session(engine) as session:
        session.get(Task, "u" * 32).executed_attempt = 1  # its first execution died mid-run (process killed)
        session.commit()
    with pytest.raises(Conflict) as unfinished:
        _execute(settings, engine, "u" * 32, run="run-7")
    assert unfinished.value.code == "repeated_run" and "did not finish" in unfinished.value.message


def test_a_retried_task_runs_its_next_attempt(world):
    settings, engine, ids = world
    _task(engine, ids, "n" * 32, state="Processing", flow_run_id="run-1")
    _execute(settings, engine, "n" * 32)
    with Session(engine) as session:
        task = session.get(Task, "n" * 32)
        task.attempts, task.flow_run_id, task.state = 2, "run-2", "Scheduled"
        session.commit()
    assert _execute(settings, engine, "n" * 32, run="run-2")["result"] == {"ran": True}
    assert RAN == ["n" * 32, "n" * 32]
