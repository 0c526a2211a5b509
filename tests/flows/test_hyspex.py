"""HySpex campaigns end to end: a real pycsw with a campaign of 25 children, their NetCDFs on a real OPeNDAP server,
jobs run by the Prefect worker (child preview/submit/dedup, hostile inputs, queueing every child, the
``hyspex-parent`` fan-out job with its child flow runs, cancelling it)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import rasterio

from tests.flows.conftest import wait_for_state
from tests.helpers import prefect_call
from tests.hyspex_fixtures import CHILDREN, HYSPEX_PARENT, NO_NETCDF, NOT_HYSPEX, nearest_bands, rgb_truth

pytestmark = pytest.mark.slow
DONE = {"Succeeded", "Failed", "Cancelled"}
ACTIVE = {"Scheduled", "Enqueued", "Processing"}


def post(client, headers, route: str, status: int = 200, **body) -> dict:
    response = client.post(f"/datasets/{route}", json=body, headers=headers)
    assert response.status_code == status, response.text
    return response.json()


def jobs(client, headers, tool_id: str, **params) -> dict:
    return client.get("/datasets/jobs", params={"tool_id": tool_id, "limit": 100, **params}, headers=headers).json()


def registered(client, headers) -> list[dict]:
    return client.get("/datasets", params={"limit": 100, "source": "csw"}, headers=headers).json()["items"]


def stored_file(settings, dataset: dict) -> Path:
    (path,) = [p for p in settings.storage_dir.rglob("*.tif") if p.name == dataset["title"] + ".tif"
               and dataset["sha256"][:12] in str(p)]
    return path


def wait_for_children(client, headers, count: int, timeout: float = 150) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = jobs(client, headers, "nc-to-geotiff")["items"]
        if len(items) >= count and all(item["state"] in DONE for item in items):
            return items
        time.sleep(1)
    raise AssertionError(f"child jobs not finished: {[item['state'] for item in items]}")


def check_pixels(settings, client, headers, files, datasets: list[dict]) -> None:
    for item in datasets:
        record = client.get(f"/datasets/{item['dataset_id']}", headers=headers).json()
        cube = files.child(record["source_identifier"])
        with rasterio.open(stored_file(settings, record)) as raster:
            if record["metadata"]["variant"] == "rgb":
                np.testing.assert_array_equal(raster.read(), rgb_truth(cube))
            else:
                data = raster.read(1).astype("f8")
                data[data == raster.nodata] = np.nan
                assert raster.dtypes[0] == "float32"
                np.testing.assert_array_equal(data, cube.elevation)


def test_child_preview_submit_and_dedup(client, hyspex_settings, admin_headers, hyspex_files):
    cube, other = hyspex_files.children[0], hyspex_files.children[1]
    preview = post(client, admin_headers, "hyspex-csw", identifier=cube.identifier)
    assert preview["status"] == "preview" and preview["submitted"] is False
    plan = preview["plan"]
    assert plan["source"]["kind"] == "opendap" and plan["source"]["url"].endswith(cube.filename)
    assert [(band["color"], band["index"]) for band in plan["bands"]] == list(zip(("red", "green", "blue"),
                                                                                  nearest_bands(), strict=True))
    assert [band["target_nm"] for band in plan["bands"]] == [640, 550, 460]
    assert plan["outputs"] == {"rgb": f"{cube.identifier}_rgb.tif", "z": f"{cube.identifier}_z.tif"}
    assert plan["variants"] == ["rgb", "z"] and plan["elevation_variable"] == "elevation"
    assert jobs(client, admin_headers, "nc-to-geotiff")["total"] == 0, "a preview queues nothing"

    queued = post(client, admin_headers, "hyspex-csw", identifier=cube.identifier, submit=True)
    assert queued["status"] == "queued" and queued["queued_variants"] == ["rgb", "z"] and queued["job_id"]
    busy = post(client, admin_headers, "hyspex-csw", identifier=cube.identifier, submit=True, variants=["z"])
    assert busy["status"] == "already_queued" and busy["job_id"] == queued["job_id"]
    job = wait_for_state(client, queued["status_url"], admin_headers, DONE)
    assert job["state"] == "Succeeded", job
    datasets = job["result"]["datasets"]
    assert sorted(item["variant"] for item in datasets) == ["rgb", "z"]
    check_pixels(hyspex_settings, client, admin_headers, hyspex_files, datasets)

    again = post(client, admin_headers, "hyspex-csw", identifier=cube.identifier, submit=True)
    assert again["status"] == "already_registered" and set(again["registered"]) == {"rgb", "z"}
    assert "job_id" not in again
    only_z = post(client, admin_headers, "hyspex-csw", identifier=other.identifier, submit=True, variants=["z"])
    assert only_z["queued_variants"] == ["z"]
    assert wait_for_state(client, only_z["status_url"], admin_headers, DONE)["state"] == "Succeeded"
    missing = client.get("/datasets/hyspex-missing-variants", headers=admin_headers).json()
    assert missing["total"] == 1 and missing["items"][0]["identifier"] == other.identifier
    assert missing["items"][0]["missing"] == ["rgb"]
    rest = post(client, admin_headers, "hyspex-csw", identifier=other.identifier, submit=True)
    assert rest["queued_variants"] == ["rgb"], "only the variant not registered is queued"
    assert wait_for_state(client, rest["status_url"], admin_headers, DONE)["state"] == "Succeeded"
    assert client.get("/datasets/hyspex-missing-variants", headers=admin_headers).json()["total"] == 0


def test_hostile_inputs_are_clear_4xx_and_register_nothing(client, hyspex_settings, admin_headers, hyspex_files):
    child = hyspex_files.children[2].identifier
    cases = [
        ({"identifier": "no-such-record"}, 404, "record_not_found"),
        ({"identifier": child, "endpoint": "http://169.254.169.254/csw"}, 400, "endpoint_not_allowed"),
        ({"identifier": NO_NETCDF, "submit": True}, 404, "no_netcdf"),
        ({"identifier": NOT_HYSPEX, "submit": True}, 400, "not_hyspex"),
        ({"identifier": child, "variants": ["ir"]}, 422, None),
        ({"identifier": child, "variants": []}, 422, None),
        ({"identifier": "a,b"}, 400, "invalid_identifier"),
    ]
    for body, status, code in cases:
        answer = post(client, admin_headers, "hyspex-csw", status, **body)
        assert "error" in answer or "detail" in answer, answer
        if code:
            assert answer["code"] == code, (body, answer)
    assert post(client, None, "hyspex-csw", 401, identifier=child)["code"] == "unauthorized"
    assert post(client, admin_headers, "hyspex-csw-parent", 404, identifier="no-such-campaign")["code"] == \
        "record_not_found"
    assert post(client, admin_headers, "jobs/hyspex-parent", 404, identifier="no-such-campaign")["code"] == \
        "record_not_found"
    assert post(client, admin_headers, "jobs/hyspex-parent", 400, identifier=HYSPEX_PARENT,
                endpoint="http://127.0.0.1:9/csw")["code"] == "endpoint_not_allowed"
    assert client.get("/datasets/hyspex-missing-variants", headers=None).status_code == 401
    assert registered(client, admin_headers) == []
    assert client.get("/datasets/jobs", headers=admin_headers).json()["total"] == 0


def test_parent_route_queues_every_child(client, hyspex_settings, admin_headers, hyspex_files):
    """The synchronous route on the first 6 children (the parent job below runs all 25, every page)."""
    hyspex_settings.max_active_tasks_per_user = 100
    answer = post(client, admin_headers, "hyspex-csw-parent", identifier=HYSPEX_PARENT, limit=6)
    assert answer["total"] == 6 and answer["queued"] == 6 and answer["skipped"] == 0
    assert ([child["identifier"] for child in answer["children"]]
            == sorted(c.identifier for c in hyspex_files.children)[:6])
    assert all(child["status"] == "queued" and child["job_id"] for child in answer["children"])
    children = wait_for_children(client, admin_headers, 6)
    assert len(children) == 6 and {item["state"] for item in children} == {"Succeeded"}, \
        [(item["state"], item.get("error")) for item in children]
    assert len(registered(client, admin_headers)) == 2 * 6
    again = post(client, admin_headers, "hyspex-csw-parent", identifier=HYSPEX_PARENT, limit=5)
    assert again["total"] == 5 and again["queued"] == 0
    assert {child["status"] for child in again["children"]} == {"already_registered"}


def test_parent_job_fans_out_child_flow_runs(client, hyspex_settings, admin_headers, hyspex_files, prefect_api_url):
    started = post(client, admin_headers, "jobs/hyspex-parent", 202, identifier=HYSPEX_PARENT)
    parent = wait_for_state(client, started["status_url"], admin_headers, DONE, timeout=240)
    assert parent["state"] == "Succeeded", parent
    assert parent["progress"]["percent"] == 100
    result = parent["result"]
    assert result["total"] == CHILDREN and result["counts"] == {"Succeeded": CHILDREN}, result["counts"]

    runs = prefect_call("POST", f"{prefect_api_url}/flow_runs/filter", json={
        "flow_runs": {"parent_flow_run_id": {"any_": [parent["flow_run_id"]]}}, "limit": 100}).json()
    assert len(runs) == CHILDREN and {run["state_type"] for run in runs} == {"COMPLETED"}
    assert {run["id"] for run in runs} == {child["flow_run_id"] for child in result["children"]}
    children = jobs(client, admin_headers, "nc-to-geotiff")
    assert children["total"] == CHILDREN and {item["state"] for item in children["items"]} == {"Succeeded"}
    assert all(item["parameters"]["parent_task_id"] == parent["job_id"] for item in children["items"])

    datasets = registered(client, admin_headers)
    assert len(datasets) == 2 * CHILDREN
    check_pixels(hyspex_settings, client, admin_headers, hyspex_files, datasets[:4])
    assert client.get("/datasets/hyspex-missing-variants", headers=admin_headers).json()["total"] == 0
    victim = next(item for item in datasets if item["metadata"]["variant"] == "z")
    assert client.delete(f"/datasets/{victim['dataset_id']}", headers=admin_headers).status_code == 204
    missing = client.get("/datasets/hyspex-missing-variants", headers=admin_headers).json()
    assert missing["total"] == 1 and missing["items"][0]["identifier"] == victim["source_identifier"]
    assert missing["items"][0]["missing"] == ["z"] and list(missing["items"][0]["registered"]) == ["rgb"]


def test_cancelling_the_parent_cancels_unfinished_children(client, hyspex_settings, admin_headers):
    started = post(client, admin_headers, "jobs/hyspex-parent", 202, identifier=HYSPEX_PARENT, concurrency=1)
    deadline = time.monotonic() + 60
    while not (children := jobs(client, admin_headers, "nc-to-geotiff")["items"]):
        assert time.monotonic() < deadline, "no child job started"
        time.sleep(0.2)
    cancel = client.delete(started["status_url"], headers=admin_headers)
    assert cancel.status_code == 200 and cancel.json()["cancel_requested"], cancel.text
    parent = wait_for_state(client, started["status_url"], admin_headers, DONE, timeout=60)
    assert parent["state"] == "Cancelled", parent
    active_at_cancel = {item["job_id"] for item in children if item["state"] in ACTIVE}
    deadline = time.monotonic() + 60
    while True:
        children = jobs(client, admin_headers, "nc-to-geotiff")["items"]
        if all(item["state"] in DONE for item in children):
            break
        assert time.monotonic() < deadline, [item["state"] for item in children]
        time.sleep(0.5)
    assert 1 <= len(children) < CHILDREN, "no more children are started once the parent is cancelled"
    assert all(item["state"] == "Cancelled" for item in children if item["job_id"] in active_at_cancel), children
    time.sleep(3)
    assert len(jobs(client, admin_headers, "nc-to-geotiff")["items"]) == len(children)
