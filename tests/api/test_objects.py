"""Objects: upload, list, info, move, delete, download (Range, zip) and hostile input."""

from __future__ import annotations

import io
import zipfile

import pytest
import rasterio

from tests.helpers import assert_error, upload_object
from tests.rasters import write_geotiff

BASE = "/orgs/admin/ds/d"


def storage_files(settings):
    return sorted(str(p.relative_to(settings.storage_dir)) for p in settings.storage_dir.rglob("*") if p.is_file())


def leftovers(settings):
    return list(settings.tmp_dir.iterdir())


def test_upload_geotiff_records_raster_metadata(client, ds, tmp_path):
    tif = write_geotiff(tmp_path / "polar.tif", crs="EPSG:3413", origin=(-200000, -1000000), pixel=1000,
                        dtype="float32", nodata=-9999)
    response = upload_object(client, ds, "scenes/polar.tif", tif.read_bytes(), name="polar.tif",
                             content_type="image/tiff")
    assert response.status_code == 201, response.text
    entry = response.json()
    assert entry["type"] == "raster" and entry["crs"] == "EPSG:3413"
    assert entry["bounds"] == pytest.approx([-200000, -1048000, -136000, -1000000])
    with rasterio.open(tif) as src:
        from rasterio.warp import transform_bounds

        truth = transform_bounds(src.crs, "EPSG:4326", *src.bounds, densify_pts=21)
    assert entry["properties"]["wgs84_bounds"] == pytest.approx(list(truth))
    assert entry["footprint"]["type"] == "Polygon"
    assert entry["properties"]["nodata"] == -9999 and entry["properties"]["dtype"] == "float32"
    listing = client.get(f"{BASE}/list", params={"path": "scenes"}, headers=ds).json()
    assert [e["path"] for e in listing] == ["scenes/polar.tif"]
    assert [e["type"] for e in client.get(f"{BASE}/list", headers=ds).json()] == ["directory"]


def test_download_is_byte_identical_with_range(client, ds, tmp_path):
    content = bytes(range(256)) * 100
    upload_object(client, ds, "a/blob.bin", content, name="blob.bin")
    full = client.get(f"{BASE}/download", params={"path": "a/blob.bin"}, headers=ds)
    assert full.status_code == 200 and full.content == content
    assert "attachment" in full.headers["content-disposition"]
    part = client.get(f"{BASE}/download", params={"path": "a/blob.bin"}, headers={**ds, "Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == content[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(content)}"
    bad = client.get(f"{BASE}/download", params={"path": "a/blob.bin"}, headers={**ds, "Range": "bytes=999999-"})
    assert bad.status_code == 416


def test_download_several_paths_as_zip(client, ds):
    upload_object(client, ds, "f/one.txt", b"one")
    upload_object(client, ds, "f/sub/two.txt", b"two")
    upload_object(client, ds, "three.txt", b"three")
    for params in ({"path": ["f", "three.txt"]}, {"path": "f,three.txt"}):
        response = client.get(f"{BASE}/download", params=params, headers=ds)
        assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
        archive = zipfile.ZipFile(io.BytesIO(response.content))
        assert {n: archive.read(n) for n in archive.namelist()} == {
            "f/one.txt": b"one", "f/sub/two.txt": b"two", "three.txt": b"three"
        }
    whole = zipfile.ZipFile(io.BytesIO(client.get(f"{BASE}/download", headers=ds).content))
    assert sorted(whole.namelist()) == ["f/one.txt", "f/sub/two.txt", "three.txt"]
    posted = client.post(f"{BASE}/download", json={"paths": ["f/sub"]}, headers=ds)
    assert zipfile.ZipFile(io.BytesIO(posted.content)).namelist() == ["f/sub/two.txt"]
    assert_error(client.get(f"{BASE}/download", params={"path": ["f", "nope"]}, headers=ds), 404)


def test_move_and_delete(client, ds, settings):
    upload_object(client, ds, "a/one.txt", b"1")
    upload_object(client, ds, "a/b/two.txt", b"2")
    moved = client.put(f"{BASE}/obj", json={"source": "a", "dest": "z/a2"}, headers=ds)
    assert moved.status_code == 200, moved.text
    assert storage_files(settings) == ["admin/d/z/a2/b/two.txt", "admin/d/z/a2/one.txt"]
    assert client.get(f"{BASE}/obj", params={"path": "z/a2/b/two.txt"}, headers=ds).json()["size"] == 1
    assert_error(client.put(f"{BASE}/obj", json={"source": "z", "dest": "z/inner"}, headers=ds), 400)
    assert_error(client.put(f"{BASE}/obj", json={"source": "nope", "dest": "x"}, headers=ds), 404)
    upload_object(client, ds, "other.txt", b"3")
    assert_error(client.put(f"{BASE}/obj", json={"source": "other.txt", "dest": "z"}, headers=ds), 409)
    assert client.delete(f"{BASE}/obj", params={"path": "z/a2/one.txt"}, headers=ds).json() == {"removed": 1}
    assert client.request("DELETE", f"{BASE}/obj/batch", json={"paths": ["z", "other.txt"]}, headers=ds).json() == {
        "removed": 5}
    assert storage_files(settings) == []
    assert client.get(f"{BASE}/list", headers=ds).json() == []
    assert_error(client.request("DELETE", f"{BASE}/obj/batch", json={"paths": ["ghost"]}, headers=ds), 404)


def test_folder_creation_and_search(client, ds):
    response = client.post(f"{BASE}/obj", data={"path": "empty/dir"}, files={"dummy": (None, "")}, headers=ds)
    assert response.status_code == 201 and response.json()["type"] == "directory"
    upload_object(client, ds, "empty/dir/scene.tif.aux.xml", b"1")
    upload_object(client, ds, "notes.txt", b"1")
    found = client.post(f"{BASE}/search", json={"query": "*.xml"}, headers=ds).json()
    assert [e["path"] for e in found] == ["empty/dir/scene.tif.aux.xml"]


def test_replacing_a_file_updates_hash(client, ds):
    first = upload_object(client, ds, "f.txt", b"old").json()
    second = upload_object(client, ds, "f.txt", b"new!").json()
    assert first["id"] == second["id"] and first["hash"] != second["hash"] and second["size"] == 4
    stamp = client.get("/orgs/admin/ds/d/stamp", headers=ds).json()
    assert stamp["entries"] == [{"f.txt": second["hash"]}]


TRAVERSAL = ["../escape.txt", "a/../../escape.txt", "/etc/passwd", "..\\escape.txt", "a\x00b.txt", "C:/x.txt", "..",
             "a/./../../x"]


@pytest.mark.parametrize("path", TRAVERSAL, ids=lambda p: repr(p))
def test_path_traversal_is_rejected_and_nothing_written(client, ds, settings, path):
    response = upload_object(client, ds, path, b"evil", name="x.txt")
    assert_error(response, 400)
    assert storage_files(settings) == [] and leftovers(settings) == []
    assert not (settings.storage_dir.parent / "escape.txt").exists()
    for route, params in (("obj", {"path": path}), ("download", {"path": path}), ("list", {"path": path})):
        assert_error(client.get(f"{BASE}/{route}", params=params, headers=ds), 400)


def test_filename_traversal_is_rejected(client, ds, settings):
    assert_error(upload_object(client, ds, "sub/", b"evil", name="../../escape.txt"), 400)
    assert storage_files(settings) == [] and leftovers(settings) == []


def test_oversize_upload_is_413_and_nothing_kept(client, ds, settings):
    response = upload_object(client, ds, "big.bin", b"x" * (settings.max_upload_bytes + 1), name="big.bin")
    assert_error(response, 413, "payload_too_large")
    assert storage_files(settings) == [] and leftovers(settings) == []
    assert client.get(f"{BASE}/list", headers=ds).json() == []


def test_declared_oversize_is_refused_before_reading(client, ds, settings):
    response = client.post(f"{BASE}/obj", content=b"--b--\r\n", headers={
        **ds, "content-type": "multipart/form-data; boundary=b",
        "content-length": str(settings.max_upload_bytes * 2)})
    assert_error(response, 413)


@pytest.mark.parametrize(
    ("name", "content"),
    [("garbage.tif", b"this is not a tiff at all" * 10), ("empty.tif", b"")],
)
def test_garbage_tiff_is_400_and_nothing_kept(client, ds, settings, name, content):
    assert_error(upload_object(client, ds, name, content, name=name), 400, "invalid_raster")
    assert storage_files(settings) == [] and leftovers(settings) == []
    assert client.get(f"{BASE}/list", headers=ds).json() == []


def test_truncated_tiff_is_400_and_nothing_kept(client, ds, settings, tmp_path):
    tif = write_geotiff(tmp_path / "t.tif", width=256, height=256, tiled=True)
    data = tif.read_bytes()
    assert_error(upload_object(client, ds, "t.tif", data[: len(data) // 2], name="t.tif"), 400, "invalid_raster")
    assert storage_files(settings) == [] and leftovers(settings) == []


def test_tiff_without_crs_is_kept_as_ungeoreferenced_raster(client, ds, tmp_path):
    tif = write_geotiff(tmp_path / "plain.tif", crs=None)
    entry = upload_object(client, ds, "plain.tif", tif.read_bytes(), name="plain.tif").json()
    assert entry["type"] == "raster" and entry["crs"] is None and entry["footprint"] is None


def test_wrong_content_type_and_bad_multipart(client, ds, settings):
    assert_error(client.post(f"{BASE}/obj", json={"path": "x"}, headers=ds), 400, "unsupported_media_type")
    broken = client.post(f"{BASE}/obj", content=b"--b\r\nContent-Disposition: form-data; name=\"file\"; "
                         b"filename=\"a\"\r\n\r\npartial",
                         headers={**ds, "content-type": "multipart/form-data; boundary=b"})
    assert_error(broken, 400, "bad_multipart")
    assert client.get(f"{BASE}/list", headers=ds).json() == []
    two_files = client.post(f"{BASE}/obj", files=[("file", ("a", b"1")), ("file", ("b", b"2"))], headers=ds)
    assert_error(two_files, 400, "bad_multipart")
    assert leftovers(settings) == []


def test_missing_objects_are_404(client, ds):
    assert_error(client.get(f"{BASE}/obj", params={"path": "nope"}, headers=ds), 404, "entry_not_found")
    assert_error(client.get(f"{BASE}/download", params={"path": "nope"}, headers=ds), 404)
    assert_error(client.delete(f"{BASE}/obj", params={"path": "nope"}, headers=ds), 404)
    assert_error(client.get("/orgs/admin/ds/nope/list", headers=ds), 404, "dataset_not_found")
    assert_error(client.get("/orgs/nope/ds/d/list", headers=ds), 404, "org_not_found")
