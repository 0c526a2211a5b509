"""The point-query routes over HTTP: arbitrary OPeNDAP/NetCDF URLs on the real OPeNDAP server (xpublish-opendap),
downloads and mounted files giving the same answers; dataset-linked queries (the NetCDF a raster was written from,
an S1 raster's OPeNDAP reference with the profile's default variables); hostile URLs and bodies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pyproj import Transformer
from sqlmodel import Session

from georeg.api.app import create_app
from georeg.core.catalog.netcdf_ingest import ingest_netcdf
from georeg.core.db import make_engine
from georeg.core.rasters import service as rasters
from tests.helpers import app_settings, assert_error, truncate_all
from tests.netcdf_fixtures import make_record, swath_lonlat

GLOBAL_POINTS = [{"lon": -170.2, "lat": 10.3}, {"lon": 12.0, "lat": 78.9}, {"lon": 359.9, "lat": -89.9}]


@pytest.fixture
def nc_app(tmp_path: Path, database_urls: dict[str, str], prefect_api_url: str, opendap_server, netcdf_files):
    engine = make_engine(database_urls["sqlite"])
    truncate_all(engine)
    engine.dispose()
    settings = app_settings(data_dir=tmp_path / "data", database_url=database_urls["sqlite"],
                            prefect_api_url=prefect_api_url, download_hosts=[opendap_server.host],
                            mount_roots=[netcdf_files.root], csw_timeout_seconds=20, query_max_points=2000)
    return settings


@pytest.fixture
def nc_client(nc_app) -> Iterator[TestClient]:
    with TestClient(create_app(nc_app)) as client:
        yield client


def test_url_queries_agree_across_opendap_download_and_mounted_file(nc_client, opendap_server, netcdf_files):
    answers = []
    for url in (opendap_server.dap_url("global360"), opendap_server.dap_url("global360") + ".html",
                opendap_server.file_url("global360"), str(netcdf_files.global360.path)):
        response = nc_client.post("/datasets/query-points", json={"url": url, "points": GLOBAL_POINTS,
                                                                  "method": "bilinear"})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["count"] == 3 and body["method"] == "bilinear"
        answers.append([point["values"] for point in body["points"]])
    assert all(answer == answers[0] for answer in answers)
    one = nc_client.post("/datasets/query-point", json={"url": opendap_server.dap_url("global360"),
                                                         "lon": -170.2, "lat": 10.3})
    assert one.status_code == 200, one.text
    assert one.json()["grid"]["lon"] == 189.5 and set(one.json()["values"]) == {"tas"}
    assert set(one.json()) >= {"lon", "lat", "values", "grid", "time"}


def test_opendap_swath_packed_and_projected(nc_client, opendap_server):
    lon, lat = swath_lonlat(0.5, 10.5)  # the centre of cell (0, 10), which holds 40 000
    swath = nc_client.post("/datasets/query-points", json={
        "url": opendap_server.dap_url("swath"), "points": [{"lon": lon, "lat": lat}, {"lon": 0, "lat": 0}]}).json()
    inside, outside = swath["points"]
    assert set(inside["values"]) == {"Amplitude_VV", "Amplitude_VH"}
    assert inside["grid"]["indices"] == {"y": 0, "x": 10}
    assert inside["values"]["Amplitude_VV"]["value"] == 40_000  # unsigned over DAP2
    assert inside["grid"]["distance_m"] < 1 and inside["time"] == "2024-02-27T00:00:00"
    assert outside["grid"] is None and outside["values"]["Amplitude_VV"]["value"] is None
    fixture = opendap_server.files.polar
    lon, lat = Transformer.from_crs(fixture.crs, "EPSG:4326", always_xy=True).transform(-612_500.0, -1_062_500.0)
    polar = nc_client.post("/datasets/query-point", json={
        "url": opendap_server.dap_url("polar"), "lon": lon, "lat": lat, "variables": ["ice_conc"],
        "time": "2024-02-27T12:00:00Z"})
    assert polar.status_code == 200, polar.text
    row, col = 12 - 1 - 5, 7  # y ascending in the file: the 6th row from the south is file row 5
    assert polar.json()["grid"]["indices"] == {"y": 5, "x": col} and polar.json()["time"] == fixture.times[2]
    assert polar.json()["values"]["ice_conc"]["value"] == pytest.approx(fixture.expected["ice_conc"][2, row, col],
                                                                      rel=1e-6)


def test_dataset_linked_queries(nc_client, nc_app, opendap_server, netcdf_files):
    engine = make_engine(nc_app.effective_database_url)
    with Session(engine, expire_on_commit=False) as session:
        written = ingest_netcdf(session, settings=nc_app, record=make_record(opendap_server, "latlon"),
                                variables=["precip"])
    engine.dispose()
    dataset_id = written["datasets"][0]["dataset_id"]
    response = nc_client.post(f"/datasets/{dataset_id}/query-points",
                              json={"points": [{"lon": 5.1, "lat": 70.1}, {"lon": 50, "lat": 0}]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body["points"][0]["values"]) == ["precip"]  # the variable the raster was written from
    assert body["points"][1]["grid"] is None
    direct = nc_client.post("/datasets/query-point", json={"url": opendap_server.dap_url("latlon"), "lon": 5.1,
                                                            "lat": 70.1, "variables": ["precip"]}).json()
    assert body["points"][0]["values"] == direct["values"]
    assert_error(nc_client.post(f"/datasets/{dataset_id}/query-point", json={"lon": 50, "lat": 0}), 400,
                 "point_outside_grid")
    assert_error(nc_client.post("/datasets/nope/query-point", json={"lon": 5, "lat": 70}), 404, "dataset_not_found")


def test_s1_raster_defaults_to_the_profile_variables(nc_client, nc_app, opendap_server):
    record = make_record(opendap_server, "swath", platform="S1A")
    engine = make_engine(nc_app.effective_database_url)
    with Session(engine, expire_on_commit=False) as session:
        quicklook = ingest_netcdf(session, settings=nc_app, record=record, variables=["Amplitude_VV"])
        raster = rasters.get_raster(session, public_id=quicklook["datasets"][0]["dataset_id"])
        raster.meta = {key: value for key, value in raster.meta.items() if key not in ("netcdf", "reference_url")}
        session.add(raster)
        session.commit()
        public_id = raster.public_id
    engine.dispose()
    answer = nc_client.post(f"/datasets/{public_id}/query-point", json={"lon": 15.5, "lat": 78.9})
    assert answer.status_code == 200, answer.text
    assert list(answer.json()["values"]) == ["Amplitude_VH", "Amplitude_VV"]


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"url": "file:///etc/passwd", "lon": 5, "lat": 70}, 400, "unsupported_url"),
    ({"url": "http://169.254.169.254/latest/x.nc", "lon": 5, "lat": 70}, 403, "download_host_not_allowed"),
    ({"url": "http://10.0.0.8/thredds/dodsC/x.nc", "lon": 5, "lat": 70}, 403, "download_host_not_allowed"),
    ({"url": "/etc/hostname", "lon": 5, "lat": 70}, 403, "outside_mount_roots"),
    ({"url": "gopher://x/y", "lon": 5, "lat": 70}, 400, "unsupported_url"),
    ({"lon": 5, "lat": 70}, 422, None),
    ({"url": "x", "lon": 5, "lat": 91}, 422, None),
    ({"url": "x", "lon": "east", "lat": 70}, 422, None),
])
def test_hostile_url_queries(nc_client, body, status, code):
    assert_error(nc_client.post("/datasets/query-point", json=body), status, code)


def test_hostile_requests_on_the_real_server(nc_client, opendap_server):
    redirect = opendap_server.redirect_url("http://10.0.0.8/thredds/dodsC/x.nc")
    assert_error(nc_client.post("/datasets/query-point", json={"url": redirect, "lon": 5, "lat": 70}), 403,
                 "download_host_not_allowed")
    unknown = assert_error(nc_client.post("/datasets/query-point", json={
        "url": opendap_server.dap_url("latlon"), "lon": 5, "lat": 70, "variables": ["nope"]}), 400, "unknown_variable")
    assert "t2m" in unknown["error"] or "t2m" in str(unknown.get("details"))
    missing = nc_client.post("/datasets/query-point", json={"url": opendap_server.file_url("nothing/x.zip"),
                                                            "lon": 5, "lat": 70})
    assert_error(missing, 404, "source_not_found")
    many = [{"lon": 5, "lat": 70}] * 2001
    assert_error(nc_client.post("/datasets/query-points", json={"url": opendap_server.dap_url("latlon"),
                                                               "points": many}), 413, "too_many_points")
    assert_error(nc_client.post("/datasets/query-points", json={"url": opendap_server.dap_url("latlon"),
                                                               "points": []}), 422)
    assert_error(nc_client.post("/datasets/query-point", json={"url": opendap_server.dap_url("latlon"), "lon": 5,
                                                               "lat": 70, "method": "cubic"}), 422)
