"""`georeg deploy` registers the work pool and every prefect.yaml deployment on a real Prefect API, storing what
``prefect deploy --all`` stores for each (entrypoint, description, tags, parameters and their schema, schedules,
pull step)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from georeg.deployments import prefect_setup
from georeg.deployments.prefect_setup import (
    SetupError,
    declared_deployments,
    deployment_fingerprint,
    engine_command,
    ensure_work_pool,
    register_all,
)
from tests.helpers import prefect_call

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
    pool = prefect_call("GET", f"{prefect_api_url}/work_pools/georeg").json()
    assert pool["type"] == "process" and pool["concurrency_limit"] is None, "the worker limits concurrency"
    command = pool["base_job_template"]["variables"]["properties"]["command"]["default"]
    assert command == engine_command(), "the worker starts the flow-run launcher, not Prefect's workspace supervisor"
    deployment = prefect_call("GET", f"{prefect_api_url}/deployments/name/cleanup/cleanup").json()
    assert deployment["schedules"][0]["schedule"]["cron"] == "17 3 * * *"
    assert deployment["parameter_openapi_schema"]["properties"]["max_age_hours"]["default"] is None
    for declared, name in zip(yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"],
                              declared_deployments(ROOT), strict=True):
        stored = prefect_call("GET", f"{prefect_api_url}/deployments/name/{name}").json()
        assert stored["entrypoint"] == declared["entrypoint"] and stored["work_pool_name"] == "georeg"
        assert (stored["description"], stored["tags"], stored["parameters"]) == (
            declared["description"], declared["tags"], declared.get("parameters", {})), name
        assert stored["enforce_parameter_schema"] and stored["parameter_openapi_schema"]["type"] == "object"
        assert [(s["schedule"]["cron"], s["schedule"]["timezone"], s["active"]) for s in stored["schedules"]] == [
            (s["cron"], s["timezone"], s["active"]) for s in declared.get("schedules", [])], name
        assert stored["pull_steps"] == [
            {"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}
        ]
    prefect_call("PATCH", f"{prefect_api_url}/work_pools/georeg", json={"concurrency_limit": 4}).raise_for_status()
    ensure_work_pool(prefect_api_url, "georeg")  # what every `georeg deploy` and `georeg serve` start does first
    assert prefect_call("GET", f"{prefect_api_url}/work_pools/georeg").json()["concurrency_limit"] is None, \
        "a pool limit left by an older georeg is cleared"


@pytest.fixture
def deployed(prefect_api_url, tmp_path) -> str:
    """The session's Prefect API with every prefect.yaml deployment on it (deployed here if need be)."""
    if prefect_setup.verify_deployments(prefect_api_url, prefect_setup.declared_deployments(ROOT)):
        result = _run_deploy(prefect_api_url, tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
    return prefect_api_url


@pytest.fixture
def deploy_calls(monkeypatch) -> list[Path]:
    """The deployment replaced by a recorder (the deployments are already on the session's server)."""
    calls: list[Path] = []
    monkeypatch.setattr(prefect_setup, "deploy_all", lambda api_url, project_dir, work_pool: calls.append(project_dir))
    return calls


def _register(api_url: str, tmp_path: Path, state_file: Path) -> prefect_setup.Registration:
    return register_all(api_url, work_pool="georeg", project_dir=ROOT, state_file=state_file)


def test_unchanged_deployments_are_not_redeployed(deployed, tmp_path, deploy_calls):
    """serve's restart: the fingerprint of the last deployment matches and every deployment is on the
    server, so the deployment is skipped; a changed fingerprint deploys again and records the new one."""
    state_file = tmp_path / "deployed.sha256"
    state_file.write_text(deployment_fingerprint(ROOT, deployed))
    skipped = _register(deployed, tmp_path, state_file)
    assert skipped.deployed is False and deploy_calls == [] and "cleanup/cleanup" in skipped.names

    state_file.write_text("fingerprint of older code")
    assert _register(deployed, tmp_path, state_file).deployed is True and deploy_calls == [ROOT]
    assert state_file.read_text() == deployment_fingerprint(ROOT, deployed)
    assert deployment_fingerprint(ROOT, "http://elsewhere/api") != state_file.read_text(), "another server"


def test_a_deployment_missing_on_the_server_is_deployed_again(deployed, tmp_path, deploy_calls, monkeypatch):
    """Same code, but the server lacks a deployment (a new Prefect database, one deleted in the UI):
    deploy again; still missing afterwards -> a clear error and no fingerprint left behind."""
    declared = prefect_setup.declared_deployments(ROOT)
    monkeypatch.setattr(prefect_setup, "declared_deployments", lambda project_dir: [*declared, "gone/gone"])
    state_file = tmp_path / "deployed.sha256"
    state_file.write_text(deployment_fingerprint(ROOT, deployed))
    with pytest.raises(SetupError, match="gone/gone"):
        _register(deployed, tmp_path, state_file)
    assert deploy_calls == [ROOT] and not state_file.exists()



def test_a_flow_that_cannot_load_is_a_setup_error_naming_its_deployment(tmp_path):
    (tmp_path / "flows").mkdir()
    (tmp_path / "prefect.yaml").write_text(
        "deployments:\n  - name: broken\n    entrypoint: flows/missing.py:nothing\n")
    with pytest.raises(SetupError, match=r"deployment 'broken' \(flows/missing.py:nothing\)"):
        declared_deployments(tmp_path)
