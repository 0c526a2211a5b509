"""Submissions while the Prefect API is busy or failing: accepted at once (202, ``Queued``), their flow run created
by the API's submitter, retried in order under one idempotency key (one run however often it retries), and a task
whose run cannot be created within the budget ends ``Failed`` with the reason; a run that starts for a task that
gave up does nothing.

The faults come from a real HTTP proxy in front of the real Prefect test server (``tests/faulty_proxy.py``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from georeg.api.app import create_app
from georeg.core.db import make_engine
from georeg.core.models import Dataset, Task, User
from georeg.core.timeutil import utcnow
from tests.faulty_proxy import CREATE, FaultyProxy
from tests.flows.conftest import flow_runs_tagged, wait_for_state
from tests.helpers import ADMIN_PASSWORD, create_dataset, login, upload_object

DS = "/orgs/admin/ds/d"
TASKS = f"{DS}/tasks"
DONE = {"Succeeded", "Failed", "Cancelled"}


@pytest.fixture
def proxy(task_worker) -> Iterator[FaultyProxy]:
    proxy = FaultyProxy(task_worker)
    yield proxy
    proxy.close()


@pytest.fixture
def faulty_client(settings, registry, proxy) -> Iterator[TestClient]:
    """The API talking to Prefect through the proxy; it gives up on run creation after 3 s."""
    settings.prefect_api_url = proxy.url
    with TestClient(create_app(settings, tools=registry)) as test_client:
        test_client.app.state.prefect.submit_retry_seconds = 3.0
        yield test_client


@pytest.fixture
def ds(faulty_client):
    """Admin headers, with dataset ``admin/d`` holding ``b.txt``."""
    headers = login(faulty_client, "admin", ADMIN_PASSWORD)
    create_dataset(faulty_client, headers)
    response = upload_object(faulty_client, headers, "b.txt", b"bee")
    assert response.status_code == 201, response.text
    return headers


def submit(client: TestClient, headers: dict) -> httpx.Response:
    return client.post(TASKS, json={"toolId": "bulk-download", "parameters": {"paths": ["b.txt"]}, "force": True},
                       headers=headers)


def test_busy_answers_are_retried_into_one_run(faulty_client, ds, proxy, task_worker):
    proxy.rule = lambda method, path, nth: {1: "refuse", 2: "refuse-429", 3: "lose_answer"}.get(nth) \
        if path.endswith(CREATE) else None
    # past the three injected faults, the real Prefect server on SQLite may be busy as well ("database
    # is locked", 503) on a loaded machine: a budget that outlasts that
    faulty_client.app.state.prefect.submit_retry_seconds = 30.0
    response = submit(faulty_client, ds)
    assert response.status_code == 202, response.text
    task = response.json()
    # the answer waits up to GEOREG_TASK_SUBMIT_WAIT_SECONDS for the run: a quick worker may have run it already
    assert task["state"] in ("Queued", "Scheduled", "Enqueued", "Processing", "Succeeded"), task
    done = wait_for_state(faulty_client, f"{TASKS}/{task['taskId']}", ds, DONE)
    assert done["state"] == "Succeeded", done
    assert len(proxy.creations()) >= 4  # 503, 429, stored but answer lost, then the stored run again
    assert {c["idempotency_key"] for c in proxy.creations()} == {f"{task['taskId']}:1"}
    runs = flow_runs_tagged(task_worker, f"task:{task['taskId']}")
    assert [run["id"] for run in runs] == [done["flowRunId"]]


def test_a_task_prefect_keeps_refusing_is_accepted_then_fails(faulty_client, ds, proxy, task_worker, settings):
    proxy.rule = lambda method, path, nth: "refuse" if path.endswith(CREATE) else None
    faulty_client.app.state.prefect.submit_retry_seconds = 0.5
    settings.task_submit_budget_seconds = 3.0  # the app reads the settings object the fixture built it with
    response = submit(faulty_client, ds)
    assert response.status_code == 202, response.text
    assert response.json()["state"] == "Queued" and response.json()["flowRunId"] is None
    done = wait_for_state(faulty_client, f"{TASKS}/{response.json()['taskId']}", ds, DONE, timeout=60)
    assert done["state"] == "Failed" and "could not be created within" in done["error"] and "503" in done["error"]
    assert len(proxy.creations()) >= 2, "run creation is retried before giving up"
    assert flow_runs_tagged(task_worker, f"task:{done['taskId']}") == []
    proxy.rule = lambda method, path, nth: None
    retried = faulty_client.post(f"{TASKS}/{done['taskId']}/retry", headers=ds)
    assert retried.status_code == 202, retried.text
    again = wait_for_state(faulty_client, f"{TASKS}/{done['taskId']}", ds, DONE)
    assert again["state"] == "Succeeded" and again["attempts"] == 2, again


def test_a_run_whose_creation_answer_was_lost_is_adopted_by_its_task(faulty_client, ds, proxy, task_worker):
    """Every answer lost: Prefect stores the run but the submitter never hears of it. When the run starts, its
    queued task adopts it, and it is the only run however often the submitter retried."""
    proxy.rule = lambda method, path, nth: "lose_answer" if path.endswith(CREATE) else None
    faulty_client.app.state.prefect.submit_retry_seconds = 0.5
    task = submit(faulty_client, ds).json()
    done = wait_for_state(faulty_client, f"{TASKS}/{task['taskId']}", ds, DONE)
    assert done["state"] == "Succeeded", done
    assert {c["idempotency_key"] for c in proxy.creations()} == {f"{task['taskId']}:1"}
    assert [run["id"] for run in flow_runs_tagged(task_worker, f"task:{task['taskId']}")] == [done["flowRunId"]]


def test_failing_reads_do_not_turn_an_accepted_submission_into_an_error(faulty_client, ds, proxy, task_worker):
    proxy.rule = lambda method, path, nth: "refuse" if path.endswith(("/flow_runs/filter", "/logs/filter")) else None
    response = submit(faulty_client, ds)
    assert response.status_code == 202, response.text
    assert response.json()["state"] in ("Queued", "Scheduled")
    proxy.rule = lambda method, path, nth: None
    assert wait_for_state(faulty_client, f"{TASKS}/{response.json()['taskId']}", ds, DONE)["state"] == "Succeeded"


def test_queued_rows_of_a_process_that_died_are_submitted_by_another(faulty_client, ds, settings):
    """Rows queued by an API process that died before creating their runs: this process's sweep submits them,
    oldest first, and they run."""
    engine = make_engine(settings.effective_database_url)
    try:
        with Session(engine) as session:
            dataset = session.exec(select(Dataset).where(Dataset.slug == "d")).one()
            admin = session.exec(select(User).where(User.username == "admin")).one()
            for age, task_id in ((timedelta(minutes=10), "a" * 32), (timedelta(minutes=1), "b" * 32)):
                session.add(Task(id=task_id, org_id=dataset.org_id, dataset_id=dataset.id, user_id=admin.id,
                                 tool_id="bulk-download", tool_version="1", dedup_key="x", state="Queued",
                                 parameters={"paths": ["b.txt"]}, created_at=utcnow() - age))
            session.commit()
    finally:
        engine.dispose()
    faulty_client.app.state.submitter.accept("b" * 32)  # wake the sweep instead of waiting for its period
    for task_id in ("a" * 32, "b" * 32):
        assert wait_for_state(faulty_client, f"{TASKS}/{task_id}", ds, DONE)["state"] == "Succeeded"


def test_failing_polls_leave_a_waited_job_accepted(nbs_settings, faulty_client, ds, proxy, nbs_catalogue):
    """An NBS ingest route waits for its job; a Prefect API refusing every state read meanwhile gives
    202 with the job, not an error, and the job still completes."""
    record = next(r for r in nbs_catalogue.of_kind("s1") if r.quicklooks)
    proxy.rule = lambda method, path, nth: "refuse" if path.endswith("/flow_runs/filter") else None
    response = faulty_client.post("/datasets/nbs-sentinel-quicklook-csw",
                                  json={"identifier": record.identifier, "wait": 2}, headers=ds)
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] in ("Scheduled", "Enqueued", "Processing") and job["job_id"]
    proxy.rule = lambda method, path, nth: None
    assert wait_for_state(faulty_client, job["status_url"], ds, DONE)["state"] == "Succeeded"


def test_writes_queue_without_spending_their_retry_budget(proxy):
    """Three writes at once to a server taking 1 s each: they go out one at a time, and the last one,
    refused once after 2 s in the queue, is still retried within its own 1.5 s budget."""
    from georeg.api.prefect_client import PrefectClient

    proxy.rule = lambda method, path, nth: ("refuse" if nth == 3 else "slow") if path.endswith("/flow_runs/filter") \
        else None

    async def three_writes() -> list[int]:
        client = PrefectClient(proxy.url, read_retry_seconds=1.5)
        try:
            responses = await asyncio.gather(*(client._request("POST", "/flow_runs/filter", write=True,
                                                               json={"limit": 1})
                                               for _ in range(3)))
            return [response.status_code for response in responses]
        finally:
            await client.aclose()

    started = time.monotonic()
    assert asyncio.run(three_writes()) == [200, 200, 200]
    assert time.monotonic() - started >= 3.0, "one at a time"


def test_views_show_cached_states_while_prefect_cannot_answer(faulty_client, ds, proxy, task_worker):
    """Listing and reading tasks and jobs only read: with every Prefect read refused they answer 200 with
    the states last seen, not 503."""
    task = submit(faulty_client, ds).json()
    faulty_client.app.state.prefect.read_retry_seconds = 0.5  # each refused read gives up sooner than its 5 s
    proxy.rule = lambda method, path, nth: "refuse" if path.endswith(("/flow_runs/filter", "/logs/filter")) else None
    listing = faulty_client.get(TASKS, headers=ds)
    assert listing.status_code == 200 and listing.json()["total"] == 1
    single = faulty_client.get(f"{TASKS}/{task['taskId']}", headers=ds)
    assert single.status_code == 200 and single.json()["state"] == task["state"] and single.json()["logTail"] == []
    assert faulty_client.get("/datasets/jobs", headers=ds).status_code == 200
    assert faulty_client.get(f"/datasets/jobs/{task['taskId']}", headers=ds).status_code == 200
    proxy.rule = lambda method, path, nth: None
    assert wait_for_state(faulty_client, f"{TASKS}/{task['taskId']}", ds, DONE)["state"] == "Succeeded"
