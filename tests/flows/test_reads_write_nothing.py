"""GET routes write nothing: every GET operation of the OpenAPI document, called with values that exist (a dataset
with a file, a raster, a finished task), leaves every table of the registry exactly as it was."""

from __future__ import annotations

import re
import time

from sqlalchemy import inspect, text

from georeg.core.db import make_engine
from tests.flows.conftest import wait_for_state
from tests.rasters import write_geotiff

PLACEHOLDER = re.compile(r"\{(\w+)\}")
QUERIES = {"/datasets/{dataset_id}/sample": {"lon": 10.1, "lat": 60.9}, "/wms": {"SERVICE": "WMS",
           "REQUEST": "GetCapabilities"}, "/wfs": {"SERVICE": "WFS", "REQUEST": "GetCapabilities"}}


def snapshot(url: str) -> dict[str, list[tuple]]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return {table: sorted(map(tuple, connection.execute(text(f'SELECT * FROM "{table}"')).all()), key=repr)
                    for table in inspect(connection).get_table_names()}
    finally:
        engine.dispose()


def test_every_get_route_leaves_the_database_unchanged(client, admin_headers, settings, tmp_path):
    assert client.post("/orgs/admin/ds", json={"slug": "d"}, headers=admin_headers).status_code == 201
    client.post("/orgs/admin/ds/d/obj", files={"file": ("x", b"hello")}, data={"path": "a.txt"}, headers=admin_headers)
    with open(write_geotiff(tmp_path / "seed.tif"), "rb") as handle:
        raster = client.post("/datasets", files={"file": ("seed.tif", handle, "image/tiff")}, headers=admin_headers)
    task = client.post("/orgs/admin/ds/d/tasks", json={"toolId": "bulk-download", "parameters": {"paths": ["a.txt"]}},
                       headers=admin_headers)
    assert raster.status_code == 201 and task.status_code == 202, (raster.text, task.text)
    task_url = f"/orgs/admin/ds/d/tasks/{task.json()['taskId']}"
    wait_for_state(client, task_url, admin_headers, {"Succeeded"})
    deadline = time.monotonic() + 30  # the synchroniser stores the final state (reads would only show it)
    stored = {"state": "Succeeded"}
    while client.get("/orgs/admin/ds/d/tasks", params=stored, headers=admin_headers).json()["total"] < 1:
        assert time.monotonic() < deadline, "the task's final state was never stored"
        time.sleep(0.2)
    values = {"orgSlug": "admin", "dsSlug": "d", "userName": "admin", "dataset_id": raster.json()["dataset_id"],
              "taskId": task.json()["taskId"], "job_id": task.json()["taskId"], "z": "5", "x": "16", "y": "9",
              "name": "default", "roleName": "admin"}
    before = snapshot(settings.effective_database_url)
    called = []
    for path, operations in client.app.openapi()["paths"].items():
        if "get" not in operations:
            continue
        url = PLACEHOLDER.sub(lambda match: values.get(match.group(1), "unknown"), path)
        response = client.get(url, params=QUERIES.get(path, {}), headers=admin_headers)
        assert response.status_code < 500, (url, response.text)
        called.append((url, response.status_code))
    assert len(called) > 30
    assert snapshot(settings.effective_database_url) == before, called
