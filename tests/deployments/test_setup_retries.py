"""Set-up calls (work pool, deployments) ride out a busy Prefect server, as one on SQLite is right after it
started ("database is locked", 503), and still fail clearly when it stays busy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from georeg.deployments import prefect_setup
from georeg.deployments.prefect_setup import SetupError, ensure_work_pool, register_deployment
from tests.faulty_proxy import FaultyProxy
from tests.helpers import prefect_call

ROOT = Path(__file__).resolve().parents[2]
POOL = "georeg-setup-retries"


@pytest.fixture
def proxy(prefect_api_url: str) -> Iterator[FaultyProxy]:
    proxy = FaultyProxy(prefect_api_url)
    yield proxy
    proxy.close()


def _register(api_url: str) -> str:
    return register_deployment(api_url, flow_name="setup-retries", name="setup-retries", project_dir=ROOT,
                               work_pool=POOL, entrypoint="tests/flows/tooling.py:test_process")


def test_busy_answers_are_retried(proxy, prefect_api_url):
    def busy_twice(method: str, path: str, nth: int) -> str | None:
        return {1: "refuse", 2: "refuse-429"}.get(nth)

    proxy.rule = busy_twice
    ensure_work_pool(proxy.url, POOL)
    deployment_id = _register(proxy.url)
    assert [path for method, path, _ in proxy.seen if method == "POST"].count("/api/deployments/") == 3
    deployment = prefect_call("GET", f"{prefect_api_url}/deployments/{deployment_id}").json()
    assert deployment["name"] == "setup-retries" and deployment["work_pool_name"] == POOL


def test_a_server_that_stays_busy_is_a_setup_error(proxy, monkeypatch):
    monkeypatch.setattr(prefect_setup, "SETUP_RETRY_SECONDS", 1.0)
    proxy.rule = lambda method, path, nth: "refuse" if path.endswith("/deployments/") else None
    with pytest.raises(SetupError, match="HTTP 503"):
        _register(proxy.url)
    assert sum(1 for _, path, _ in proxy.seen if path.endswith("/deployments/")) >= 2, "retried before giving up"
