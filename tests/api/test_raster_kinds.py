"""Rasters georeferenced by GCPs only, and 1-band int16 with nodata, through every route that reads a raster."""

from __future__ import annotations

import io

import morecantile
import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.crs import CRS
from rasterio.transform import GCPTransformer
from rasterio.warp import transform, transform_bounds

from tests.helpers import assert_error
from tests.rasters import write_geotiff, write_int16_dem

WIDTH, HEIGHT = 200, 150
POLAR = {"crs": "EPSG:3413", "origin": (71000, -1883000), "pixel": 1000, "dtype": "uint16", "nodata": 0}
DATELINE = {"crs": "EPSG:3832", "origin": (3239000, -1700000), "pixel": 1000, "dtype": "uint16", "nodata": 0}


def register(client, headers, path):
    with open(path, "rb") as handle:
        response = client.post("/datasets", files={"file": (path.name, handle)}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def row_col_bands() -> np.ndarray:
    """Band 1 holds row + 1 and band 2 col + 1, so a rendered pixel tells which source pixel it came from."""
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    return np.stack([rows + 1, cols + 1])


@pytest.fixture
def gcp_pair(tmp_path):
    """A GCP-only raster (polar stereographic grid, GCPs in lon/lat like Sentinel-1 GRD) and its twin with the
    geotransform the GCPs were computed from (the truth)."""
    data = row_col_bands()
    return (write_geotiff(tmp_path / "gcp_only.tif", gcp_crs="EPSG:4326", data=data, **POLAR),
            write_geotiff(tmp_path / "twin.tif", data=data, **POLAR))


def center_lonlat(twin, row: int, col: int, crs: str = POLAR["crs"]) -> tuple[float, float]:
    with rasterio.open(twin) as src:
        x, y = src.xy(row, col)
    lons, lats = transform(crs, "EPSG:4326", [x], [y])
    return lons[0], lats[0]


def test_gcp_only_registration_bounds_and_extent(client, admin_headers, gcp_pair):
    gcp_only, twin = gcp_pair
    record = register(client, admin_headers, gcp_only)
    assert record["crs"]["epsg"] == 4326 and record["width"] == WIDTH and record["height"] == HEIGHT
    with rasterio.open(twin) as src:
        truth = transform_bounds(src.crs, "EPSG:4326", *src.bounds, densify_pts=21)
    assert record["bounds"]["wgs84"] == pytest.approx(truth, abs=0.01)
    with rasterio.open(gcp_only) as src:
        with GCPTransformer(src.gcps[0]) as gcp_transformer:
            corners = gcp_transformer.xy([0, 0, HEIGHT, HEIGHT], [0, WIDTH, 0, WIDTH], offset="ul")
        points = src.gcps[0]
    native = record["bounds"]["native"]
    assert native[0] <= min(corners[0]) and native[2] >= max(corners[0])
    assert native[1] <= min(corners[1]) and native[3] >= max(corners[1])
    gcp_box = [min(p.x for p in points), min(p.y for p in points), max(p.x for p in points), max(p.y for p in points)]
    assert native == pytest.approx(gcp_box, abs=0.005)
    feature = client.get(f"/datasets/{record['dataset_id']}/extent.geojson").json()
    assert feature["geometry"]["type"] == "Polygon" and feature["bbox"] == record["bounds"]["wgs84"]
    assert client.get("/datasets", params={"bbox": "-41,71.5,-40,72"}, headers=admin_headers).json()["total"] == 1


def test_gcp_only_sample_follows_the_gcp_transform(client, admin_headers, gcp_pair):
    gcp_only, twin = gcp_pair
    dataset_id = register(client, admin_headers, gcp_only)["dataset_id"]
    with rasterio.open(gcp_only) as src, GCPTransformer(src.gcps[0]) as gcp_transformer:
        for row, col in ((0, 0), (10, 20), (75, 100), (HEIGHT - 1, WIDTH - 1), (140, 5)):
            lon, lat = center_lonlat(twin, row, col)
            hit = client.get(f"/datasets/{dataset_id}/sample", params={"lon": lon, "lat": lat}).json()
            rows, cols = gcp_transformer.rowcol([lon], [lat])
            assert (hit["row"], hit["col"]) == (int(rows[0]), int(cols[0])) == (row, col)
            assert [v["value"] for v in hit["values"]] == [row + 1, col + 1]
            assert hit["crs"] == "EPSG:4326" and hit["x"] == pytest.approx(lon)
    outside = center_lonlat(twin, -20, WIDTH // 2)
    assert_error(client.get(f"/datasets/{dataset_id}/sample", params={"lon": outside[0], "lat": outside[1]}), 404,
                 "point_outside")


def decoded(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("LA"), dtype="int32")


def assert_same_picture(ours: np.ndarray, truth: np.ndarray) -> None:
    """Alpha agrees almost everywhere and gray levels (rows stretched over ~150 values) are at most a couple of
    source rows apart: a warp through the GCPs, not a pixel-space or affine-approximated placement."""
    assert (ours[..., 1] == truth[..., 1]).mean() > 0.99 and truth[..., 1].max() == 255
    both = (ours[..., 1] == 255) & (truth[..., 1] == 255)
    difference = np.abs(ours[..., 0] - truth[..., 0])[both]
    assert difference.max() <= 8 and difference.mean() < 1.5


def test_gcp_only_thumbnail_tiles_and_wms_are_warped(client, admin_headers, gcp_pair):
    _gcp_only, twin = gcp_pair
    ours, truth = (register(client, admin_headers, path)["dataset_id"] for path in gcp_pair)
    thumbnail = Image.open(io.BytesIO(client.get(f"/datasets/{ours}/thumbnail.png", params={"size": 100}).content))
    assert thumbnail.size == (100, 75) and np.asarray(thumbnail)[..., 1].min() == 255
    tms = morecantile.tms.get("WebMercatorQuad")
    for zoom, lon, lat in ((6, -40, 72), (8, -42.5, 71.5)):
        tile = tms.tile(lon, lat, zoom)
        path = f"tiles/{tile.z}/{tile.x}/{tile.y}.png"
        assert_same_picture(decoded(client.get(f"/datasets/{ours}/{path}")),
                            decoded(client.get(f"/datasets/{truth}/{path}")))
    for crs, bbox in (("CRS:84", "-43.5,71,-36.5,73"), ("EPSG:3413", "60000,-2050000,280000,-1870000")):
        params = {"SERVICE": "WMS", "REQUEST": "GetMap", "VERSION": "1.3.0", "STYLES": "grayscale", "CRS": crs,
                  "BBOX": bbox, "WIDTH": "220", "HEIGHT": "180", "FORMAT": "image/png", "TRANSPARENT": "TRUE"}
        assert_same_picture(decoded(client.get("/wms", params={**params, "LAYERS": ours})),
                            decoded(client.get("/wms", params={**params, "LAYERS": truth})))
    lon, lat = center_lonlat(twin, 30, 40)
    info = client.get("/wms", params={"REQUEST": "GetFeatureInfo", "QUERY_LAYERS": ours, "CRS": "CRS:84",
                                      "BBOX": f"{lon - 0.001},{lat - 0.001},{lon + 0.001},{lat + 0.001}",
                                      "WIDTH": "1", "HEIGHT": "1", "I": "0", "J": "0"}).json()
    assert [v["value"] for v in info["features"][0]["values"]] == [31, 41]


def test_gcp_only_across_the_antimeridian(client, admin_headers, tmp_path):
    data = row_col_bands()[:, :100]
    gcp_only = write_geotiff(tmp_path / "dateline_gcps.tif", gcp_crs="EPSG:4326", data=data, **DATELINE)
    twin = write_geotiff(tmp_path / "dateline_twin.tif", data=data, **DATELINE)
    record = register(client, admin_headers, gcp_only)
    west, _south, east, _north = record["bounds"]["wgs84"]
    assert 179 < west < 179.2 and -179.2 < east < -179 and west > east
    assert client.get(f"/datasets/{record['dataset_id']}/extent.geojson").json()["geometry"]["type"] == "MultiPolygon"
    for row, col in ((5, 10), (50, 190), (99, 100)):
        lon, lat = center_lonlat(twin, row, col, DATELINE["crs"])
        hit = client.get(f"/datasets/{record['dataset_id']}/sample", params={"lon": lon, "lat": lat}).json()
        assert (hit["row"], hit["col"]) == (row, col) and hit["values"][0]["value"] == row + 1


def test_gcps_without_a_crs_are_refused(client, admin_headers, tmp_path, settings):
    with rasterio.open(write_geotiff(tmp_path / "gcps.tif", gcp_crs="EPSG:4326", **POLAR)) as src:
        gcps, data = src.gcps[0], src.read()
    bare = tmp_path / "bare_gcps.tif"
    with rasterio.open(bare, "w", driver="GTiff", width=WIDTH, height=HEIGHT, count=1, dtype="uint16") as dst:
        dst.gcps = (gcps, CRS())
        dst.write(data)
    with rasterio.open(bare) as src:
        assert src.gcps[0] and src.gcps[1] is None and src.crs is None
    body = assert_error(client.post("/datasets", files={"file": ("bare.tif", bare.read_bytes())},
                                    headers=admin_headers), 400, "invalid_raster")
    assert "GCPs" in body["error"]
    assert not any((settings.storage_dir / "default").rglob("*.tif"))


def test_int16_dem_sample_statistics_thumbnail_and_tile(client, admin_headers, tmp_path):
    path = write_int16_dem(tmp_path / "dem_int16.tif")
    with rasterio.open(path) as src:
        dem, nodata = src.read(1), src.nodata
        valid = dem[dem != nodata]
        west_x, west_y = src.xy(60, 3)
        hole_x, hole_y = src.xy(2, src.width - 3)
        crs = src.crs
    record = register(client, admin_headers, path)
    assert record["dtype"] == "int16" and record["nodata"] == -32768
    stats = record["statistics"][0]
    assert stats["valid"] == valid.size and stats["min"] == valid.min() < 0 and stats["max"] == valid.max()
    assert stats["p2"] == pytest.approx(np.percentile(valid, 2))
    assert stats["p98"] == pytest.approx(np.percentile(valid, 98))
    dataset_id = record["dataset_id"]
    (lon, hole_lon), (lat, hole_lat) = transform(crs, "EPSG:4326", [west_x, hole_x], [west_y, hole_y])
    hit = client.get(f"/datasets/{dataset_id}/sample", params={"lon": lon, "lat": lat}).json()
    assert hit["values"][0]["value"] == int(dem[60, 3]) < 0 and isinstance(hit["values"][0]["value"], int)
    hole = client.get(f"/datasets/{dataset_id}/sample", params={"lon": hole_lon, "lat": hole_lat}).json()
    assert hole["values"][0]["value"] is None
    picture = decoded(client.get(f"/datasets/{dataset_id}/thumbnail.png", params={"size": 120}))
    assert picture.shape == (80, 120, 2)
    assert (picture[:20, -30:, 1] == 0).all() and (picture[25:, :, 1] == 255).all()
    gray = picture[..., 0][picture[..., 1] == 255]
    assert gray.min() == 0 and gray.max() == 255 and 100 < np.median(gray) < 160
    tile = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, 12)
    rendered = decoded(client.get(f"/datasets/{dataset_id}/tiles/{tile.z}/{tile.x}/{tile.y}.png"))
    assert rendered[..., 1].max() == 255 and rendered[..., 0][rendered[..., 1] == 255].max() > 0
