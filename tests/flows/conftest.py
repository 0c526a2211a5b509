"""The task-platform tests' app and helpers; the session's Prefect worker is ``tests/worker_fixtures.py``'s."""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from georeg.api.app import create_app
from georeg.core.tasks.model import ToolRegistry
from georeg.core.tasks.tools import shipped_registry
from tests.flows.tooling import TEST_TOOLS
from tests.helpers import prefect_call, require_postgres


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
