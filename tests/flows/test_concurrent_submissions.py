"""Four clients submitting at once over real HTTP against the session's Prefect server on SQLite (one writer at a
time): every submission is accepted (202, never 503), every task runs exactly once and succeeds, and health and
reads answer meanwhile."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from georeg.api.app import create_app
from tests.flows.conftest import flow_runs_tagged
from tests.helpers import ADMIN_PASSWORD, create_dataset, login, upload_object
from tests.live import serve_app

CLIENTS, PER_CLIENT = 4, 6
TASKS = "/orgs/admin/ds/d/tasks"


def test_four_concurrent_clients_are_never_refused(settings, registry, task_worker):
    settings.task_submit_wait_seconds = 0.5
    settings.max_active_tasks_per_user = 100  # the quota is not what this test is about
    with serve_app(create_app(settings, tools=registry)) as url:
        with httpx.Client(base_url=url, timeout=60) as setup:
            headers = login(setup, "admin", ADMIN_PASSWORD)
            create_dataset(setup, headers)
            assert upload_object(setup, headers, "b.txt", b"bee").status_code == 201

        def client_burst(number: int) -> list[tuple[int, str]]:
            answers = []
            with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
                for index in range(PER_CLIENT):
                    response = client.post(TASKS, json={"toolId": "bulk-download", "force": True,
                                                         "parameters": {"paths": ["b.txt"]}})
                    answers.append((response.status_code, response.json().get("taskId", response.text)))
                    if index % 3 == 0:
                        health = client.get("/health")
                        answers.append((health.status_code, "health"))
                        answers.append((client.get(TASKS, params={"take": 5}).status_code, "listing"))
            return answers

        with ThreadPoolExecutor(CLIENTS) as pool:
            answers = [answer for burst in pool.map(client_burst, range(CLIENTS)) for answer in burst]
        assert {status for status, _ in answers} == {200, 202}, [a for a in answers if a[0] not in (200, 202)]
        task_ids = [what for status, what in answers if status == 202]
        assert len(set(task_ids)) == CLIENTS * PER_CLIENT

        deadline = time.monotonic() + 240
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            pending = set(task_ids)
            while pending and time.monotonic() < deadline:
                for task_id in sorted(pending):
                    body = client.get(f"{TASKS}/{task_id}").json()
                    if body["state"] in ("Succeeded", "Failed", "Cancelled"):
                        assert body["state"] == "Succeeded", body
                        pending.discard(task_id)
                time.sleep(1)
            assert not pending, f"{len(pending)} tasks still running after 240 s"
    for task_id in task_ids:
        assert len(flow_runs_tagged(task_worker, f"task:{task_id}")) == 1, "one run per task"
