"""The scale-out topology on one machine, every part its own process with its own working directory, sharing only
the data dir, PostgreSQL and the Prefect API URL: Prefect's own server on PostgreSQL, ``georeg migrate`` and
``georeg deploy``, two ``georeg api`` processes on different ports and two ``georeg worker`` processes.

A burst of tasks spread over both APIs by concurrent clients: every submission accepted (no 503), every task
Succeeded with exactly one flow run, and both workers ran flows. ``GEOREG_TEST_SCALE_OUT_TASKS`` sets the burst:
24 in ``make test`` (the suite's time budget: every flow run costs CPU on this 2-core machine), 300 for the
issue's figure (``GEOREG_TEST_SCALE_OUT_TASKS=300 make test PYTEST_ARGS=tests/e2e/test_scale_out.py``)."""

from __future__ import annotations

import os
import re
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from georeg.core.db import make_engine
from georeg.deployments.prefect_setup import SetupError
from georeg.deployments.processes import ChildProcess
from georeg.deployments.supervisor import wait_for_http
from tests.e2e.test_serve import free_port
from tests.helpers import ADMIN_PASSWORD, require_postgres

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
GEOREG = str(Path(sys.executable).with_name("georeg"))
TASKS = int(os.environ.get("GEOREG_TEST_SCALE_OUT_TASKS", "24"))
CLIENTS = 4
DONE = {"Succeeded", "Failed", "Cancelled"}


def _wait_http(url: str, child: ChildProcess, timeout: float = 120) -> None:
    """The supervisor's own readiness wait, failing the test with the child's output."""
    try:
        wait_for_http(url, timeout=timeout, child=child)
    except SetupError as exc:
        raise AssertionError(f"{exc}:\n{child.tail(40)}") from exc


class Topology:
    """The processes of one scale-out deployment on this machine."""

    def __init__(self, root: Path, registry_url: str, prefect_db_url: str) -> None:
        self.root = root
        self.data_dir = root / "shared-data"
        self.prefect_url = f"http://127.0.0.1:{free_port()}/api"
        self.base = {k: v for k, v in os.environ.items() if not k.startswith(("GEOREG_", "PREFECT_"))}
        self.settings = {"GEOREG_DATA_DIR": str(self.data_dir), "GEOREG_DATABASE_URL": registry_url,
                         "GEOREG_PREFECT_API_URL": self.prefect_url, "GEOREG_PROJECT_DIR": str(ROOT),
                         "GEOREG_ADMIN_PASSWORD": ADMIN_PASSWORD, "GEOREG_SECRET_KEY": "scale-out-secret",
                         "GEOREG_PASSWORD_HASH_MEMORY_KIB": "64", "GEOREG_PASSWORD_HASH_TIME_COST": "1",
                         "GEOREG_BUILD_ON_UPLOAD": "false", "GEOREG_MAX_ACTIVE_TASKS_PER_USER": "1000",
                         "PREFECT_API_URL": self.prefect_url,
                         "PYTHONUNBUFFERED": "1"}
        self.prefect_db_url = prefect_db_url
        self.children: list[ChildProcess] = []
        self.apis: list[str] = []
        self.workers: list[ChildProcess] = []

    def _start(self, name: str, command: list[str], env: dict[str, str]) -> ChildProcess:
        home = self.root / name
        home.mkdir(parents=True, exist_ok=True)
        child = ChildProcess(name, command, env={**self.base, "PREFECT_HOME": str(home / "prefect-home"), **env},
                             cwd=home, log_file=home / "output.log")
        child.start()
        self.children.append(child)
        return child

    def _run(self, name: str, *args: str) -> None:
        child = self._start(name, [GEOREG, *args], self.settings)
        code = child.process.wait(timeout=300)
        assert code == 0, f"georeg {' '.join(args)} failed ({code}):\n{child.tail(40)}"

    def start(self) -> None:
        port = self.prefect_url.split(":")[2].split("/")[0]
        server = self._start("prefect-server", [sys.executable, "-m", "prefect", "server", "start", "--host",
                                                "127.0.0.1", "--port", port],
                             {"PREFECT_SERVER_DATABASE_CONNECTION_URL": self.prefect_db_url,
                              "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_ENABLED": "false"})
        _wait_http(f"{self.prefect_url}/health", server, timeout=180)
        self._run("migrate", "migrate")
        self._run("deploy", "deploy")
        for number in (1, 2):
            port = free_port()
            api = self._start(f"api-{number}", [GEOREG, "api", "--host", "127.0.0.1", "--port", str(port)],
                              self.settings)
            _wait_http(f"http://127.0.0.1:{port}/version", api)
            self.apis.append(f"http://127.0.0.1:{port}")
        for number in (1, 2):
            self.workers.append(self._start(f"worker-{number}", [GEOREG, "worker", "--limit", "4", "--name",
                                                                 f"scale-out-worker-{number}"],
                                            {**self.settings, "PREFECT_WORKER_QUERY_SECONDS": "1",
                                             "PREFECT_RUNNER_POLL_FREQUENCY": "1"}))

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()


@pytest.fixture
def topology(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Topology]:
    base_url = require_postgres(request)
    admin = make_engine(base_url).execution_options(isolation_level="AUTOCOMMIT")
    name = f"georeg_scale_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        for database in (name, f"{name}_prefect"):
            connection.execute(text(f'CREATE DATABASE "{database}"'))
    url = make_engine(base_url).url
    registry_url = url.set(database=name).render_as_string(hide_password=False)
    prefect_url = url.set(drivername="postgresql+asyncpg", database=f"{name}_prefect").render_as_string(
        hide_password=False)
    deployment = Topology(tmp_path, registry_url, prefect_url)
    try:
        deployment.start()
        yield deployment
    finally:
        deployment.stop()
        with admin.connect() as connection:
            for database in (name, f"{name}_prefect"):
                connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()


SUBMITTED = r"Flow run '([^']+)' submitted to infrastructure"  # a worker's log line as it starts a run


def test_a_burst_over_two_apis_and_two_workers(topology: Topology) -> None:
    first, second = topology.apis
    token = httpx.post(f"{first}/users/authenticate", json={"userName": "admin", "password": ADMIN_PASSWORD},
                       timeout=30).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.post(f"{second}/orgs/admin/ds", json={"slug": "burst"}, headers=headers, timeout=30).status_code \
        == 201, "a dataset made through one API"
    upload = httpx.post(f"{first}/orgs/admin/ds/burst/obj", files={"file": ("b.txt", b"bee")},
                        data={"path": "b.txt"}, headers=headers, timeout=30)
    assert upload.status_code == 201, upload.text

    def burst(client_number: int) -> list[tuple[int, str]]:
        answers = []
        with httpx.Client(headers=headers, timeout=120) as client:
            for index in range(client_number, TASKS, CLIENTS):
                api = topology.apis[index % 2]
                response = client.post(f"{api}/orgs/admin/ds/burst/tasks", json={
                    "toolId": "bulk-download", "force": True, "parameters": {"paths": ["b.txt"]}})
                answers.append((response.status_code, response.json().get("taskId") or response.text))
        return answers

    started = time.monotonic()
    with ThreadPoolExecutor(CLIENTS) as pool:
        answers = [answer for part in pool.map(burst, range(CLIENTS)) for answer in part]
    submitted = time.monotonic() - started
    refused = [answer for answer in answers if answer[0] != 202]
    assert not refused, refused[:5]
    task_ids = {task_id for _, task_id in answers}
    assert len(task_ids) == TASKS

    deadline = time.monotonic() + 900
    pending = set(task_ids)
    with httpx.Client(headers=headers, timeout=60) as client:
        while pending and time.monotonic() < deadline:
            states = {}
            for skip in range(0, TASKS, 100):
                page = client.get(f"{second}/orgs/admin/ds/burst/tasks", params={"skip": skip, "take": 100})
                assert page.status_code == 200, page.text
                states.update({item["taskId"]: item for item in page.json()["items"]})
            failed = [states[t] for t in pending if states[t]["state"] in DONE - {"Succeeded"}]
            assert not failed, failed[:3]
            pending = {t for t in pending if states[t]["state"] != "Succeeded"}
            time.sleep(2)
    assert not pending, f"{len(pending)} of {TASKS} tasks not Succeeded after 900 s"
    finished = time.monotonic() - started

    per_task: Counter[str] = Counter()
    others: set[str] = set()  # names of runs of scheduled deployments (cleanup-batches every few minutes)
    offset = 0
    while True:
        batch = httpx.post(f"{topology.prefect_url}/flow_runs/filter", json={"limit": 200, "offset": offset},
                           timeout=60).json()
        for run in batch:
            if "tool:bulk-download" in run["tags"]:
                per_task.update(tag.removeprefix("task:") for tag in run["tags"] if tag.startswith("task:"))
            else:
                others.add(run["name"])
        if len(batch) < 200:
            break
        offset += 200
    assert set(per_task) == task_ids and set(per_task.values()) == {1}, "every task has exactly one flow run"
    # both workers may try a run; the one whose Pending transition Prefect accepts starts it ("submitted to
    # infrastructure"), the other is told to abort. A worker that read a run as Scheduled just before the other
    # ran it to the end may still submit it (Prefect lets a finished run go back to Pending): that second
    # execution finds its attempt claimed and does not run the tool (tests/flows/test_repeated_execution.py)
    # A scheduled run during the burst is not counted (a task's run has another name by then: it is renamed as it
    # starts).
    logs = {worker.name: worker.log_file.read_text() for worker in topology.workers}
    submitted_runs = {name: sum(run not in others for run in re.findall(SUBMITTED, log)) for name, log in logs.items()}
    repeated = sum(log.count("this second execution does not run the tool") for log in logs.values())
    assert all(submitted_runs.values()), f"both workers ran flows: {submitted_runs}"
    assert sum(submitted_runs.values()) - repeated == TASKS, f"tools ran once: {submitted_runs}, {repeated} repeated"
    print(f"{TASKS} tasks: submitted in {submitted:.1f} s, all Succeeded after {finished:.1f} s; "
          f"per worker {submitted_runs}, {repeated} repeated executions")
