"""prefect.yaml, deployment names and the import-layering contracts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from georeg.deployments.prefect_setup import declared_deployments, find_project_dir
from georeg.flows.names import BATCH_CLEANUP_DEPLOYMENT, CLEANUP_DEPLOYMENT

ROOT = Path(__file__).resolve().parents[2]


def test_prefect_yaml_declares_scheduled_cleanup():
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    by_name = {d["name"]: d for d in spec["deployments"]}
    cleanup = by_name["cleanup"]
    assert cleanup["work_pool"]["name"] == "georeg"
    assert cleanup["schedules"][0]["cron"] == "17 3 * * *"
    assert CLEANUP_DEPLOYMENT in declared_deployments(ROOT)
    batches = by_name["cleanup-batches"]
    assert (batches["work_pool"]["name"], batches["schedules"][0]["cron"]) == ("georeg", "*/15 * * * *")
    assert BATCH_CLEANUP_DEPLOYMENT in declared_deployments(ROOT)


def test_every_entrypoint_loads_a_flow():
    from prefect.flows import load_flow_from_entrypoint

    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    for deployment in spec["deployments"]:
        flow = load_flow_from_entrypoint(str(ROOT / deployment["entrypoint"]))
        if "task-tool" in deployment["tags"]:
            assert flow.name == deployment["name"]


def test_every_tool_of_the_list_has_its_deployment_and_nothing_else():
    """prefect.yaml holds exactly one task-tool deployment per tool of ``TOOLS``, named like the tool, running its
    flow of ``flows/tools.py`` with the tool's description: adding a tool is one line in ``TOOLS`` plus the entry
    this test prints."""
    from georeg.core.tasks.tools import TOOLS, shipped_tools

    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    declared = {d["name"]: d for d in spec["deployments"] if "task-tool" in d.get("tags", [])}
    for tool in shipped_tools():
        expected = {"name": tool.id, "entrypoint": f"flows/tools.py:{tool.flow_attribute}",
                    "description": tool.description, "tags": ["georeg", "task-tool"], "work_pool": {"name": "georeg"}}
        deployment = declared.get(tool.id)
        assert deployment is not None, f"prefect.yaml lacks the deployment of {tool.id}:\n{yaml.safe_dump([expected])}"
        for key in ("entrypoint", "description", "work_pool"):
            assert deployment[key] == expected[key], (tool.id, key)
    assert set(declared) == set(TOOLS), f"task-tool deployments of no tool: {sorted(set(declared) - set(TOOLS))}"
    assert set(declared_deployments(ROOT)) >= {tool.deployment for tool in shipped_tools()}


def test_project_dir_is_found():
    assert find_project_dir() == ROOT


def test_import_layers_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_scheduled_maintenance_deployments():
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    scheduled = {d["name"]: d for d in spec["deployments"] if "scheduled" in d["tags"]}
    assert {d["parameters"]["tool_id"] for d in scheduled.values()} == {"rehash", "prune-missing", "resync",
                                                                        "csw-harvest", "check-artifacts"}
    assert all(d["schedules"][0]["cron"] for d in scheduled.values())
    active = {name for name, d in scheduled.items() if d["schedules"][0]["active"]}
    assert active == set(scheduled) - {"hourly-csw-harvest"}, "the CSW harvest is disabled by default"
