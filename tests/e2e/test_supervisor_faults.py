"""``georeg worker`` as its own process: a supervised fork server and Prefect worker on the session's
Prefect harness that runs a flow, and restarts its fork server after a ``kill -9``. (The embedded stack's
restarts are checked on the stack tests/e2e/test_serve.py starts anyway; the restart policy and loop
without a stack in tests/deployments/test_supervision.py.)"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from georeg.deployments.prefect_setup import ensure_work_pool, register_deployment
from tests.e2e.test_serve import GEOREG, ServeProcess, find_forkserver
from tests.helpers import prefect_call

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
POOL = "georeg-worker-e2e"  # not the session worker's pool: its runs must not go to this worker


class WorkerProcess(ServeProcess):
    """`georeg worker`, output collected like `georeg serve`'s."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.process = subprocess.Popen([GEOREG, "worker", *args], env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, cwd=ROOT)
        self._start_pump()


def test_georeg_worker_runs_flows_and_restarts_its_fork_server(prefect_api_url, tmp_path):
    ensure_work_pool(prefect_api_url, POOL)  # what `georeg deploy` does: the launcher as the pool's command
    deployment_id = register_deployment(prefect_api_url, flow_name="e2e-worker-touch", name="touch",
                                        entrypoint="tests/e2e/worker_flow.py:touch", project_dir=ROOT, work_pool=POOL)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEOREG_", "PREFECT_"))}
    # PREFECT_API_URL alone names the Prefect API of a scale-out command
    env.update(PREFECT_API_URL=prefect_api_url, GEOREG_DATA_DIR=str(tmp_path / "data"), GEOREG_WORK_POOL=POOL,
               PREFECT_WORKER_QUERY_SECONDS="0.5")
    worker = WorkerProcess(env, "--limit", "2", "--name", "e2e-worker")
    try:
        worker.wait_ready(timeout=120)
        assert any(f"worker e2e-worker on pool {POOL} at {prefect_api_url} (limit 2, with a flow-run fork server)"
                   in line for line in worker.lines), worker.lines
        forkserver = find_forkserver(worker.descendants())
        forkserver.kill()
        worker.wait_for_line(r"georeg: flow-forkserver exited \(code -9\); restarting in 1 s \(restart 1\)")
        worker.wait_for_line(r"georeg forkserver: ready on", timeout=60)

        target = tmp_path / "touched"
        created = prefect_call("POST", f"{prefect_api_url}/deployments/{deployment_id}/create_flow_run", json={
            "parameters": {"path": str(target)}, "idempotency_key": f"e2e-{tmp_path.name}"})
        assert created.status_code in (200, 201), created.text
        run_id = created.json()["id"]
        deadline = time.monotonic() + 60
        run = created.json()
        while run["state_type"] not in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") and time.monotonic() < deadline:
            time.sleep(0.5)
            run = prefect_call("GET", f"{prefect_api_url}/flow_runs/{run_id}").json()
        assert run["state_type"] == "COMPLETED", (run["state"], "\n".join(worker.lines))
        parent = int(target.read_text().split()[0])
        assert parent == find_forkserver(worker.descendants()).pid, "forked by the restarted fork server"
    finally:
        code = worker.stop()
    assert code == 0, "\n".join(worker.lines)
    assert "georeg: stopping prefect-worker" in worker.lines
