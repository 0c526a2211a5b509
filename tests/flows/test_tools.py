"""The shipped tools through the worker: archive-extract (with hostile archives), raster-export, rescan-index."""

from __future__ import annotations

import io
import stat
import zipfile

import pytest
import rasterio

from tests.flows.conftest import wait_for_state
from tests.helpers import assert_error, upload_object
from tests.rasters import write_geotiff

DS = "/orgs/admin/ds/d"
TASKS = f"{DS}/tasks"
DONE = {"Succeeded", "Failed", "Cancelled"}


def put(client, headers, path, content):
    """Store ``content`` at ``path`` of ``admin/d``; it must be stored (201)."""
    response = upload_object(client, headers, path, content)
    assert response.status_code == 201, response.text


def run(client, headers, tool_id, parameters=None, path=None):
    response = client.post(TASKS, json={"toolId": tool_id, "path": path, "parameters": parameters or {},
                                        "force": True}, headers=headers)
    assert response.status_code == 202, response.text
    return wait_for_state(client, f"{TASKS}/{response.json()['taskId']}", headers, DONE)


def zip_bytes(members: dict[str, bytes], *, symlink: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def listing(client, headers):
    return sorted(e["path"] for e in client.post(f"{DS}/search", json={"query": "*"}, headers=headers).json())


def test_archive_extract_registers_every_file(client, ds, settings):
    put(client, ds, "in/pack.zip", zip_bytes({"x/1.txt": b"one", "x/y/2.txt": b"two", "3.txt": b"three"}))
    done = run(client, ds, "archive-extract", path="in/pack.zip")
    assert done["state"] == "Succeeded", done
    assert sorted(done["result"]["extracted"]) == ["in/pack/3.txt", "in/pack/x/1.txt", "in/pack/x/y/2.txt"]
    info = client.get(f"{DS}/obj", params={"path": "in/pack/x/y/2.txt"}, headers=ds).json()
    assert info["size"] == 3 and info["hash"]
    again = run(client, ds, "archive-extract", path="in/pack.zip")
    assert again["state"] == "Failed" and "already exist" in again["error"]
    over = run(client, ds, "archive-extract", {"overwrite": True, "destination": "elsewhere"}, path="in/pack.zip")
    assert over["state"] == "Succeeded" and over["result"]["destination"] == "elsewhere"


@pytest.mark.parametrize(
    ("members", "symlink", "message"),
    [
        ({"../../escape.txt": b"evil"}, None, "unsafe archive member"),
        ({"/abs/escape.txt": b"evil"}, None, "unsafe archive member"),
        ({"ok.txt": b"fine"}, "link", "symbolic link"),
        ({"bomb.bin": b"\0" * (20 * 1024 * 1024)}, None, "zip bomb"),
    ],
    ids=["zip-slip", "absolute", "symlink", "bomb"],
)
def test_hostile_archives_fail_cleanly(client, ds, settings, members, symlink, message):
    put(client, ds, "evil.zip", zip_bytes(members, symlink=symlink))
    before = listing(client, ds)
    done = run(client, ds, "archive-extract", path="evil.zip")
    assert done["state"] == "Failed" and message in done["error"], done
    assert listing(client, ds) == before
    assert not (settings.storage_dir.parent / "escape.txt").exists()
    assert not any(settings.storage_dir.rglob("escape.txt"))
    assert [p for p in settings.tmp_dir.iterdir() if p.name.startswith(".georeg-tmp-")] == []


def test_too_many_members_and_not_a_zip(client, ds, settings):
    settings.archive_max_files = 3
    put(client, ds, "many.zip", zip_bytes({f"f{i}.txt": b"x" for i in range(4)}))
    done = run(client, ds, "archive-extract", path="many.zip")
    assert done["state"] == "Failed" and "limit of 3" in done["error"]
    put(client, ds, "fake.zip", b"not a zip at all")
    broken = run(client, ds, "archive-extract", path="fake.zip")
    assert broken["state"] == "Failed" and "not a valid zip" in broken["error"]
    assert listing(client, ds) == ["fake.zip", "many.zip"]


def test_raster_export_as_reprojected_cog(client, ds, tmp_path):
    tif = write_geotiff(tmp_path / "utm.tif", width=256, height=256, crs="EPSG:32633", origin=(500000, 7000000),
                        pixel=10, dtype="uint8", tiled=True)
    put(client, ds, "utm.tif", tif.read_bytes())
    done = run(client, ds, "raster-export", {"epsg": 3857}, path="utm.tif")
    assert done["state"] == "Succeeded", done
    assert done["result"]["crs"] == "EPSG:3857"
    target = tmp_path / "out.tif"
    target.write_bytes(client.get(done["artifact"]["resultUrl"], headers=ds).content)
    with rasterio.open(target) as cog:
        assert cog.crs.to_epsg() == 3857 and cog.driver == "GTiff"
        assert cog.profile.get("tiled")
    gcps = write_geotiff(tmp_path / "gcps.tif", width=100, height=80, crs="EPSG:32633", origin=(500000, 7000000),
                         pixel=10, dtype="uint8", gcp_crs="EPSG:4326")
    put(client, ds, "gcps.tif", gcps.read_bytes())
    warped = run(client, ds, "raster-export", {"epsg": 32633}, path="gcps.tif")
    assert warped["state"] == "Succeeded", warped
    assert warped["result"]["bounds"] == pytest.approx([500000, 6999200, 501000, 7000000], abs=15)
    not_raster = run(client, ds, "raster-export", path="utm.tif", parameters={"epsg": 999999})
    assert not_raster["state"] == "Failed" and "EPSG" in not_raster["error"]
    put(client, ds, "notes.txt", b"hello")
    assert run(client, ds, "raster-export", path="notes.txt")["state"] == "Failed"


def test_rescan_index_reports_changed_and_missing(client, ds, settings):
    put(client, ds, "keep.txt", b"same")
    put(client, ds, "edit.txt", b"before")
    put(client, ds, "gone.txt", b"bye")
    root = settings.storage_dir / "admin" / "d"
    (root / "edit.txt").write_bytes(b"after, longer")
    (root / "gone.txt").unlink()
    done = run(client, ds, "rescan-index")
    assert done["state"] == "Succeeded", done
    assert done["result"] == {"scanned": 3, "changed": ["edit.txt"], "missing": ["gone.txt"], "unreadable": []}
    assert client.get(f"{DS}/obj", params={"path": "edit.txt"}, headers=ds).json()["size"] == 13


def test_tool_permissions(client, ds, make_user):
    reader = make_user("xena")
    client.put("/users/xena/orgs", json=[{"slug": "admin", "permission": "read"}], headers=ds)
    response = client.post(TASKS, json={"toolId": "rescan-index", "parameters": {}}, headers=reader)
    assert_error(response, 403)
    assert client.get(f"{TASKS}/tools", headers=reader).status_code == 200
