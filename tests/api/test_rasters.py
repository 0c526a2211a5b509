"""The Datasets API raster registry: registration, duplicates, search, sample, extent, delete."""

from __future__ import annotations

import io
import zipfile

import morecantile
import numpy as np
import pytest
import rasterio
from rasterio.warp import transform

from georeg.core.rasters.service import terrain_assets_dir
from georeg.core.rasters.tiles import tileset_dir
from tests.helpers import assert_error, upload_raster
from tests.rasters import write_geotiff


@pytest.fixture
def rasters_dir(tmp_path):
    folder = tmp_path / "rasters"
    return {
        "wgs84": write_geotiff(folder / "S2A_MSIL2A_20260111_T33WXR.tif", crs="EPSG:4326", origin=(10, 61), pixel=0.01,
                               dtype="float32", nodata=-9999),
        "polar": write_geotiff(folder / "polar.tif", crs="EPSG:3413", origin=(-200000, -1000000), pixel=1000),
        "utm_rgb": write_geotiff(folder / "utm_rgb.tif", count=3, dtype="uint8", crs="EPSG:32633",
                                 origin=(500000, 7000000), pixel=10, nodata=None),
        "antimeridian": write_geotiff(folder / "dateline.tif", crs="EPSG:4326", origin=(179.5, -16), pixel=0.02,
                                      width=50, height=20),
        "no_crs": write_geotiff(folder / "plain.tif", crs=None),
    }


def test_upload_registers_and_detects_duplicates(client, admin_headers, rasters_dir, settings):
    first = upload_raster(client, admin_headers, rasters_dir["wgs84"], title="Scene",
                          metadata='{"acquired_at": "2026-01-11T10:54:01Z"}')
    assert first.status_code == 201, first.text
    record = first.json()
    assert record["duplicate_of"] is None and record["platform"] == "S2A" and record["source"] == "upload"
    assert record["crs"]["epsg"] == 4326 and record["bands"] == 1 and record["nodata"] == -9999
    assert record["bounds"]["wgs84"] == pytest.approx([10, 60.52, 10.64, 61])
    assert record["statistics"][0]["min"] >= 1 and record["acquired_at"].startswith("2026-01-11T10:54:01")
    again = upload_raster(client, admin_headers, rasters_dir["wgs84"])
    assert again.status_code == 200 and again.json()["duplicate_of"] == record["dataset_id"]
    groups = client.get("/datasets/duplicates", params={"by": "hash"}, headers=admin_headers).json()
    assert groups["total"] == 0
    assert client.get(f"/datasets/{record['dataset_id']}").json()["title"] == "Scene"
    stored = list((settings.storage_dir / "default" / "registry").rglob("*.tif"))
    assert len(stored) == 1


@pytest.mark.parametrize(("name", "content", "code"), [
    ("junk.tif", b"definitely not a tiff" * 20, "invalid_raster"),
    ("empty.tif", b"", "invalid_raster"),
])
def test_hostile_uploads_leave_nothing(client, admin_headers, settings, tmp_path, name, content, code):
    path = tmp_path / name
    path.write_bytes(content)
    assert_error(upload_raster(client, admin_headers, path), 400, code)
    assert client.get("/datasets", headers=admin_headers).json()["total"] == 0
    assert [p for p in settings.tmp_dir.iterdir()] == []


def test_truncated_and_crs_less_uploads_are_400(client, admin_headers, rasters_dir, tmp_path, settings):
    truncated = tmp_path / "cut.tif"
    data = write_geotiff(tmp_path / "big.tif", width=512, height=512, tiled=True).read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    assert_error(upload_raster(client, admin_headers, truncated), 400, "invalid_raster")
    body = assert_error(upload_raster(client, admin_headers, rasters_dir["no_crs"]), 400, "invalid_raster")
    assert "CRS" in body["error"]
    assert client.get("/datasets", headers=admin_headers).json()["total"] == 0
    assert not any((settings.storage_dir / "default" / "registry").rglob("*.tif"))
    assert_error(client.post("/datasets", data={"title": "x"}, files={"other": (None, "1")}, headers=admin_headers),
                 400, "file_required")
    assert_error(upload_raster(client, {}, rasters_dir["wgs84"]), 401)


def test_search_filters_and_pagination(client, admin_headers, rasters_dir):
    ids = {}
    for key in ("wgs84", "polar", "utm_rgb", "antimeridian"):
        response = upload_raster(client, admin_headers, rasters_dir[key], title=key)
        assert response.status_code == 201, response.text
        ids[key] = response.json()["dataset_id"]
    listing = client.get("/datasets", params={"limit": 2}, headers=admin_headers).json()
    assert listing["total"] == 4 and listing["returned"] == 2 and listing["next_offset"] == 2
    assert listing["prev_offset"] is None
    second = client.get("/datasets", params={"limit": 2, "offset": 2}, headers=admin_headers).json()
    assert second["next_offset"] is None and second["prev_offset"] == 0
    assert {i["dataset_id"] for i in listing["items"] + second["items"]} == set(ids.values())

    def found(**params):
        return {i["title"] for i in client.get("/datasets", params=params, headers=admin_headers).json()["items"]}

    assert found(q="polar") == {"polar"}
    assert found(platform="S2") == {"wgs84"}
    assert found(bbox="9,60,11,62") == {"wgs84"}
    assert found(bbox="-179.9,-17,-179,-15") == {"antimeridian"}
    assert found(bbox="179.6,-17,179.9,-15") == {"antimeridian"}
    assert found(bbox="170,-20,-170,-10") == {"antimeridian"}
    assert found(source="upload", sort="title") == {"antimeridian", "polar", "utm_rgb", "wgs84"}
    titles = [i["title"] for i in client.get("/datasets", params={"sort": "title"},
                                             headers=admin_headers).json()["items"]]
    assert titles == sorted(titles)
    for bad in ({"bbox": "1,2,3"}, {"bbox": "0,95,1,96"}, {"bbox": "a,b,c,d"}):
        assert_error(client.get("/datasets", params=bad, headers=admin_headers), 400, "invalid_bbox")
    for bad in ({"sort": "nope"}, {"limit": 101}, {"offset": 1146809878264205934592}, {"q": "x" * 257}):
        assert_error(client.get("/datasets", params=bad, headers=admin_headers), 422, "validation_error")
    assert_error(client.get("/datasets"), 401)


def test_sample_matches_rasterio(client, admin_headers, rasters_dir):
    record = upload_raster(client, admin_headers, rasters_dir["polar"]).json()
    lon, lat = -45.2, 80.9
    with rasterio.open(rasters_dir["polar"]) as src:
        xs, ys = transform("EPSG:4326", src.crs, [lon], [lat])
        row, col = src.index(xs[0], ys[0])
        inside = 0 <= row < src.height and 0 <= col < src.width
        if inside:
            truth = src.read(1)[row, col]
    response = client.get(f"/datasets/{record['dataset_id']}/sample", params={"lon": lon, "lat": lat})
    if inside:
        assert response.json()["values"][0]["value"] == truth
    else:
        assert_error(response, 404, "point_outside")
    with rasterio.open(rasters_dir["polar"]) as src:
        cx, cy = src.xy(10, 20)
        lons, lats = transform(src.crs, "EPSG:4326", [cx], [cy])
        expected = src.read(1)[10, 20]
    hit = client.get(f"/datasets/{record['dataset_id']}/sample", params={"lon": lons[0], "lat": lats[0]}).json()
    assert hit["row"] == 10 and hit["col"] == 20 and hit["values"][0]["value"] == expected
    assert_error(client.get(f"/datasets/{record['dataset_id']}/sample", params={"lon": 0, "lat": -60}), 404,
                 "point_outside")
    assert_error(client.get(f"/datasets/{record['dataset_id']}/sample", params={"lon": 200, "lat": 0}), 422)
    assert_error(client.get("/datasets/nope/sample", params={"lon": 0, "lat": 0}), 404, "dataset_not_found")


def test_sample_nodata_is_null(client, admin_headers, tmp_path):
    path = write_geotiff(tmp_path / "holes.tif", dtype="float32", nodata=-9999)
    with rasterio.open(path, "r+") as dst:
        data = dst.read(1)
        data[0, 0] = -9999
        dst.write(data, 1)
    record = upload_raster(client, admin_headers, path).json()
    hit = client.get(f"/datasets/{record['dataset_id']}/sample", params={"lon": 10.005, "lat": 60.995}).json()
    assert hit["values"][0]["value"] is None


def test_sample_past_180_degrees_east(client, admin_headers, tmp_path):
    """A geographic grid running from 179.5 to 180.78 east: a point at -179.86 is the same place as 180.14."""
    path = write_geotiff(tmp_path / "dateline.tif", crs="EPSG:4326", origin=(179.5, 61.0), pixel=0.02)
    record = upload_raster(client, admin_headers, path).json()
    url = f"/datasets/{record['dataset_id']}/sample"
    across = client.get(url, params={"lon": -179.86, "lat": 60.9})
    assert across.status_code == 200, across.text
    with rasterio.open(path) as src:
        row, col = src.index(180.14, 60.9)
        assert across.json()["values"][0]["value"] == src.read(1)[row, col]
    assert_error(client.get(url, params={"lon": 0.0, "lat": 60.9}), 404, "point_outside")


def test_extent_is_rfc7946_and_split_at_antimeridian(client, admin_headers, rasters_dir):
    normal = upload_raster(client, admin_headers, rasters_dir["utm_rgb"]).json()
    feature = client.get(f"/datasets/{normal['dataset_id']}/extent.geojson")
    assert feature.headers["content-type"] == "application/geo+json"
    assert feature.json()["type"] == "Feature" and feature.json()["geometry"]["type"] == "Polygon"
    crossing = upload_raster(client, admin_headers, rasters_dir["antimeridian"]).json()
    geometry = client.get(f"/datasets/{crossing['dataset_id']}/extent.geojson").json()["geometry"]
    assert geometry["type"] == "MultiPolygon"
    east, west = geometry["coordinates"]
    assert max(p[0] for p in east[0]) == 180 and min(p[0] for p in west[0]) == -180
    assert np.isclose(min(p[0] for p in east[0]), 179.5) and np.isclose(max(p[0] for p in west[0]), -179.5)


def test_register_from_mounted_path(client, admin_headers, rasters_dir, settings, tmp_path):
    mount = tmp_path / "mount"
    mount.mkdir()
    target = mount / "scene.tif"
    target.write_bytes(rasters_dir["utm_rgb"].read_bytes())
    (mount / "escape").symlink_to(rasters_dir["wgs84"].parent)
    settings.mount_roots = [mount]
    created = client.post("/datasets/from-string", json={"path": str(target), "title": "Mounted"},
                          headers=admin_headers)
    assert created.status_code == 201, created.text
    assert created.json()["source"] == "path" and created.json()["source_path"] == str(target.resolve())
    relative = client.post("/datasets/from-string", json={"path": "scene.tif"}, headers=admin_headers)
    assert relative.status_code == 200 and relative.json()["duplicate_of"] == created.json()["dataset_id"]
    for path, status in ((str(rasters_dir["wgs84"]), 403), (str(mount / ".." / "rasters" / "polar.tif"), 403),
                         (str(mount / "escape" / "polar.tif"), 403), (str(mount / "missing.tif"), 404),
                         ("/etc/passwd", 403), ("0" * 3000, 400), (str(mount / ("x" * 300)), 400)):
        assert_error(client.post("/datasets/from-string", json={"path": path}, headers=admin_headers), status)
    assert client.delete(f"/datasets/{created.json()['dataset_id']}", headers=admin_headers).status_code == 204
    assert target.exists()
    assert_error(client.get(f"/datasets/{created.json()['dataset_id']}"), 404)


def test_delete_removes_owned_file(client, admin_headers, rasters_dir, settings):
    record = upload_raster(client, admin_headers, rasters_dir["polar"]).json()
    assert any((settings.storage_dir / "default" / "registry").rglob("*.tif"))
    assert_error(client.delete(f"/datasets/{record['dataset_id']}"), 401)
    assert client.delete(f"/datasets/{record['dataset_id']}", headers=admin_headers).status_code == 204
    assert not any((settings.storage_dir / "default" / "registry").rglob("*.tif"))
    assert client.get("/datasets", headers=admin_headers).json()["total"] == 0
    assert_error(client.delete(f"/datasets/{record['dataset_id']}", headers=admin_headers), 404)


def test_delete_removes_caches_and_optionally_terrain_assets(client, admin_headers, rasters_dir, settings, tmp_path):
    mount = tmp_path / "mount"
    mounted_file = write_geotiff(mount / "mounted.tif", origin=(10, 61), pixel=0.01, nodata=None)
    settings.mount_roots = [mount]
    owned = upload_raster(client, admin_headers, rasters_dir["wgs84"]).json()
    mounted = client.post("/datasets/from-string", json={"path": str(mounted_file)}, headers=admin_headers).json()
    tile = morecantile.tms.get("WebMercatorQuad").tile(10.3, 60.8, 8)
    for record in (owned, mounted):
        dataset_id = record["dataset_id"]
        assert client.get(f"/datasets/{dataset_id}/thumbnail.png").status_code == 200
        assert client.get(f"/datasets/{dataset_id}/tiles/{tile.z}/{tile.x}/{tile.y}.png").status_code == 200
        asset = terrain_assets_dir(settings, dataset_id) / "terrain" / "0" / "0" / "0.png"
        asset.parent.mkdir(parents=True)
        asset.write_bytes(b"terrain tile")
        assert tileset_dir(settings.cache_dir, dataset_id).is_dir()
    thumbnails = settings.cache_dir / "thumbnails"
    registry = "/orgs/default/ds/registry/list"
    folder = f"uploads/{owned['sha256'][:12]}"
    assert [e["path"] for e in client.get(registry, params={"path": folder}, headers=admin_headers).json()]

    assert_error(client.delete(f"/datasets/{owned['dataset_id']}", params={"delete_terrain_assets": "maybe"},
                               headers=admin_headers), 422)
    assert client.delete(f"/datasets/{owned['dataset_id']}", headers=admin_headers).status_code == 204
    assert not any((settings.storage_dir / "default" / "registry").rglob("*.tif"))
    assert not list(thumbnails.rglob(f"{owned['sha256']}/*.png")) and list(thumbnails.rglob("*.png"))
    assert not tileset_dir(settings.cache_dir, owned["dataset_id"]).exists()
    assert terrain_assets_dir(settings, owned["dataset_id"]).is_dir()
    assert_error(client.get(registry, params={"path": folder}, headers=admin_headers), 404)
    again = upload_raster(client, admin_headers, rasters_dir["wgs84"]).json()
    assert client.get(f"/datasets/{again['dataset_id']}/thumbnail.png").headers["x-thumbnail-cache"] == "rendered"

    assert client.delete(f"/datasets/{mounted['dataset_id']}", params={"delete_terrain_assets": "true"},
                         headers=admin_headers).status_code == 204
    assert mounted_file.is_file()
    assert not terrain_assets_dir(settings, mounted["dataset_id"]).exists()
    assert not tileset_dir(settings.cache_dir, mounted["dataset_id"]).exists()
    assert not list(thumbnails.rglob(f"{mounted['sha256']}/*.png"))
    assert_error(client.get(f"/datasets/{mounted['dataset_id']}"), 404)
    assert [r["dataset_id"] for r in client.get("/datasets", headers=admin_headers).json()["items"]] == \
        [again["dataset_id"]]


def test_mounted_raster_downloads_through_objects_api(client, admin_headers, rasters_dir, settings, tmp_path):
    mount = tmp_path / "mount"
    mounted_file = write_geotiff(mount / "scenes" / "mounted.tif", width=300, height=200)
    settings.mount_roots = [mount]
    mounted = client.post("/datasets/from-string", json={"path": str(mounted_file)}, headers=admin_headers).json()
    upload_raster(client, admin_headers, rasters_dir["polar"]).json()
    base = "/orgs/default/ds/registry"
    entries = {e["path"] for e in client.post(f"{base}/search", json={"query": "*.tif"}, headers=admin_headers).json()}
    mounted_path = next(p for p in entries if p.startswith("mounted/"))
    owned_path = next(p for p in entries if p.startswith("uploads/"))
    for path, source in ((mounted_path, mounted_file), (owned_path, rasters_dir["polar"])):
        whole = client.get(f"{base}/download", params={"path": path}, headers=admin_headers)
        assert whole.status_code == 200 and whole.content == source.read_bytes()
        assert source.name in whole.headers["content-disposition"]
        part = client.get(f"{base}/download", params={"path": path}, headers={**admin_headers, "Range": "bytes=10-99"})
        assert part.status_code == 206 and part.content == source.read_bytes()[10:100]
    archive = client.get(f"{base}/download", headers=admin_headers)
    assert archive.status_code == 200
    with zipfile.ZipFile(io.BytesIO(archive.content)) as members:
        assert members.read(mounted_path) == mounted_file.read_bytes()
        assert members.read(owned_path) == rasters_dir["polar"].read_bytes()
    assert mounted_file.is_file() and mounted["source_path"] == str(mounted_file.resolve())

    settings.mount_roots = [tmp_path / "elsewhere"]
    assert_error(client.get(f"{base}/download", params={"path": mounted_path}, headers=admin_headers), 403,
                 "outside_mount_roots")
    settings.mount_roots = [mount]
    moved = tmp_path / "outside.tif"
    mounted_file.rename(moved)
    mounted_file.symlink_to(moved)
    assert_error(client.get(f"{base}/download", params={"path": mounted_path}, headers=admin_headers), 403,
                 "outside_mount_roots")
    mounted_file.unlink()
    assert_error(client.get(f"{base}/download", params={"path": mounted_path}, headers=admin_headers), 404,
                 "file_missing")
    assert_error(client.get(f"{base}/download", headers=admin_headers), 404, "file_missing")
    assert_error(client.get(f"{base}/download", params={"path": mounted_path}), 401)


def test_search_text_escaping_and_paging_edges(client, admin_headers, tmp_path, settings):
    mount = tmp_path / "mount"
    settings.mount_roots = [mount]
    ids = {}
    for index, (name, title, metadata) in enumerate((
        ("a.tif", "Ærø 50% cover", None),
        ("b.tif", "plain_one", '{"identifier": "S1A_IW_GRDH_1SDV_X", "platform": "s1a"}'),
        ("c.tif", "fifty 50 percent", None),
    )):
        path = write_geotiff(tmp_path / name, origin=(10 + index, 61))
        ids[name] = upload_raster(client, admin_headers, path, title=title, metadata=metadata).json()["dataset_id"]
    mounted = write_geotiff(mount / "archive2024" / "scene.tif", origin=(20, 61))
    ids["mounted"] = client.post("/datasets/from-string", json={"path": str(mounted), "title": "m"},
                                 headers=admin_headers).json()["dataset_id"]

    def found(**params):
        body = client.get("/datasets", params=params, headers=admin_headers).json()
        return {item["dataset_id"] for item in body["items"]}, body["total"]

    assert found(q="ærø") == found(q="ÆRØ") == ({ids["a.tif"]}, 1)
    assert found(q="50%") == ({ids["a.tif"]}, 1)
    assert found(q="%") == ({ids["a.tif"]}, 1)
    assert found(q="n_o") == ({ids["b.tif"]}, 1)
    assert found(q="grdh_1sdv") == ({ids["b.tif"]}, 1)
    assert found(q="ARCHIVE2024") == ({ids["mounted"]}, 1)
    assert found(q=ids["c.tif"].upper()) == ({ids["c.tif"]}, 1)
    assert found(q=" 50") == ({ids["a.tif"], ids["c.tif"]}, 2)
    assert found(q=" 50", offset=5) == (set(), 2)
    assert found(q="nothing-like-this") == (set(), 0)
    for hostile in ('"', 'a"b', "50*", "NEAR(a b)", "ærø OR plain", "(", "rasters_search", "'; --"):
        assert found(q=hostile) == (set(), 0), hostile  # search text, never query syntax
    assert found(q="ø 5") == ({ids["a.tif"]}, 1)
    assert client.delete(f"/datasets/{ids['a.tif']}", headers=admin_headers).status_code == 204
    assert found(q="ærø") == (set(), 0) and found(q=" 50") == ({ids["c.tif"]}, 1), "a deleted raster is not found"
    assert found(platform="s1") == found(platform="S1A") == ({ids["b.tif"]}, 1)
    assert client.get(f"/datasets/{ids['b.tif']}").json()["platform"] == "S1A"
    newest_first = [i["dataset_id"] for i in client.get("/datasets", headers=admin_headers).json()["items"]]
    assert newest_first == [ids["mounted"], ids["c.tif"], ids["b.tif"]]
    pages = [client.get("/datasets", params={"limit": 1, "offset": n, "sort": "-title"}, headers=admin_headers).json()
             for n in range(3)]
    whole = client.get("/datasets", params={"sort": "-title"}, headers=admin_headers).json()["items"]
    titles = [p["items"][0]["title"] for p in pages]
    assert titles == [i["title"] for i in whole]
    assert titles == ["plain_one", "m", "fifty 50 percent"]
    assert [p["next_offset"] for p in pages] == [1, 2, None]
