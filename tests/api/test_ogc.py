"""WMS 1.3.0 and WFS 2.0 against a live server, driven by OWSLib's clients."""

from __future__ import annotations

import io
import socket
import threading
import time

import httpx
import numpy as np
import pytest
import uvicorn
from owslib.wfs import WebFeatureService
from owslib.wms import WebMapService
from PIL import Image

from georeg.api.app import create_app
from tests.helpers import ADMIN_PASSWORD
from tests.rasters import write_geotiff


@pytest.fixture
def live(settings, tmp_path):
    """The API served by uvicorn on a free port, with two registered rasters."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            if httpx.get(f"{base}/version", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    token = httpx.post(f"{base}/users/authenticate",
                       json={"userName": "admin", "password": ADMIN_PASSWORD}).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    ids = {}
    for name, path in {
        "gray": write_geotiff(tmp_path / "gray.tif", dtype="float32", nodata=-9999, origin=(10, 61), pixel=0.01),
        "rgb": write_geotiff(tmp_path / "rgb.tif", count=3, dtype="uint8", nodata=None, crs="EPSG:32633",
                             origin=(500000, 7000000), pixel=10, width=200, height=200),
    }.items():
        with open(path, "rb") as handle:
            ids[name] = httpx.post(f"{base}/datasets", files={"file": (path.name, handle)},
                                   headers=headers).json()["dataset_id"]
    yield base, ids
    server.should_exit = True
    thread.join(timeout=10)


def test_wms_with_owslib(live):
    base, ids = live
    wms = WebMapService(f"{base}/wms", version="1.3.0")
    assert set(ids.values()) <= set(wms.contents)
    layer = wms[ids["gray"]]
    assert {"grayscale", "viridis", "dem-terrain"} <= set(layer.styles)
    west, south, east, north = layer.boundingBoxWGS84
    assert (west, south, east, north) == pytest.approx((10, 60.52, 10.64, 61))
    image = wms.getmap(layers=[ids["gray"]], styles=["viridis"], srs="EPSG:4326",
                       bbox=(10, 60.52, 10.64, 61), size=(128, 96), format="image/png", transparent=True)
    picture = np.asarray(Image.open(io.BytesIO(image.read())))
    assert picture.shape == (96, 128, 4) and picture[..., 3].max() == 255
    merc = wms.getmap(layers=[ids["rgb"]], styles=["rgb"], srs="EPSG:3857",
                      bbox=(1670000, 8580000, 1672000, 8582000), size=(64, 64), format="image/jpeg")
    assert Image.open(io.BytesIO(merc.read())).format == "JPEG"
    info = wms.getfeatureinfo(layers=[ids["gray"]], query_layers=[ids["gray"]], srs="EPSG:4326",
                              bbox=(10, 60.52, 10.64, 61), size=(64, 48), format="image/png", xy=(10, 10),
                              info_format="application/json")
    body = info.read()
    assert b"values" in body


def test_wms_errors_are_exception_reports(live):
    base, ids = live
    for params in ({"REQUEST": "GetMap", "SERVICE": "WMS", "LAYERS": "nope", "CRS": "EPSG:4326", "BBOX": "0,0,1,1",
                    "WIDTH": "10", "HEIGHT": "10"},
                   {"REQUEST": "GetMap", "LAYERS": ids["gray"], "CRS": "EPSG:4326", "BBOX": "1,1,0,0",
                    "WIDTH": "10", "HEIGHT": "10"},
                   {"REQUEST": "GetMap", "LAYERS": ids["gray"], "CRS": "EPSG:999999", "BBOX": "0,0,1,1",
                    "WIDTH": "10", "HEIGHT": "10"},
                   {"REQUEST": "GetMap", "LAYERS": ids["gray"], "CRS": "EPSG:4326", "BBOX": "0,0,1,1",
                    "WIDTH": "100000", "HEIGHT": "10"},
                   {"REQUEST": "GetMap", "LAYERS": ids["gray"], "STYLES": "rgb", "CRS": "EPSG:4326",
                    "BBOX": "0,0,1,1", "WIDTH": "10", "HEIGHT": "10"},
                   {"REQUEST": "Dance"}, {}):
        response = httpx.get(f"{base}/wms", params=params)
        assert response.status_code == 400, (params, response.text)
        assert b"ServiceExceptionReport" in response.content


def test_wfs_with_owslib(live):
    base, ids = live
    wfs = WebFeatureService(f"{base}/wfs", version="2.0.0")
    assert "georeg:footprints" in wfs.contents
    response = wfs.getfeature(typename=["georeg:footprints"], outputFormat="application/json")
    collection = __import__("json").loads(response.read())
    assert collection["numberMatched"] == 2 and {f["id"] for f in collection["features"]} == set(ids.values())
    near = httpx.get(f"{base}/wfs", params={"SERVICE": "WFS", "VERSION": "2.0.0", "REQUEST": "GetFeature",
                                            "TYPENAMES": "georeg:footprints", "BBOX": "60.6,10.1,60.9,10.3"}).json()
    assert [f["id"] for f in near["features"]] == [ids["gray"]]
    crs84 = httpx.get(f"{base}/wfs", params={"REQUEST": "GetFeature", "TYPENAMES": "georeg:footprints",
                                             "BBOX": "10.1,60.6,10.3,60.9,urn:ogc:def:crs:OGC:1.3:CRS84"}).json()
    assert [f["id"] for f in crs84["features"]] == [ids["gray"]]
    bad = httpx.get(f"{base}/wfs", params={"REQUEST": "GetFeature", "TYPENAMES": "other"})
    assert bad.status_code == 400 and b"ServiceExceptionReport" in bad.content
    assert httpx.get(f"{base}/wfs", params={"REQUEST": "GetFeature", "TYPENAMES": "georeg:footprints",
                                            "COUNT": "x"}).status_code == 400
