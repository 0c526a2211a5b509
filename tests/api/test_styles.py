"""Built-in SLD 1.0 styles (``/styles``): structure, stats-derived limits, nodata, rgb channels, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import rasterio
from fastapi.testclient import TestClient
from lxml import etree
from rasterio.transform import from_origin
from starlette.routing import NoMatchFound

from georeg.api.app import create_app
from georeg.api.routes import styles as styles_routes
from georeg.core.models import Raster
from georeg.core.rasters import styles as styles
from tests.helpers import ADMIN_PASSWORD, assert_error, login, upload_raster
from tests.rasters import write_geotiff

NS = {"sld": styles.SLD_NS, "ogc": styles.OGC_NS, "xlink": styles.XLINK_NS, "xsi": styles.XSI_NS}
SLD_TYPE = "application/vnd.ogc.sld+xml"
SINGLE_BAND_STYLES = ["grayscale", "s1-amplitude-db", "dem-terrain", "viridis"]


@pytest.fixture
def styles_client(settings):
    app = create_app(settings)
    try:  # once api/app.py registers the router itself, do not add it twice
        app.url_path_for("list_styles", dataset_id="probe")
    except NoMatchFound:
        app.include_router(styles_routes.router)
    with TestClient(app) as client:
        yield client


@pytest.fixture
def admin(styles_client):
    return login(styles_client, "admin", ADMIN_PASSWORD)


def _write_dem(path, nodata=-32768):
    """int16 elevations from -50 to 1200 m with a nodata corner."""
    data = np.linspace(-50, 1200, 64 * 48).reshape(1, 48, 64).astype("int16")
    data[0, :4, :4] = nodata
    profile = {"driver": "GTiff", "width": 64, "height": 48, "count": 1, "dtype": "int16", "nodata": nodata,
               "crs": "EPSG:4326", "transform": from_origin(10, 61, 0.01, 0.01)}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


@pytest.fixture
def datasets(styles_client, admin, tmp_path):
    """A 1-band float32 raster with nodata, a 3-band uint8 one, a uint16 amplitude with nodata 0 and an int16 DEM."""
    files = {
        "float": write_geotiff(tmp_path / "float.tif", dtype="float32", nodata=-9999),
        "rgb": write_geotiff(tmp_path / "rgb.tif", count=3, dtype="uint8", nodata=None),
        "amplitude": write_geotiff(tmp_path / "S1A_IW_GRDH_amplitude.tif", dtype="uint16", nodata=0, width=80),
        "dem": _write_dem(tmp_path / "dem.tif"),
    }
    records = {}
    for key, path in files.items():
        response = upload_raster(styles_client, admin, path)
        assert response.status_code == 201, response.text
        records[key] = response.json()
    return records


def _sld(client, dataset_id: str, style_id: str) -> etree._Element:
    response = client.get(f"/styles/{dataset_id}/{style_id}.sld")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].split(";")[0] == SLD_TYPE
    assert response.content.startswith(b"<?xml")
    return etree.fromstring(response.content)


def _one(root: etree._Element, path: str) -> etree._Element:
    found = root.xpath(path, namespaces=NS)
    assert len(found) == 1, (path, found)
    return found[0]


def _entries(root: etree._Element) -> list[dict]:
    colormap = _one(root, "//sld:RasterSymbolizer/sld:ColorMap")
    assert colormap.get("type") == "ramp"
    entries = [{**entry.attrib, "quantity": float(entry.get("quantity")), "opacity": float(entry.get("opacity"))}
               for entry in colormap]
    assert all(etree.QName(entry).localname == "ColorMapEntry" for entry in colormap)
    quantities = [e["quantity"] for e in entries]
    assert quantities == sorted(quantities) and len(set(quantities)) == len(quantities), quantities
    assert all(e["color"].startswith("#") and len(e["color"]) == 7 for e in entries)
    return entries


def _ramp(entries: list[dict]) -> list[dict]:
    """The labelled stops of the ramp itself (neither the nodata entry nor its guards)."""
    return [e for e in entries if e.get("label") not in (None, "nodata")]


def _stats(client, dataset_id: str, band: int = 1) -> dict:
    return client.get(f"/datasets/{dataset_id}").json()["statistics"][band - 1]


def test_listing_offers_rgb_only_with_three_bands(styles_client, datasets):
    single = styles_client.get(f"/styles/{datasets['float']['dataset_id']}")
    assert single.status_code == 200, single.text
    body = single.json()
    assert body["dataset_id"] == datasets["float"]["dataset_id"]
    assert [s["id"] for s in body["styles"]] == SINGLE_BAND_STYLES
    assert [s["id"] for s in body["styles"] if s["default"]] == ["grayscale"]
    assert all(s["title"] and s["url"] == f"/styles/{body['dataset_id']}/{s['id']}.sld" for s in body["styles"])

    rgb = styles_client.get(f"/styles/{datasets['rgb']['dataset_id']}").json()
    assert {s["id"] for s in rgb["styles"]} == {*SINGLE_BAND_STYLES, "rgb"}
    assert [s["id"] for s in rgb["styles"] if s["default"]] == ["rgb"]
    for dataset in datasets.values():  # every listed URL answers a well-formed SLD, anonymously
        for style in styles_client.get(f"/styles/{dataset['dataset_id']}").json()["styles"]:
            response = styles_client.get(style["url"])
            assert response.status_code == 200, (style, response.text)
            root = etree.fromstring(response.content)
            assert _one(root, "/sld:StyledLayerDescriptor/sld:NamedLayer/sld:UserStyle/sld:Name").text == style["id"]
            default = root.xpath("//sld:UserStyle/sld:IsDefault", namespaces=NS)
            assert [d.text for d in default] == (["1"] if style["default"] else [])


def test_grayscale_sld_shape_limits_and_nodata(styles_client, datasets):
    dataset_id = datasets["float"]["dataset_id"]
    root = _sld(styles_client, dataset_id, "grayscale")
    assert etree.QName(root).localname == "StyledLayerDescriptor" and etree.QName(root).namespace == styles.SLD_NS
    assert root.get("version") == "1.0.0"
    assert {k: v for k, v in root.nsmap.items() if k} == NS
    assert root.get(f"{{{styles.XSI_NS}}}schemaLocation").split() == [
        styles.SLD_NS, "http://schemas.opengis.net/sld/1.0.0/StyledLayerDescriptor.xsd"]
    assert _one(root, "/sld:StyledLayerDescriptor/sld:NamedLayer/sld:Name").text == dataset_id
    user_style = _one(root, "/sld:StyledLayerDescriptor/sld:NamedLayer/sld:UserStyle")
    assert [etree.QName(c).localname for c in user_style] == ["Name", "Title", "Abstract", "IsDefault",
                                                              "FeatureTypeStyle"]
    symbolizer = _one(user_style, "sld:FeatureTypeStyle/sld:Rule/sld:RasterSymbolizer")
    assert [etree.QName(c).localname for c in symbolizer] == ["Opacity", "ChannelSelection", "ColorMap"]
    assert float(_one(symbolizer, "sld:Opacity").text) == 1.0
    assert _one(symbolizer, "sld:ChannelSelection/sld:GrayChannel/sld:SourceChannelName").text == "1"

    stats = _stats(styles_client, dataset_id)
    entries = _entries(root)
    ramp = _ramp(entries)
    assert [e["color"] for e in ramp] == ["#000000", "#ffffff"]
    assert [e["quantity"] for e in ramp] == pytest.approx([stats["p2"], stats["p98"]], rel=1e-12)
    assert all(e["opacity"] == 1 for e in ramp)
    nodata = [e for e in entries if e.get("label") == "nodata"]
    assert len(nodata) == 1 and nodata[0]["quantity"] == -9999 and nodata[0]["opacity"] == 0
    # guards just below and above nodata keep GeoServer's interpolation from fading valid pixels
    index = entries.index(nodata[0])
    assert index == 1 and entries[0]["quantity"] < -9999 < entries[2]["quantity"] < stats["p2"]
    assert entries[0]["opacity"] == entries[2]["opacity"] == 1
    assert entries[2]["quantity"] == pytest.approx(-9999, abs=0.1)


def test_viridis_and_dem_terrain_ramps(styles_client, datasets):
    dataset_id = datasets["float"]["dataset_id"]
    stats = _stats(styles_client, dataset_id)
    viridis = _ramp(_entries(_sld(styles_client, dataset_id, "viridis")))
    assert len(viridis) >= 5
    assert [e["color"] for e in viridis] == styles.VIRIDIS
    assert viridis[0]["quantity"] == pytest.approx(stats["p2"], rel=1e-12)
    assert viridis[-1]["quantity"] == pytest.approx(stats["p98"], rel=1e-12)
    steps = np.diff([e["quantity"] for e in viridis])
    assert steps == pytest.approx([steps[0]] * len(steps))

    terrain = _ramp(_entries(_sld(styles_client, dataset_id, "dem-terrain")))
    assert terrain[0]["quantity"] == pytest.approx(stats["min"])
    assert terrain[-1]["quantity"] == pytest.approx(stats["max"])
    assert terrain[-1]["color"] == "#ffffff" and len(terrain) >= 4

    dem_id = datasets["dem"]["dataset_id"]
    dem_stats = _stats(styles_client, dem_id)
    assert dem_stats["min"] < 0 < dem_stats["max"]
    entries = _entries(_sld(styles_client, dem_id, "dem-terrain"))
    dem = _ramp(entries)
    sea = [e for e in dem if e["quantity"] == 0]
    assert len(sea) == 1 and "sea level" in sea[0]["label"]
    assert dem[0]["quantity"] == dem_stats["min"] and dem[-1]["quantity"] == dem_stats["max"]
    blue = [int(c, 16) for c in (sea[0]["color"][1:3], sea[0]["color"][3:5], sea[0]["color"][5:7])]
    assert blue[2] > blue[0] and blue[2] > blue[1]
    assert [e["quantity"] for e in entries if e.get("label") == "nodata"] == [-32768]
    assert entries[0]["label"] == "nodata"  # int16 cannot go below -32768: no guard under it
    assert entries[1]["quantity"] == -32767 and entries[1]["opacity"] == 1


def test_s1_amplitude_db_is_a_gray_db_ramp_over_amplitudes(styles_client, datasets):
    dataset_id = datasets["amplitude"]["dataset_id"]
    stats = _stats(styles_client, dataset_id)
    root = _sld(styles_client, dataset_id, "s1-amplitude-db")
    entries = _entries(root)
    ramp = _ramp(entries)
    assert ramp[0]["quantity"] == pytest.approx(stats["p2"], rel=1e-12)
    assert ramp[-1]["quantity"] == pytest.approx(stats["p98"], rel=1e-12)
    assert len(ramp) == styles.S1_DB_STOPS
    db = [20 * math.log10(e["quantity"]) for e in ramp]
    assert np.diff(db) == pytest.approx([np.diff(db)[0]] * (len(db) - 1))  # evenly spaced in dB
    assert [float(e["label"].removesuffix(" dB")) for e in ramp] == pytest.approx(db, abs=0.051)
    grays = [int(e["color"][1:3], 16) for e in ramp]
    assert grays[0] == 0 and grays[-1] == 255 and grays == sorted(grays)
    assert all(e["color"][1:3] == e["color"][3:5] == e["color"][5:7] for e in ramp)
    # uint16 nodata 0: transparent at 0, an opaque guard at 1, nothing below 0
    assert entries[0]["label"] == "nodata" and entries[0]["quantity"] == 0 and entries[0]["opacity"] == 0
    assert entries[1]["quantity"] == 1 and entries[1]["opacity"] == 1 and entries[1]["color"] == "#000000"
    abstract = _one(root, "//sld:UserStyle/sld:Abstract").text
    assert "dB" in abstract and "20*log10" in abstract


def test_rgb_channel_selection_with_per_band_limits(styles_client, datasets):
    dataset_id = datasets["rgb"]["dataset_id"]
    root = _sld(styles_client, dataset_id, "rgb")
    assert _one(root, "//sld:NamedLayer/sld:Name").text == dataset_id
    assert _one(root, "//sld:UserStyle/sld:IsDefault").text == "1"
    symbolizer = _one(root, "//sld:RasterSymbolizer")
    assert not symbolizer.xpath("sld:ColorMap", namespaces=NS)
    selection = _one(symbolizer, "sld:ChannelSelection")
    assert [etree.QName(c).localname for c in selection] == ["RedChannel", "GreenChannel", "BlueChannel"]
    for band, channel in enumerate(selection, start=1):
        assert _one(channel, "sld:SourceChannelName").text == str(band)
        vendor = channel.xpath("sld:ContrastEnhancement/sld:Normalize/sld:VendorOption", namespaces=NS)
        options = {o.get("name"): o.text for o in vendor}
        stats = _stats(styles_client, dataset_id, band)
        assert options["algorithm"] == "StretchToMinimumMaximum"
        assert float(options["minValue"]) == pytest.approx(stats["p2"], rel=1e-12)
        assert float(options["maxValue"]) == pytest.approx(stats["p98"], rel=1e-12)


def test_missing_styles_and_datasets_are_404(styles_client, datasets):
    single = datasets["float"]["dataset_id"]
    body = assert_error(styles_client.get(f"/styles/{single}/sepia.sld"), 404, "style_not_found")
    assert "sepia" in body["error"] and all(name in body["error"] for name in SINGLE_BAND_STYLES)
    assert "rgb" not in body["error"].split("Available styles:")[1]
    assert body["details"]["available_styles"] == SINGLE_BAND_STYLES
    body = assert_error(styles_client.get(f"/styles/{datasets['rgb']['dataset_id']}/sepia.sld"), 404, "style_not_found")
    assert "rgb" in body["error"].split("Available styles:")[1]

    body = assert_error(styles_client.get(f"/styles/{single}/rgb.sld"), 404, "style_not_available")
    assert "3 bands" in body["error"] and "has 1" in body["error"]

    assert_error(styles_client.get("/styles/nope/grayscale.sld"), 404, "dataset_not_found")
    assert_error(styles_client.get("/styles/nope"), 404, "dataset_not_found")
    assert_error(styles_client.get(f"/styles/{single}/GRAYSCALE.sld"), 404, "style_not_found")
    assert_error(styles_client.get(f"/styles/{single}/grayscale"), 404)  # no .sld suffix: no route


@pytest.mark.parametrize("segment", ["..%2F..%2Fetc", "%2e%2e", "x" * 300, "ÅÆØ", "%5C..%5Cetc", "a%00b", "%20"])
def test_hostile_ids_answer_json_4xx(styles_client, datasets, segment):
    single = datasets["float"]["dataset_id"]
    for path in (f"/styles/{single}/{segment}.sld", f"/styles/{segment}/grayscale.sld", f"/styles/{segment}"):
        response = styles_client.get(path)
        assert 400 <= response.status_code < 500, (path, response.status_code, response.text)
        body = assert_error(response, response.status_code)
        assert len(body["error"]) < 400
    body = assert_error(styles_client.get(f"/styles/{single}/{'x' * 300}.sld"), 404, "style_not_found")
    assert "x" * 65 not in body["error"]


# ---------------------------------------------------------------------------------------- the pure core, no DB

def _raster(**overrides) -> Raster:
    values = {"entry_id": 1, "public_id": "r1", "sha256": "0" * 64, "width": 4, "height": 4, "band_count": 1,
              "dtype": "float32", "nodata": None,
              "stats": [{"band": 1, "valid": 16, "min": 1.0, "max": 9.0, "mean": 5.0, "std": 2.0,
                         "p2": 2.0, "p98": 8.0}]}
    return Raster(**{**values, **overrides})


def test_nodata_entries_in_every_position():
    assert all(s.opacity == 1 for s in styles.color_map(_raster(), "grayscale"))  # no nodata: no transparent entry
    assert len(styles.color_map(_raster(nodata=float("nan")), "grayscale")) == 2
    above = styles.color_map(_raster(dtype="uint8", nodata=255), "grayscale")
    assert [(s.quantity, s.opacity) for s in above] == [(2, 1), (8, 1), (254, 1), (255, 0)]
    assert above[-2].color == above[-1].color == "#ffffff"
    inside = styles.color_map(_raster(dtype="int16", nodata=5), "grayscale")
    assert [(s.quantity, s.opacity) for s in inside] == [(2, 1), (4, 1), (5, 0), (6, 1), (8, 1)]
    assert inside[1].color == "#555555" and inside[3].color == "#aaaaaa"  # the ramp's own colours either side


def test_limits_without_statistics_and_constant_bands():
    assert styles.limits(_raster(dtype="uint8", stats=[{"band": 1, "valid": 0}])) == (0, 255)
    assert styles.limits(_raster(stats=None)) == (0, 1)
    assert styles.limits(_raster(dtype="int16", stats=[{"band": 1, "valid": 4, "p2": 7.0, "p98": 7.0}])) == (7, 8)
    assert styles.s1_db_range(_raster(stats=None)) == styles.S1_DEFAULT_DB
    low, high = styles.s1_db_range(_raster(stats=[{"band": 1, "valid": 4, "p2": 0.0, "p98": 100.0}]))
    assert (low, high) == pytest.approx((10.0, 40.0))
    assert styles.number(1e-05) == "0.00001" and styles.number(2.0) == "2" and styles.number(-9999.5) == "-9999.5"
    for style in SINGLE_BAND_STYLES:  # every ramp stays strictly ascending even for degenerate inputs
        for raster in (_raster(stats=None, nodata=0.0),
                       _raster(dtype="uint16", nodata=0, stats=[{"band": 1, "valid": 0}])):
            quantities = [s.quantity for s in styles.color_map(raster, style)]
            assert quantities == sorted(set(quantities)), (style, quantities)
