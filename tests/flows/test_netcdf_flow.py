"""The netcdf-geotiff tool through the Prefect worker: an S1-like swath read over OPeNDAP becomes two registered
GCP rasters (sampled back at a point), a failing run registers nothing and says why."""

from __future__ import annotations

import time

import numpy as np

from tests.flows.conftest import wait_for_state
from tests.netcdf_fixtures import swath_lonlat

TASKS = "/orgs/default/ds/registry/tasks"
DONE = {"Succeeded", "Failed", "Cancelled"}


def run_tool(client, headers, parameters: dict) -> dict:
    response = client.post(TASKS, json={"toolId": "netcdf-geotiff", "parameters": parameters, "force": True},
                           headers=headers)
    assert response.status_code == 202, response.text
    return wait_for_state(client, f"{TASKS}/{response.json()['taskId']}", headers, DONE)


def logged(client, headers, task_id: str, text: str, timeout: float = 30) -> bool:
    """Whether ``text`` shows up in the task's log tail within ``timeout`` (Prefect ships logs in batches)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(text in line for line in client.get(f"{TASKS}/{task_id}", headers=headers).json()["logTail"]):
            return True
        time.sleep(0.5)
    return False


def csw_datasets(client, headers) -> list[dict]:
    return client.get("/datasets", params={"source": "csw", "limit": 100}, headers=headers).json()["items"]


def test_netcdf_geotiff_tool(client, admin_headers, settings, netcdf_record, opendap_server):
    settings.download_hosts = [opendap_server.host]
    record = netcdf_record("swath", platform="S1A").model_dump(mode="json")
    parameters = {"record": record, "endpoint": "https://nbs.csw.met.no/csw"}

    task = run_tool(client, admin_headers, parameters)
    assert task["state"] == "Succeeded", task["error"]
    result = task["result"]
    assert result["kind"] == "opendap" and result["variables"] == ["Amplitude_VH", "Amplitude_VV"]
    assert task["progress"]["percent"] == 100
    assert logged(client, admin_headers, task["taskId"], "variable Amplitude_VV written")
    datasets = {item["metadata"]["netcdf"]["variable"]: item for item in csw_datasets(client, admin_headers)}
    assert set(datasets) == {"Amplitude_VH", "Amplitude_VV"}
    vv = datasets["Amplitude_VV"]
    assert vv["platform"] == "S1A" and vv["dtype"] == "uint16" and vv["source_identifier"] == record["identifier"]
    row, col = 20, 30
    lon, lat = swath_lonlat(np.float64(row + 0.5), np.float64(col + 0.5))
    sample = client.get(f"/datasets/{vv['dataset_id']}/sample", params={"lon": lon, "lat": lat},
                        headers=admin_headers).json()
    truth = opendap_server.files.swath.expected["Amplitude_VV"][0, row, col]
    assert (sample["row"], sample["col"]) == (row, col), sample
    assert sample["values"][0]["value"] == truth and sample["values"][0]["description"] == "Amplitude_VV"

    unknown = run_tool(client, admin_headers, {**parameters, "variables": ["Amplitude_VV", "Sigma0_HH"]})
    assert unknown["state"] == "Failed" and "Sigma0_HH" in unknown["error"]
    assert len(csw_datasets(client, admin_headers)) == 2


def test_registry_tools_run_only_on_the_registry_dataset(client, admin_headers):
    """A registry-wide tool started from another dataset is refused before anything is queued."""
    assert client.post("/orgs/admin/ds", json={"slug": "nc"}, headers=admin_headers).status_code == 201
    response = client.post("/orgs/admin/ds/nc/tasks", json={"toolId": "netcdf-geotiff", "parameters": {}},
                           headers=admin_headers)
    assert response.status_code == 400 and response.json()["code"] == "registry_tool", response.text
    assert client.get("/orgs/admin/ds/nc/tasks", headers=admin_headers).json()["total"] == 0
