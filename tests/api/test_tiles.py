"""On-demand tiles, the MapCache disk layout and the mapcache.xml export."""

from __future__ import annotations

import io

import morecantile
import numpy as np
from lxml import etree
from PIL import Image
from rio_tiler.io import Reader

from georeg.core.rasters.thumbnails import ThumbnailCache
from georeg.core.rasters.tiles import tile_path
from tests.helpers import assert_error
from tests.rasters import write_geotiff


def test_tile_matches_rio_tiler_and_is_cached(client, admin_headers, tmp_path, settings):
    path = write_geotiff(tmp_path / "rgb.tif", count=3, dtype="uint8", nodata=None, width=512, height=512,
                         origin=(10, 61), pixel=0.002)
    with open(path, "rb") as handle:
        dataset_id = client.post("/datasets", files={"file": ("rgb.tif", handle)},
                                 headers=admin_headers).json()["dataset_id"]
    tile = morecantile.tms.get("WebMercatorQuad").tile(10.5, 60.5, 9)
    url = f"/datasets/{dataset_id}/tiles/{tile.z}/{tile.x}/{tile.y}.png"
    first = client.get(url)
    assert first.status_code == 200 and first.headers["x-tile-cache"] == "miss"
    assert client.get(url).headers["x-tile-cache"] == "hit"
    ours = np.asarray(Image.open(io.BytesIO(first.content)))
    with Reader(str(path)) as src:
        truth = src.tile(tile.x, tile.y, tile.z, tilesize=256, indexes=(1, 2, 3))
    assert ours.shape == (256, 256, 4)
    assert np.array_equal(ours[..., :3].transpose(2, 0, 1), truth.data)
    cached = tile_path(settings.cache_dir, dataset_id, tile.z, tile.x, tile.y)
    assert cached.is_file()
    assert cached.relative_to(settings.cache_dir).parts[:4] == ("tiles", dataset_id, "GoogleMapsCompatible", "09")
    config = etree.fromstring(client.get(f"/datasets/{dataset_id}/mapcache.xml").content)
    assert config.findtext("tileset/grid") == "GoogleMapsCompatible"
    assert config.find("cache").get("layout") == "default"
    assert config.findtext("cache/base") == str(settings.cache_dir / "tiles")


def test_tile_errors(client, admin_headers, tmp_path):
    path = write_geotiff(tmp_path / "a.tif")
    with open(path, "rb") as handle:
        dataset_id = client.post("/datasets", files={"file": ("a.tif", handle)},
                                 headers=admin_headers).json()["dataset_id"]
    assert_error(client.get(f"/datasets/{dataset_id}/tiles/3/0/0.png"), 404, "tile_outside_bounds")
    assert_error(client.get(f"/datasets/{dataset_id}/tiles/3/8/0.png"), 400, "invalid_tile")
    assert_error(client.get(f"/datasets/{dataset_id}/tiles/30/0/0.png"), 422, "validation_error")
    assert_error(client.get(f"/datasets/{dataset_id}/tiles/1/-1/0.png"), 422, "validation_error")
    assert_error(client.get(f"/datasets/{dataset_id}/tiles/a/b/c.png"), 422)
    assert_error(client.get("/datasets/nope/tiles/0/0/0.png"), 404, "dataset_not_found")
    assert_error(client.post(f"/datasets/{dataset_id}/seed-mapcache", json={"min_zoom": 0, "max_zoom": 2}), 401)
    assert_error(client.post(f"/datasets/{dataset_id}/seed-mapcache", json={"max_zoom": 99},
                             headers=admin_headers), 422)


def test_cut_short_cache_entries_are_drawn_again(client, admin_headers, tmp_path, settings):
    path = write_geotiff(tmp_path / "a.tif", width=256, height=256, pixel=0.002)
    with open(path, "rb") as handle:
        dataset_id = client.post("/datasets", files={"file": ("a.tif", handle)},
                                 headers=admin_headers).json()["dataset_id"]
    tile = morecantile.tms.get("WebMercatorQuad").tile(10.2, 60.8, 9)
    url = f"/datasets/{dataset_id}/tiles/{tile.z}/{tile.x}/{tile.y}.png"
    whole = client.get(url).content
    cached = tile_path(settings.cache_dir, dataset_id, tile.z, tile.x, tile.y)
    for damaged in (b"", whole[: len(whole) // 2]):
        cached.write_bytes(damaged)
        again = client.get(url)
        assert again.headers["x-tile-cache"] == "miss" and again.content == whole and cached.read_bytes() == whole
    record = client.get(f"/datasets/{dataset_id}").json()
    thumbnail = client.get(f"/datasets/{dataset_id}/thumbnail.png", params={"size": 64}).content
    disk_only = ThumbnailCache(settings.cache_dir, tmp_dir=settings.tmp_dir, memory_items=0)
    assert disk_only.get(record["sha256"], 64, path) == (thumbnail, "disk")
    disk_only.path(record["sha256"], 64).write_bytes(thumbnail[:-5])
    assert disk_only.get(record["sha256"], 64, path) == (thumbnail, "rendered")
    assert disk_only.get(record["sha256"], 64, path) == (thumbnail, "disk")
    assert not list(settings.tmp_dir.iterdir())
