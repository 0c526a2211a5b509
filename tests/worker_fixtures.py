"""The session's Prefect worker and its flow-run fork server, with the shipped and test-only deployments on the
session's Prefect server.

Registered from ``tests/conftest.py`` (``pytest_plugins``), so that every folder (flows, browser) shares one worker per
test process. A test module importing these fixtures would define them again: a second worker polling the same work
pool, taking runs the first one's tests expect (seen: a run forked by the other fork server).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from georeg.deployments.forkserver import FlowForkServer
from georeg.deployments.prefect_setup import prefect_env, register_all, register_deployment, worker_command
from georeg.deployments.processes import ChildProcess
from tests.flows.tooling import TEST_TOOLS

ROOT = Path(__file__).resolve().parents[1]


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
