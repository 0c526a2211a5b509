"""Registry maintenance jobs through the worker: rehash, prune-missing, resync, many thumbnails."""

from __future__ import annotations

import io
import zipfile

from tests.flows.conftest import wait_for_state
from tests.helpers import assert_error
from tests.rasters import write_geotiff

DONE = {"Succeeded", "Failed", "Cancelled"}


def job(client, headers, route, body=None):
    response = client.post(route, json=body, headers=headers)
    assert response.status_code == 202, response.text
    assert response.json()["status_url"] == f"/datasets/jobs/{response.json()['job_id']}"
    url = response.json()["status_url"]
    deadline_state = wait_for_state(client, url, headers, DONE)
    assert deadline_state["state"] == "Succeeded", (deadline_state["error"], deadline_state)
    return deadline_state["result"]


def test_maintenance_jobs(client, admin_headers, settings, tmp_path, make_user):
    mount = tmp_path / "mount"
    settings.mount_roots = [mount]
    first = write_geotiff(mount / "a.tif")
    second = write_geotiff(mount / "sub" / "b.tif", origin=(11, 62))
    registered = client.post("/datasets/from-string", json={"path": str(first)}, headers=admin_headers).json()

    resynced = job(client, admin_headers, "/datasets/resync", {"refresh_csw": False})
    assert resynced["scanned"] == 2 and len(resynced["added"]) == 1 and resynced["failed"] == []
    assert client.get("/datasets", headers=admin_headers).json()["total"] == 2

    write_geotiff(first, width=70)
    rehashed = job(client, admin_headers, "/datasets/rehash")
    assert rehashed["changed"] == [registered["dataset_id"]] and rehashed["missing"] == []

    second.unlink()
    dry = job(client, admin_headers, "/datasets/prune-missing", {"dry_run": True})
    assert dry["removed"] == 0 and len(dry["missing"]) == 1
    assert client.get("/datasets", headers=admin_headers).json()["total"] == 2
    pruned = job(client, admin_headers, "/datasets/prune-missing", {"dry_run": False})
    assert pruned["removed"] == 1
    assert client.get("/datasets", headers=admin_headers).json()["total"] == 1

    ids = [registered["dataset_id"]] * 21
    thumbs = job(client, admin_headers, "/thumbnails/generate", {"dataset_ids": ids, "size": 32})
    assert len(thumbs["generated"]) == 21

    jobs = client.get("/datasets/jobs", params={"limit": 100}, headers=admin_headers).json()
    assert {"rehash", "resync", "prune-missing", "generate-thumbnails"} <= {j["tool_id"] for j in jobs["items"]}
    user = make_user("yuri")
    assert_error(client.post("/datasets/rehash", headers=user), 404)
    assert_error(client.post("/datasets/rehash"), 401)
    assert_error(client.post("/datasets/prune-missing", json={"dry_run": "maybe"}, headers=admin_headers), 422)


def test_seed_mapcache_job(client, admin_headers, settings, tmp_path):
    path = write_geotiff(tmp_path / "seed.tif", count=3, dtype="uint8", nodata=None, width=256, height=256,
                         origin=(10, 61), pixel=0.004)
    with open(path, "rb") as handle:
        dataset_id = client.post("/datasets", files={"file": ("seed.tif", handle)},
                                 headers=admin_headers).json()["dataset_id"]
    result = job(client, admin_headers, f"/datasets/{dataset_id}/seed-mapcache", {"min_zoom": 3, "max_zoom": 7})
    assert set(result["per_zoom"]) == {"3", "4", "5", "6", "7"} and result["outside"] == 0
    assert result["rendered"] + result["outside"] == result["tiles"]
    cached = list((settings.cache_dir / "tiles" / dataset_id / "GoogleMapsCompatible").rglob("*.png"))
    assert len(cached) == result["rendered"]
    again = job(client, admin_headers, f"/datasets/{dataset_id}/seed-mapcache", {"min_zoom": 4, "max_zoom": 7})
    assert again["rendered"] == 0 and again["already_cached"] == result["rendered"] - result["per_zoom"]["3"]
    too_many = client.post(f"/datasets/{dataset_id}/seed-mapcache", json={"min_zoom": 0, "max_zoom": 22,
                                                                          "bbox": [-180, -85, 180, 85]},
                           headers=admin_headers).json()
    failed = wait_for_state(client, too_many["status_url"], admin_headers, DONE)
    assert failed["state"] == "Failed" and "tiles requested" in failed["error"]


def test_scheduled_maintenance_flow_records_a_job(client, admin_headers, settings, monkeypatch, tmp_path):
    from georeg.flows.maintenance import registry_maintenance

    path = write_geotiff(tmp_path / "m.tif")
    with open(path, "rb") as handle:
        client.post("/datasets", files={"file": ("m.tif", handle)}, headers=admin_headers)
    monkeypatch.setenv("GEOREG_DATA_DIR", str(settings.resolved_data_dir))
    monkeypatch.setenv("GEOREG_DATABASE_URL", settings.effective_database_url)
    outcome = registry_maintenance("rehash")
    assert outcome["result"]["checked"] == 1 and outcome["result"]["changed"] == []
    jobs = client.get("/datasets/jobs", headers=admin_headers).json()
    assert [j["tool_id"] for j in jobs["items"]] == ["rehash"] and jobs["items"][0]["status"] == "Succeeded"


def test_bulk_download_and_rescan_read_mounted_rasters(client, admin_headers, settings, tmp_path):
    mount = tmp_path / "mount"
    settings.mount_roots = [mount]
    source = write_geotiff(mount / "scene.tif")
    assert client.post("/datasets/from-string", json={"path": str(source)}, headers=admin_headers).status_code == 201
    tasks = "/orgs/default/ds/registry/tasks"
    results = {}
    for tool_id in ("bulk-download", "rescan-index"):
        response = client.post(tasks, json={"toolId": tool_id, "parameters": {}, "force": True}, headers=admin_headers)
        assert response.status_code == 202, response.text
        results[tool_id] = wait_for_state(client, f"{tasks}/{response.json()['taskId']}", admin_headers, DONE)
        assert results[tool_id]["state"] == "Succeeded", results[tool_id]
    assert results["rescan-index"]["result"]["missing"] == [] and results["rescan-index"]["result"]["changed"] == []
    archive = client.get(results["bulk-download"]["artifact"]["resultUrl"], headers=admin_headers)
    with zipfile.ZipFile(io.BytesIO(archive.content)) as members:
        assert [members.read(name) for name in members.namelist()] == [source.read_bytes()]
