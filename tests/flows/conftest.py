"""A real Prefect worker for the task-platform tests: shipped and test-only deployments on the harness."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from georeg.api.app import create_app
from georeg.core.tasks.model import ToolRegistry
from georeg.core.tasks.tools import shipped_registry
from georeg.deployments.forkserver import FlowForkServer
from georeg.deployments.prefect_setup import prefect_env, register_all, register_deployment, worker_command
from georeg.deployments.processes import ChildProcess
from tests.flows.tooling import TEST_TOOLS
from tests.helpers import prefect_call, require_postgres

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class WorkerHome:
    """Environment and Prefect home shared by the test worker and its fork server."""

    env: dict[str, str]
    home: Path


@pytest.fixture(scope="session")
def worker_home(prefect_api_url: str, tmp_path_factory: pytest.TempPathFactory) -> WorkerHome:
    home = tmp_path_factory.mktemp("prefect-home")
    env = prefect_env(api_url=prefect_api_url, prefect_home=home,
                      base={k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "GEOREG_"))})
    env["PREFECT_WORKER_QUERY_SECONDS"] = "1"
    env.pop("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", None)
    return WorkerHome(env=env, home=home)


@pytest.fixture(scope="session")
def task_forkserver(worker_home: WorkerHome) -> Iterator[FlowForkServer]:
    """The flow-run fork server behind the session worker, as under ``georeg serve``."""
    forkserver = FlowForkServer(env=worker_home.env, cwd=ROOT, log_file=worker_home.home / "forkserver.log")
    forkserver.start()
    try:
        assert forkserver.wait_ready(), f"flow-run fork server not ready: {forkserver.process.tail()}"
        yield forkserver
    finally:
        forkserver.stop()


@pytest.fixture(scope="session")
def task_worker(prefect_api_url: str, worker_home: WorkerHome, task_forkserver: FlowForkServer) -> Iterator[str]:
    """Deploy prefect.yaml plus the test tools to the harness and run one process worker (1 s polls)
    whose runs are forked by ``task_forkserver``."""
    env, home = worker_home.env, worker_home.home
    register_all(prefect_api_url, work_pool="georeg", project_dir=ROOT)
    for tool in TEST_TOOLS:
        register_deployment(prefect_api_url, flow_name=tool.id, name=tool.id, project_dir=ROOT, work_pool="georeg",
                            entrypoint=f"tests/flows/tooling.py:{tool.id.replace('-', '_')}")
    worker = ChildProcess("test-worker", worker_command(work_pool="georeg", name=f"test-worker-{os.getpid()}", limit=4),
                          env={**env, **task_forkserver.worker_env}, cwd=ROOT, log_file=home / "worker.log")
    worker.start()
    try:
        yield prefect_api_url
    finally:
        worker.stop()


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    """Flow tests run on SQLite; tests that matter per backend parametrize ``backend`` with BACKENDS (a
    PostgreSQL case is skipped when no server answers)."""
    if request.param == "postgresql":
        require_postgres(request)
    return request.param


@pytest.fixture
def nbs_settings(settings, csw_url, nbs_file_server, tmp_path):
    """``settings`` pointed at the pycsw test server and the NBS-like file server."""
    settings.csw_endpoints = [csw_url]
    settings.download_hosts = [urlsplit(nbs_file_server.base_url).netloc]
    settings.safe_roots = [tmp_path / "safe-archive"]
    settings.csw_timeout_seconds = 5.0
    return settings


@pytest.fixture
def registry() -> ToolRegistry:
    tools = shipped_registry()
    for tool in TEST_TOOLS:
        tools.register(tool)
    return tools


@pytest.fixture
def client(settings, registry, task_worker) -> Iterator[TestClient]:
    """The API with the shipped and the test-only tools, its flow runs executed by the session worker."""
    settings.max_upload_bytes = 64 * 1024 * 1024
    with TestClient(create_app(settings, tools=registry)) as test_client:
        yield test_client


def wait_for_state(client: TestClient, url: str, headers: dict, states: set[str], timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        body = client.get(url, headers=headers).json()
        if body.get("state") in states:
            return body
        time.sleep(0.5)
    raise AssertionError(f"{url} did not reach {states} in {timeout}s: {body}")


def flow_run(api_url: str, flow_run_id: str) -> dict:
    return prefect_call("GET", f"{api_url}/flow_runs/{flow_run_id}").json()


def flow_runs_tagged(api_url: str, tag: str) -> list[dict]:
    """Flow runs carrying ``tag``, read straight from the Prefect server."""
    response = prefect_call("POST", f"{api_url}/flow_runs/filter", json={"flow_runs": {"tags": {"all_": [tag]}}})
    assert response.status_code == 200, response.text
    return response.json()
