"""Point-cloud gridding as a ``point-cloud-grid`` job through the worker (``/datasets/jobs/from-point-cloud-config``
and its alias): the result is the registration, identical jobs are deduplicated, bad configs fail before queuing or
as a Failed job that registered nothing."""

from __future__ import annotations

import numpy as np
import rasterio

from tests.flows.conftest import wait_for_state
from tests.helpers import assert_error
from tests.pointclouds import BOUNDS, CRS, expected, make_points, write_las

DONE = {"Succeeded", "Failed", "Cancelled"}


def test_point_cloud_job(client, admin_headers, settings, tmp_path, make_user):
    mount = tmp_path / "mount"
    points = make_points(1500)
    write_las(mount / "cloud.laz", *points)
    settings.mount_roots = [mount]
    config = {"source": "cloud.laz", "crs": CRS, "resolution": 1, "output_type": "idw", "power": 2}

    accepted = client.post("/datasets/jobs/from-point-cloud-config", json=config, headers=admin_headers)
    assert accepted.status_code == 202, accepted.text
    job = accepted.json()
    assert job["tool_id"] == "point-cloud-grid" and job["status_url"] == f"/datasets/jobs/{job['job_id']}"
    again = client.post("/datasets/jobs/from-nc-config", json=config, headers=admin_headers)  # alias, same job
    assert again.status_code == 200 and again.json()["job_id"] == job["job_id"]

    state = wait_for_state(client, job["status_url"], admin_headers, DONE)
    assert state["state"] == "Succeeded", (state["error"], state)
    result = state["result"]
    assert result["created"] is True and result["points"] == points[0].size and result["output_type"] == "idw"
    record = client.get(f"/datasets/{result['dataset_id']}").json()
    assert record["source"] == "pointcloud" and (record["width"], record["height"]) == (20, 10)
    stored = next((settings.storage_dir / "default" / "registry").rglob("*.tif"))
    with rasterio.open(stored) as src:
        assert src.crs.to_epsg() == 25833 and src.nodata == -9999
        np.testing.assert_allclose(src.read(1), expected(*points, bounds=BOUNDS, resolution=1.0, output_type="idw",
                                                         power=2).astype(np.float32), rtol=1e-6)

    # checked before queuing: no job
    assert_error(client.post("/datasets/jobs/from-point-cloud-config", json={**config, "source": "/etc/passwd"},
                             headers=admin_headers), 403, "outside_mount_roots")
    assert_error(client.post("/datasets/jobs/from-point-cloud-config", json={**config, "crs": "nope"},
                             headers=admin_headers), 400, "invalid_crs")
    assert_error(client.post("/datasets/jobs/from-point-cloud-config", json={**config, "resolution": 0},
                             headers=admin_headers), 422)
    assert_error(client.post("/datasets/jobs/from-point-cloud-config", json=config), 401)
    assert_error(client.post("/datasets/jobs/from-point-cloud-config", json=config, headers=make_user("pat")), 404)

    # found while gridding: a Failed job, nothing registered
    failed = client.post("/datasets/jobs/from-point-cloud-config", json={**config, "bounds": [0, 0, 10, 10]},
                         headers=admin_headers)
    assert failed.status_code == 202, failed.text
    state = wait_for_state(client, failed.json()["status_url"], admin_headers, DONE)
    assert state["state"] == "Failed" and "no point" in state["error"]
    assert client.get("/datasets", headers=admin_headers).json()["total"] == 1
