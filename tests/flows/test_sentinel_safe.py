"""The ``sentinel-safe`` tool through the worker: a SAFE under the archive roots processed into COGs and
registered with source ``csw``; a failing run registers nothing; bad parameters are refused at submit.
(Every other case runs in-process in tests/core/test_sentinel_tool.py: each worker run costs a flow process.)"""

from __future__ import annotations

import time

import pytest
import rasterio
from sqlmodel import Session

from georeg.core.db import make_engine
from georeg.core.rasters.service import get_raster, raster_file, registry_location
from tests.flows.conftest import wait_for_state
from tests.sentinel_fixtures import S1_PRODUCT, sentinel_archive  # noqa: F401

TASKS = "/orgs/default/ds/registry/tasks"
DONE = {"Succeeded", "Failed", "Cancelled"}
IDENTIFIER = "no.met.nbs:7d0f3c1e-0000-5000-8000-000000000001"


@pytest.fixture
def nbs(client, admin_headers, settings, sentinel_archive):  # noqa: F811
    """Admin headers, with the archive root configured and the registry dataset present."""
    settings.safe_roots = [sentinel_archive.root]
    engine = make_engine(settings.effective_database_url)
    with Session(engine) as session:
        registry_location(session)
        session.commit()
    engine.dispose()
    return admin_headers


def submit(client, headers, parameters: dict, expect: str) -> dict:
    response = client.post(TASKS, json={"toolId": "sentinel-safe", "parameters": parameters, "force": True},
                           headers=headers)
    assert response.status_code == 202, response.text
    task = wait_for_state(client, f"{TASKS}/{response.json()['taskId']}", headers, DONE, timeout=180)
    assert task["state"] == expect, task
    return task


def registered_file(settings, dataset_id: str):
    engine = make_engine(settings.effective_database_url)
    with Session(engine) as session:
        path = raster_file(session, settings, get_raster(session, public_id=dataset_id))
    engine.dispose()
    return path


def full_log(client, headers, task_id: str, timeout: float = 60) -> list[str]:
    """Follow the task's log cursor until the log is complete (lines reach Prefect asynchronously)."""
    lines, cursor, deadline = [], None, time.monotonic() + timeout
    while time.monotonic() < deadline:
        params = {"since": cursor} if cursor else {}
        page = client.get(f"{TASKS}/{task_id}/log", params=params, headers=headers).json()
        lines += page["lines"]
        cursor = page["cursor"]
        if page["complete"]:
            break
        time.sleep(0.5)
    return lines


def csw_datasets(client, headers) -> list[dict]:
    return client.get("/datasets", params={"source": "csw", "limit": 100}, headers=headers).json()["items"]


def test_sentinel_safe_through_the_worker(client, nbs, settings, sentinel_archive):  # noqa: F811
    task = submit(client, nbs, {"identifier": IDENTIFIER, "product": S1_PRODUCT, "title": S1_PRODUCT}, "Succeeded")
    result = task["result"]
    assert result["product_type"] == "S1_GRD" and result["parameters"]["target_crs"] == "EPSG:32661"
    assert [d["product"] for d in result["datasets"]] == ["amplitude_vv", "amplitude_vh"]
    assert task["progress"]["percent"] == 100
    assert any(S1_PRODUCT in line for line in full_log(client, nbs, task["taskId"]))
    items = {d["dataset_id"]: d for d in csw_datasets(client, nbs)}
    assert set(items) == {d["dataset_id"] for d in result["datasets"]}
    for made in result["datasets"]:
        record = items[made["dataset_id"]]
        assert record["source_identifier"] == IDENTIFIER and record["platform"] == "S1A"
        assert record["profile"] == "sentinel-1" and record["crs"]["epsg"] == 32661
        with rasterio.open(registered_file(settings, made["dataset_id"])) as cog:
            assert cog.count == 2 and cog.res == (40.0, 40.0)
    jobs = client.get("/datasets/jobs", params={"limit": 100}, headers=nbs).json()
    assert [j["tool_id"] for j in jobs["items"]] == ["sentinel-safe"]

    failed = submit(client, nbs, {"identifier": "bad", "product": sentinel_archive.products["missing_band"]}, "Failed")
    assert "needs B12" in failed["error"]
    assert len(csw_datasets(client, nbs)) == 2

    for bad in ({"identifier": "x"}, {"identifier": "x", "product": S1_PRODUCT, "safe_path": "a.zip"},
                {"identifier": "x", "product": S1_PRODUCT, "processing": {"target_crs": "EPSG:4326"}},
                {"identifier": "x", "product": S1_PRODUCT, "surprise": 1}):
        response = client.post(TASKS, json={"toolId": "sentinel-safe", "parameters": bad}, headers=nbs)
        assert response.status_code == 422, response.text
