"""Thumbnails: size, stretch, transparency, caches."""

from __future__ import annotations

import io

import numpy as np
import rasterio
from PIL import Image

from tests.helpers import assert_error
from tests.rasters import write_geotiff


def register(client, headers, path):
    with open(path, "rb") as handle:
        response = client.post("/datasets", files={"file": (path.name, handle)}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()["dataset_id"]


def test_gray_thumbnail_with_transparent_nodata(client, admin_headers, tmp_path, settings):
    path = write_geotiff(tmp_path / "dem.tif", width=400, height=200, dtype="float32", nodata=-9999)
    with rasterio.open(path, "r+") as dst:
        data = dst.read(1)
        data[:, :100] = -9999
        dst.write(data, 1)
    dataset_id = register(client, admin_headers, path)
    first = client.get(f"/datasets/{dataset_id}/thumbnail.png", params={"size": 128})
    assert first.status_code == 200 and first.headers["content-type"] == "image/png"
    assert first.headers["x-thumbnail-cache"] == "rendered"
    image = Image.open(io.BytesIO(first.content))
    assert image.size == (128, 64) and image.mode == "LA"
    pixels = np.asarray(image)
    assert (pixels[:, :30, 1] == 0).all() and (pixels[:, 40:, 1] == 255).all()
    assert pixels[:, 40:, 0].min() == 0 and pixels[:, 40:, 0].max() == 255
    assert client.get(f"/datasets/{dataset_id}/thumbnail.png",
                      params={"size": 128}).headers["x-thumbnail-cache"] == "memory"
    assert list((settings.cache_dir / "thumbnails").rglob("128.png"))
    cleared = client.delete("/thumbnails", headers=admin_headers).json()["cleared"]
    assert cleared == {"memory_entries": 1, "files": 1}
    assert client.get(f"/datasets/{dataset_id}/thumbnail.png",
                      params={"size": 128}).headers["x-thumbnail-cache"] == "rendered"


def test_rgb_thumbnail_and_generate(client, admin_headers, tmp_path):
    rgb = register(client, admin_headers, write_geotiff(tmp_path / "rgb.tif", count=3, dtype="uint8", nodata=None,
                                                        width=300, height=300, crs="EPSG:32633", origin=(5e5, 7e6),
                                                        pixel=10))
    image = Image.open(io.BytesIO(client.get(f"/datasets/{rgb}/thumbnail.png").content))
    assert image.mode == "RGBA" and image.size == (256, 256)
    generated = client.post("/thumbnails/generate", json={"dataset_ids": [rgb, "missing"], "size": 64})
    assert generated.status_code == 200
    assert generated.json()["generated"] == [rgb] and generated.json()["failed"][0]["dataset_id"] == "missing"
    assert client.get(f"/datasets/{rgb}/thumbnail.png", params={"size": 64}).headers["x-thumbnail-cache"] == "memory"


def test_thumbnail_hostile_input(client, admin_headers, tmp_path):
    dataset_id = register(client, admin_headers, write_geotiff(tmp_path / "a.tif"))
    for size in (0, 8, 5000, "big"):
        assert_error(client.get(f"/datasets/{dataset_id}/thumbnail.png", params={"size": size}), 422)
    assert_error(client.get("/datasets/nope/thumbnail.png"), 404, "dataset_not_found")
    assert_error(client.post("/thumbnails/generate", json={"dataset_ids": []}), 422)
    assert_error(client.post("/thumbnails/generate", json={"dataset_ids": ["nope"]}), 400, "thumbnails_failed")
    assert_error(client.post("/thumbnails/generate", json={"dataset_ids": [f"id{i}" for i in range(25)]}), 401)
    assert_error(client.delete("/thumbnails"), 401)
