"""A flow run that crashed before it started (Prefect or its worker failed while starting it, as when the Prefect
server restarts mid-burst) never ran its tool: georeg queues the task again as its next attempt, under a new
idempotency key, instead of failing it, at most ``RESTARTS_BEFORE_START`` times.

The work pool is paused while runs are crashed, so that no worker takes them first; the crash is the state
Prefect's worker proposes in that case (``Crashed``, run count 0), set on the real Prefect server.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from georeg.core.models import Task
from georeg.core.tasks.lifecycle import RESTARTS_BEFORE_START, RunState, restartable
from tests.flows.conftest import flow_run, flow_runs_tagged, wait_for_state
from tests.helpers import ADMIN_PASSWORD, create_dataset, login, prefect_call, upload_object

DS = "/orgs/admin/ds/d"
TASKS = f"{DS}/tasks"
DONE = {"Succeeded", "Failed", "Cancelled"}
CRASH_MESSAGE = "Flow run infrastructure exited with non-zero status code 1."


@pytest.fixture
def paused_pool(task_worker: str) -> Iterator[str]:
    """The ``georeg`` work pool paused (no worker gets its runs) until the test ends or :func:`resume` is called."""
    set_paused(task_worker, True)
    try:
        yield task_worker
    finally:
        set_paused(task_worker, False)


def set_paused(api_url: str, paused: bool) -> None:
    prefect_call("PATCH", f"{api_url}/work_pools/georeg", json={"is_paused": paused}).raise_for_status()


@pytest.fixture
def ds(client) -> dict[str, str]:
    headers = login(client, "admin", ADMIN_PASSWORD)
    create_dataset(client, headers)
    assert upload_object(client, headers, "b.txt", b"bee").status_code == 201
    return headers


def crash_before_start(api_url: str, flow_run_id: str) -> None:
    response = prefect_call("POST", f"{api_url}/flow_runs/{flow_run_id}/set_state", json={
        "state": {"type": "CRASHED", "name": "Crashed", "message": CRASH_MESSAGE}, "force": True})
    assert response.status_code in (200, 201) and response.json()["status"] == "ACCEPT", response.text


def next_run(client, headers: dict, task_id: str, attempt: int, timeout: float = 60) -> dict:
    """The task once its ``attempt`` has a flow run (the API's synchroniser restarts it, its submitter runs it)."""
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"{TASKS}/{task_id}", headers=headers).json()
        if body["attempts"] == attempt and body["flowRunId"] and body["state"] != "Queued":
            return body
        assert time.monotonic() < deadline, f"attempt {attempt} got no flow run: {body}"
        time.sleep(0.5)


def submit(client, headers: dict) -> dict:
    response = client.post(TASKS, headers=headers, json={"toolId": "bulk-download", "force": True,
                                                         "parameters": {"paths": ["b.txt"]}})
    assert response.status_code == 202, response.text
    return next_run(client, headers, response.json()["taskId"], 1)


def test_a_run_crashed_before_it_started_is_started_again(client, ds, paused_pool):
    task = submit(client, ds)
    crash_before_start(paused_pool, task["flowRunId"])
    again = next_run(client, ds, task["taskId"], 2)
    assert again["flowRunId"] != task["flowRunId"]
    set_paused(paused_pool, False)
    done = wait_for_state(client, f"{TASKS}/{task['taskId']}", ds, DONE)
    assert done["state"] == "Succeeded" and done["attempts"] == 2, done
    [first] = done["history"]
    assert first["restarted"] is True and first["state"] == "Crashed" and first["flowRunId"] == task["flowRunId"]
    assert "crashed before it started" in first["error"] and CRASH_MESSAGE in first["error"]
    runs = {run["id"]: run for run in flow_runs_tagged(paused_pool, f"task:{task['taskId']}")}
    assert set(runs) == {task["flowRunId"], done["flowRunId"]}
    assert [runs[task["flowRunId"]]["run_count"], runs[done["flowRunId"]]["run_count"]] == [0, 1], \
        "the tool ran once: only the second run entered Running"
    assert flow_run(paused_pool, done["flowRunId"])["state_type"] == "COMPLETED"


def test_restarts_stop_after_the_limit_and_the_task_fails(client, ds, paused_pool):
    task = submit(client, ds)
    for attempt in range(1, RESTARTS_BEFORE_START + 1):
        crash_before_start(paused_pool, task["flowRunId"])
        task = next_run(client, ds, task["taskId"], attempt + 1)
    crash_before_start(paused_pool, task["flowRunId"])
    done = wait_for_state(client, f"{TASKS}/{task['taskId']}", ds, DONE)
    assert done["state"] == "Failed" and done["attempts"] == RESTARTS_BEFORE_START + 1, done
    assert CRASH_MESSAGE in done["error"]
    assert [attempt["restarted"] for attempt in done["history"]] == [True] * RESTARTS_BEFORE_START
    retried = client.post(f"{TASKS}/{task['taskId']}/retry", headers=ds)
    assert retried.status_code == 202, "a user's retry is not limited by the restarts"


def test_only_runs_that_never_started_and_tasks_the_submitter_owns_restart():
    run = RunState(id="r", state_type="CRASHED", state_message=CRASH_MESSAGE, run_count=0)
    task = Task(id="t", org_id=1, dataset_id=1, tool_id="bulk-download", tool_version="1", dedup_key="k",
                parameters={}, flow_run_id="r", history=[])
    assert restartable(task, run)
    assert not restartable(task, run.model_copy(update={"run_count": 1})), "the tool ran"
    assert not restartable(task, run.model_copy(update={"run_count": None})), "not known"
    assert not restartable(task, run.model_copy(update={"state_type": "FAILED"}))
    child = Task(**{**task.model_dump(), "parameters": {"parent_task_id": "p"}})
    assert not restartable(child, run), "a fan-out's parent starts its children"
    spent = Task(**{**task.model_dump(), "history": [{"restarted": True}] * RESTARTS_BEFORE_START})
    assert not restartable(spent, run)
