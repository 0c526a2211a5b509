"""Builds through the worker: a raster entry's COG (validated by rio-cogeo), a LAZ point cloud's COPC (read back
with laspy), the builds list, artifacts with Range, 409 for an active build of the same content, clearing records,
point files that are not LAS/LAZ, and hostile requests."""

from __future__ import annotations

import laspy
import numpy as np
import rasterio
from rio_cogeo.cogeo import cog_validate

from tests.flows.conftest import wait_for_state
from tests.helpers import assert_error, upload_object
from tests.pointclouds import make_points, write_las, write_xyz
from tests.rasters import write_geotiff

DS = "/orgs/admin/ds/d"
DONE = {"Succeeded", "Failed", "Cancelled"}


def test_build_writes_a_valid_cog_served_with_range(client, ds, tmp_path):
    source = write_geotiff(tmp_path / "scene.tif", width=600, height=400, count=3, dtype="uint8")
    entry = upload_object(client, ds, "dir/scene.tif", source.read_bytes()).json()
    started = client.post(f"{DS}/build", data={"path": "dir/scene.tif"}, headers=ds)
    assert started.status_code == 202, started.text
    build = started.json()
    assert build["hash"] == entry["hash"] and build["path"] == "dir/scene.tif"
    busy = client.post(f"{DS}/build", data={"path": "dir/scene.tif"}, headers=ds)
    if busy.status_code == 409:  # the first one may already have finished on a fast worker
        assert busy.json()["code"] == "build_running"
    done = wait_for_state(client, f"{DS}/tasks/{build['jobId']}", ds, DONE)
    assert done["state"] == "Succeeded", done
    assert done["result"]["artifacts"] == ["cog/cog.tif"] and done["result"]["valid"] is True

    url = f"{DS}/build/{entry['hash']}/cog/cog.tif"
    whole = client.get(url, headers=ds)
    assert whole.status_code == 200 and whole.headers["content-type"].startswith("image/tiff; application=geotiff")
    (tmp_path / "cog.tif").write_bytes(whole.content)
    assert cog_validate(str(tmp_path / "cog.tif"))[0]
    with rasterio.open(tmp_path / "cog.tif") as cog, rasterio.open(source) as original:
        assert (cog.read() == original.read()).all() and cog.crs == original.crs
    part = client.get(url, headers={**ds, "Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == whole.content[:100]
    assert client.head(url, headers=ds).status_code == 200

    builds = client.get(f"{DS}/builds", headers=ds).json()
    assert builds["total"] >= 1 and builds["items"][0]["jobId"] in {build["jobId"], busy.json().get("jobId")}
    assert set(builds["items"][0]) >= {"jobId", "hash", "path", "state", "createdAt", "startedAt", "finishedAt",
                                       "error"}
    forced = client.post(f"{DS}/build", data={"path": "dir/scene.tif", "force": "true"}, headers=ds)
    assert forced.status_code == 202
    wait_for_state(client, f"{DS}/tasks/{forced.json()['jobId']}", ds, DONE)
    cleared = client.post(f"{DS}/builds/clear", headers=ds).json()
    assert cleared["deletedCount"] >= 2 and client.get(f"{DS}/builds", headers=ds).json()["total"] == 0
    assert client.get(url, headers=ds).status_code == 200, "artifacts belong to the content, not the record"


def test_hostile_build_requests(client, ds, tmp_path, make_user):
    upload_object(client, ds, "notes.txt", b"text")
    assert_error(client.post(f"{DS}/build", data={"path": "notes.txt"}, headers=ds), 422, "not_buildable")
    assert_error(client.post(f"{DS}/build", data={"path": "missing.tif"}, headers=ds), 404)
    assert_error(client.post(f"{DS}/build", data={"path": "../../etc/passwd"}, headers=ds), 400)
    assert_error(client.post(f"{DS}/build", data={}, headers=ds), 422)
    zero = "0" * 64
    assert_error(client.get(f"{DS}/build/{zero}/cog/cog.tif", headers=ds), 404, "build_not_found")
    entry = upload_object(client, ds, "a.tif", write_geotiff(tmp_path / "a.tif").read_bytes()).json()
    assert_error(client.get(f"{DS}/build/{entry['hash']}/cog/cog.tif", headers=ds), 404, "artifact_not_found")
    assert_error(client.get(f"{DS}/build/{entry['hash']}/../../secret_key", headers=ds), 404)
    assert_error(client.get(f"{DS}/build/{entry['hash']}/..%2F..%2Fsecret_key", headers=ds), 400)
    assert_error(client.get(f"{DS}/build/nothex/cog/cog.tif", headers=ds), 422)
    outsider = make_user("outsider")
    assert_error(client.post(f"{DS}/build", data={"path": "a.tif"}, headers=outsider), 404)
    assert_error(client.get(f"{DS}/builds", headers=outsider), 404)
    assert_error(client.post(f"{DS}/builds/clear"), 401)


def test_uploading_a_buildable_file_starts_its_build(client, ds, tmp_path, settings):
    settings.build_on_upload = True  # the app reads the settings object the fixture built it with
    upload_object(client, ds, "readme.txt", b"not buildable")
    entry = upload_object(client, ds, "auto.tif", write_geotiff(tmp_path / "auto.tif").read_bytes()).json()
    builds = client.get(f"{DS}/builds", headers=ds).json()
    assert [(b["path"], b["hash"]) for b in builds["items"]] == [("auto.tif", entry["hash"])]
    done = wait_for_state(client, f"{DS}/tasks/{builds['items'][0]['jobId']}", ds, DONE)
    assert done["state"] == "Succeeded", done
    assert client.get(f"{DS}/build/{entry['hash']}/cog/cog.tif", headers=ds).status_code == 200


def test_artifact_completeness_scan_queues_missing_builds_once(client, ds, tmp_path, make_user):
    assert client.get("/sys/build-pending-status", headers=ds).json()["figures"] is None
    first = upload_object(client, ds, "one.tif", write_geotiff(tmp_path / "one.tif").read_bytes()).json()
    upload_object(client, ds, "copy.tif", (tmp_path / "one.tif").read_bytes())  # same content: one build
    upload_object(client, ds, "two.tif", write_geotiff(tmp_path / "two.tif", origin=(5.0, 60.0)).read_bytes())
    upload_object(client, ds, "flat.tif", write_geotiff(tmp_path / "flat.tif", crs=None).read_bytes())
    upload_object(client, ds, "notes.txt", b"text")
    cloud = upload_object(client, ds, "cloud.las", write_las(tmp_path / "c.las", *make_points(300)).read_bytes()).json()
    upload_object(client, ds, "mesh.ply", b"ply\nformat ascii 1.0\nelement vertex 0\nend_header\n")  # not LAS/LAZ
    started = client.post("/sys/check-artifact-completeness", headers=ds)
    assert started.status_code == 202, started.text
    scan = wait_for_state(client, f"/datasets/jobs/{started.json()['job_id']}", ds, DONE)
    assert scan["state"] == "Succeeded", scan
    status = client.get("/sys/build-pending-status", headers=ds).json()
    assert status["jobId"] == started.json()["job_id"]
    assert {k: status["figures"][k] for k in ("buildable", "built", "missing", "queued")} == \
        {"buildable": 3, "built": 0, "missing": 3, "queued": 3}
    builds = client.get(f"{DS}/builds", headers=ds).json()["items"]
    assert sorted(b["path"] for b in builds) in (["cloud.las", "one.tif", "two.tif"],
                                                 ["cloud.las", "copy.tif", "two.tif"])
    for build in builds:
        assert wait_for_state(client, f"{DS}/tasks/{build['jobId']}", ds, DONE)["state"] == "Succeeded"
    assert client.get(f"{DS}/build/{first['hash']}/cog/cog.tif", headers=ds).status_code == 200
    assert client.get(f"{DS}/build/{cloud['hash']}/copc/cloud.copc.laz", headers=ds).status_code == 200
    rescan = client.post("/sys/check-artifact-completeness", headers=ds).json()["job_id"]
    again = wait_for_state(client, f"/datasets/jobs/{rescan}", ds, DONE)
    assert again["state"] == "Succeeded"
    latest = client.get("/sys/build-pending-status", headers=ds).json()
    assert latest["jobId"] == rescan, (latest, again)
    figures = latest["figures"]
    assert (figures["built"], figures["missing"], figures["queued"]) == (3, 0, 0)
    user = make_user("someone")
    assert_error(client.post("/sys/check-artifact-completeness", headers=user), 403)
    assert_error(client.get("/sys/build-pending-status", headers=user), 403)


def test_build_of_a_laz_point_cloud_writes_copc(client, ds, tmp_path):
    x, y, z = make_points(20_000)
    source = write_las(tmp_path / "cloud.laz", x, y, z)
    entry = upload_object(client, ds, "scans/cloud.laz", source.read_bytes()).json()
    assert entry["type"] == "pointcloud"
    started = client.post(f"{DS}/build", data={"path": "scans/cloud.laz"}, headers=ds)
    assert started.status_code == 202, started.text
    done = wait_for_state(client, f"{DS}/tasks/{started.json()['jobId']}", ds, DONE)
    assert done["state"] == "Succeeded", done
    result = done["result"]
    assert result["artifacts"] == ["copc/cloud.copc.laz"] and result["valid"] is True
    assert result["points"] == x.size and result["hash"] == entry["hash"] and result["nodes"] >= 1

    url = f"{DS}/build/{entry['hash']}/copc/cloud.copc.laz"
    whole = client.get(url, headers=ds)
    assert whole.status_code == 200 and whole.headers["content-type"] == "application/vnd.laszip+copc", whole.text
    part = client.get(url, headers={**ds, "Range": "bytes=0-374"})  # the LAS header, as a COPC reader asks first
    assert part.status_code == 206 and part.content == whole.content[:375] and part.content[:4] == b"LASF"
    (tmp_path / "cloud.copc.laz").write_bytes(whole.content)
    with laspy.CopcReader.open(str(tmp_path / "cloud.copc.laz")) as copc, laspy.open(str(source)) as original:
        points, src = copc.query(), original.read().points
        assert len(points) == x.size
        ours = np.sort(np.asarray(points.X, dtype=np.int64) * 2**40 + np.asarray(points.Y) * 2**20 + points.Z)
        theirs = np.sort(np.asarray(src.X, dtype=np.int64) * 2**40 + np.asarray(src.Y) * 2**20 + src.Z)
        assert np.array_equal(ours, theirs)


def test_point_files_other_than_las_are_not_buildable(client, ds, tmp_path):
    x, y, z = make_points(50)
    upload_object(client, ds, "points.xyz", write_xyz(tmp_path / "points.xyz", x, y, z).read_bytes())
    assert_error(client.post(f"{DS}/build", data={"path": "points.xyz"}, headers=ds), 422, "not_buildable")
    ply = upload_object(client, ds, "mesh.ply", b"ply\nformat ascii 1.0\nelement vertex 0\nend_header\n").json()
    assert ply["type"] == "pointcloud"
    assert_error(client.post(f"{DS}/build", data={"path": "mesh.ply"}, headers=ds), 422, "not_buildable")
