"""Registry ``thumb`` and ``tiles`` of files in a dataset: compared with an independent rio-tiler rendering, caching,
WebP, the dataset thumbnail, and hostile input (not previewable, traversal, huge sizes, tiles outside)."""

from __future__ import annotations

import io

import morecantile
import numpy as np
import pytest
from PIL import Image
from rio_tiler.io import Reader

from tests.helpers import assert_error, upload_object
from tests.rasters import write_geotiff

BASE = "/orgs/admin/ds/d"


@pytest.fixture
def backend() -> str:
    """Rendering does not depend on the registry database: these run on SQLite only."""
    return "sqlite"
TMS = morecantile.tms.get("WebMercatorQuad")


def _rgba(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


def _upload(client, headers, tmp_path, path: str, **options) -> tuple[dict, object]:
    source = write_geotiff(tmp_path / path.replace("/", "_"), **options)
    response = upload_object(client, headers, path, source.read_bytes())
    assert response.status_code == 201, response.text
    return response.json(), source


def test_tiles_match_rio_tiler_and_2x_is_512(client, ds, tmp_path):
    _, source = _upload(client, ds, tmp_path, "rgb.tif", count=3, dtype="uint8", width=256, height=256,
                        origin=(10.0, 61.0), pixel=0.001)
    tile = TMS.tile(10.1, 60.9, 12)
    url = f"{BASE}/tiles/{tile.z}/{tile.x}/{tile.y}.png"
    first = client.get(url, params={"path": "rgb.tif"}, headers=ds)
    assert first.status_code == 200 and first.headers["content-type"] == "image/png", first.text
    assert first.headers["x-tile-cache"] == "miss"
    assert client.get(url, params={"path": "rgb.tif"}, headers=ds).headers["x-tile-cache"] == "hit"
    with Reader(str(source), tms=TMS) as reader:
        expected = reader.tile(tile.x, tile.y, tile.z, tilesize=256, indexes=(1, 2, 3))
    got = _rgba(first.content)
    assert got.shape == (256, 256, 4)
    assert np.array_equal(got[..., :3].transpose(2, 0, 1), expected.data)
    assert np.array_equal(got[..., 3] > 0, expected.mask > 0)

    double = client.get(f"{BASE}/tiles/{tile.z}/{tile.x}/{tile.y}@2x.png", params={"path": "rgb.tif"}, headers=ds)
    assert double.status_code == 200 and _rgba(double.content).shape == (512, 512, 4)
    far = TMS.tile(-120.0, -40.0, 12)
    assert_error(client.get(f"{BASE}/tiles/{far.z}/{far.x}/{far.y}.png", params={"path": "rgb.tif"}, headers=ds),
                 404, "tile_outside_bounds")


def test_single_band_tiles_are_stretched_without_stored_statistics(client, ds, tmp_path):
    _upload(client, ds, tmp_path, "dem.tif", dtype="uint16", width=200, height=200, origin=(10.0, 61.0),
            pixel=0.001)
    tile = TMS.tile(10.05, 60.95, 11)
    response = client.get(f"{BASE}/tiles/{tile.z}/{tile.x}/{tile.y}.png", params={"path": "dem.tif"}, headers=ds)
    assert response.status_code == 200, response.text
    gray = _rgba(response.content)[..., 0][_rgba(response.content)[..., 3] > 0]
    assert gray.min() < 30 and gray.max() > 220, "the 2-98 % stretch spreads the values over 0..255"


def test_thumbnails_png_webp_cache_and_the_dataset_thumbnail(client, ds, tmp_path):
    entry, source = _upload(client, ds, tmp_path, "scene.tif", count=3, dtype="uint8", width=300, height=200)
    response = client.get(f"{BASE}/thumb", params={"path": "scene.tif", "size": 150}, headers=ds)
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(response.content)).size == (150, 100)
    with Reader(str(source)) as reader:  # an independent rendering of the same overview
        expected = reader.preview(max_size=150, indexes=(1, 2, 3), resampling_method="nearest")
    assert np.array_equal(_rgba(response.content)[..., :3].transpose(2, 0, 1), expected.data)
    assert np.array_equal(_rgba(response.content)[..., 3] > 0, expected.mask > 0)
    assert response.headers["x-thumbnail-cache"] == "rendered"
    again = client.get(f"{BASE}/thumb", params={"path": "scene.tif", "size": 150}, headers=ds)
    assert again.headers["x-thumbnail-cache"] == "memory" and again.content == response.content
    webp = client.get(f"{BASE}/thumb", params={"path": "scene.tif", "size": 150},
                      headers={**ds, "Accept": "image/webp,image/*"})
    assert webp.headers["content-type"] == "image/webp" and Image.open(io.BytesIO(webp.content)).format == "WEBP"
    assert np.array_equal(_rgba(webp.content), _rgba(response.content)), "lossless WebP of the same pixels"
    default = client.get(f"{BASE}/thumb", params={"path": "scene.tif"}, headers=ds)
    assert Image.open(io.BytesIO(default.content)).size == (512, 341), "512 on the long side by default"

    assert_error(client.get(f"{BASE}/thumb", headers=ds), 404, "thumbnail_not_found")
    buffer = io.BytesIO()
    Image.new("RGB", (64, 32), (200, 10, 10)).save(buffer, format="PNG")
    assert upload_object(client, ds, "cover.png", buffer.getvalue()).status_code == 201
    cover = client.get(f"{BASE}/thumb", params={"size": 32}, headers=ds)
    assert cover.status_code == 200 and Image.open(io.BytesIO(cover.content)).size == (32, 16)
    assert tuple(_rgba(cover.content)[8, 16][:3]) == (200, 10, 10)
    assert entry["hash"]


def test_hostile_preview_requests(client, ds, tmp_path):
    _upload(client, ds, tmp_path, "ok.tif")
    assert upload_object(client, ds, "notes.txt", b"hello").status_code == 201
    assert upload_object(client, ds, "broken.tif", b"II*\x00 not a tiff").status_code in (201, 400)
    assert_error(client.get(f"{BASE}/thumb", params={"path": "notes.txt"}, headers=ds), 422, "not_previewable")
    assert_error(client.get(f"{BASE}/tiles/1/0/0.png", params={"path": "notes.txt"}, headers=ds), 422,
                 "not_previewable")
    assert_error(client.get(f"{BASE}/thumb", params={"path": "ok.tif", "size": 100000}, headers=ds), 422)
    assert_error(client.get(f"{BASE}/thumb", params={"path": "../../etc/passwd"}, headers=ds), 400)
    assert_error(client.get(f"{BASE}/tiles/1/0/0.png", params={"path": "../x.tif"}, headers=ds), 400)
    assert_error(client.get(f"{BASE}/thumb", params={"path": "missing.tif"}, headers=ds), 404)
    assert_error(client.get(f"{BASE}/tiles/2/9/0.png", params={"path": "ok.tif"}, headers=ds), 400, "invalid_tile")
    assert_error(client.get(f"{BASE}/tiles/1/0/0.png", headers=ds), 422)


def test_previews_follow_the_dataset_read_rules(client, ds, tmp_path, make_user):
    _upload(client, ds, tmp_path, "ok.tif")
    outsider = make_user("outsider")
    for url in (f"{BASE}/thumb?path=ok.tif", f"{BASE}/tiles/0/0/0.png?path=ok.tif"):
        assert_error(client.get(url), 401)
        assert_error(client.get(url, headers=outsider), 404)
    assert client.post(f"{BASE}/chattr", json={"visibility": "public"}, headers=ds).status_code == 200
    assert client.get(f"{BASE}/thumb?path=ok.tif").status_code == 200
    assert client.get(f"{BASE}/tiles/1/1/0.png?path=ok.tif", headers=outsider).status_code == 200
