"""`georeg deploy` registers the work pool and every prefect.yaml deployment on a real Prefect API."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from georeg.deployments.prefect_setup import engine_command

ROOT = Path(__file__).resolve().parents[2]
GEOREG = str(Path(sys.executable).with_name("georeg"))


def _run_deploy(api_url: str, data_dir: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEOREG_", "PREFECT_"))}
    env.update(GEOREG_PREFECT_API_URL=api_url, GEOREG_DATA_DIR=str(data_dir))
    return subprocess.run([GEOREG, "deploy"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_deploy_registers_pool_and_scheduled_cleanup(prefect_api_url, tmp_path):
    result = _run_deploy(prefect_api_url, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cleanup/cleanup" in result.stdout
    pool = httpx.get(f"{prefect_api_url}/work_pools/georeg", timeout=10).json()
    assert pool["type"] == "process" and pool["concurrency_limit"] is None, "the worker limits concurrency"
    command = pool["base_job_template"]["variables"]["properties"]["command"]["default"]
    assert command == engine_command(), "the worker starts the flow-run launcher, not Prefect's workspace supervisor"
    deployment = httpx.get(f"{prefect_api_url}/deployments/name/cleanup/cleanup", timeout=10).json()
    assert deployment["schedules"][0]["schedule"]["cron"] == "17 3 * * *"
    assert deployment["pull_steps"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}
    ]
    httpx.patch(f"{prefect_api_url}/work_pools/georeg", json={"concurrency_limit": 4}, timeout=10).raise_for_status()
    again = _run_deploy(prefect_api_url, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert httpx.get(f"{prefect_api_url}/work_pools/georeg", timeout=10).json()["concurrency_limit"] is None, \
        "a pool limit left by an older georeg is cleared"


def test_deploy_reports_an_unreachable_server(tmp_path):
    result = _run_deploy("http://127.0.0.1:9/api", tmp_path)
    assert result.returncode == 1
    assert "georeg deploy failed" in result.stderr
