"""NetCDF -> GeoTIFF: values, CRS, geotransform, nodata and swath GCPs against the fixtures' truth, read through a
real OPeNDAP server (xpublish-opendap), as a download and from disk; plans, registration and hostile sources."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from sqlmodel import Session, select

from georeg.api.errors import status_for
from georeg.core.bootstrap import bootstrap
from georeg.core.catalog.csw import CswRecord, Reference, classify_reference
from georeg.core.catalog.netcdf_ingest import ingest_netcdf, plan_netcdf
from georeg.core.config import Settings
from georeg.core.db import make_engine
from georeg.core.errors import GeoregError
from georeg.core.models import Raster
from georeg.core.netcdf.source import dap_base, list_variables, open_netcdf, source_name, url_kind
from georeg.core.netcdf.to_geotiff import write_variable
from georeg.core.storage import TEMP_PREFIX
from tests.helpers import truncate_all
from tests.netcdf_fixtures import swath_lonlat

SOURCES = ["opendap", "download", "local"]


@pytest.fixture
def nc_settings(tmp_path: Path, opendap_server) -> Settings:
    return Settings(data_dir=tmp_path / "data", download_hosts=[opendap_server.host], csw_timeout_seconds=20,
                    admin_password="admin-pw", secret_key="k", password_hash_memory_kib=64, password_hash_time_cost=1)


@pytest.fixture
def registry(nc_settings: Settings, database_urls: dict[str, str]):
    """An emptied, bootstrapped SQLite registry for ``nc_settings`` (no Prefect needed)."""
    nc_settings.database_url = database_urls["sqlite"]
    engine = make_engine(nc_settings.effective_database_url)
    truncate_all(engine)
    bootstrap(nc_settings, engine)
    with Session(engine, expire_on_commit=False) as session:
        yield session
    engine.dispose()


def source_of(server, name: str, kind: str):
    """What :func:`open_netcdf` is given for a fixture read as ``kind``."""
    if kind == "opendap":
        return server.dap_url(name)
    if kind == "download":
        return server.file_url(name)
    return server.files[name].path


def convert(settings: Settings, source, variable: str, destination: Path, **options) -> dict:
    with open_netcdf(settings, source) as opened:
        return write_variable(opened, variable, destination, **options)


def read_masked(path: Path) -> tuple[np.ndarray, dict]:
    """The first band as float with nodata as NaN, and the GeoTIFF's profile."""
    with rasterio.open(path) as dataset:
        data = dataset.read(1).astype("f8")
        if dataset.nodata is not None:
            data[dataset.read(1) == dataset.nodata] = np.nan
        return data, dataset.profile


def assert_same_crs(crs_wkt: str, truth) -> None:
    """Equivalent CRSs: the same point projects to the same place in both."""
    ours = Transformer.from_crs("EPSG:4326", crs_wkt, always_xy=True)
    theirs = Transformer.from_crs("EPSG:4326", truth, always_xy=True)
    for lon, lat in ((-45.0, 75.0), (10.0, 65.0), (120.0, 80.0)):
        assert np.allclose(ours.transform(lon, lat), theirs.transform(lon, lat), atol=1e-3)


GRIDS = {"polar": (("ice_conc", "sst"), "polar_stereographic"), "latlon": (("t2m", "precip"), "crs")}


@pytest.mark.parametrize("kind", SOURCES)
@pytest.mark.parametrize("name", list(GRIDS))
def test_regular_grids(name, kind, opendap_server, nc_settings, tmp_path):
    """Polar stereographic with y ascending (flipped north-up); lat/lon with latitude descending and bounds."""
    truth = opendap_server.files[name]
    variables, mapping = GRIDS[name]
    for variable in variables:
        out = tmp_path / f"{variable}.tif"
        details = convert(nc_settings, source_of(opendap_server, name, kind), variable, out)
        data, profile = read_masked(out)
        expected = truth.expected[variable][0]
        np.testing.assert_allclose(data, expected, rtol=1e-6, equal_nan=True)
        assert np.isnan(data).sum() == np.isnan(expected).sum() > 0
        assert profile["transform"].almost_equals(truth.transform)
        assert_same_crs(profile["crs"].to_wkt(), truth.crs)
        assert details["georeferencing"] == "geotransform"
        if variable != "precip":  # the one without a time dimension and a grid_mapping
            assert details["time"] == truth.times[0] and details["grid_mapping"] == mapping
    assert (profile["crs"].to_epsg() == 4326) == (name == "latlon")


def test_packed_values_unpack_to_the_fill_as_nodata(opendap_server, nc_settings, tmp_path):
    out = tmp_path / "ice.tif"
    convert(nc_settings, opendap_server.files.polar.path, "ice_conc", out)
    with rasterio.open(out) as dataset:
        assert dataset.dtypes[0] == "float32"
        assert dataset.nodata == pytest.approx(-32767 * 0.01 + 0.5, rel=1e-6)
        assert dataset.descriptions == ("ice_conc",) and dataset.tags()["NETCDF_UNITS"] == "%"
        bottom_left = dataset.read(1)[-1, 0]
    assert bottom_left == np.float32(dataset.nodata)


@pytest.mark.parametrize("kind", ["opendap", "local"])
def test_time_index(kind, opendap_server, nc_settings, tmp_path):
    truth = opendap_server.files.polar
    source = source_of(opendap_server, "polar", kind)
    for index, expected in ((1, 1), (2, 2), (-1, 2)):
        out = tmp_path / f"t{index}.tif"
        details = convert(nc_settings, source, "ice_conc", out, time_index=index)
        assert details["time_index"] == expected and details["time"] == truth.times[expected]
        np.testing.assert_allclose(read_masked(out)[0], truth.expected["ice_conc"][expected], rtol=1e-6,
                                   equal_nan=True)
    with pytest.raises(GeoregError) as raised:
        convert(nc_settings, source, "ice_conc", tmp_path / "t9.tif", time_index=3)
    assert raised.value.code == "invalid_time_index" and status_for(raised.value) == 400


@pytest.mark.parametrize("kind", ["opendap", "download"])
def test_swath_as_gcps(kind, opendap_server, nc_settings, tmp_path):
    truth = opendap_server.files.swath
    source = source_of(opendap_server, "swath", kind)
    out = tmp_path / "vv.tif"
    details = convert(nc_settings, source, "Amplitude_VV", out)
    assert details["georeferencing"] == "gcps"
    with rasterio.open(out) as dataset:
        values = dataset.read(1)
        gcps, gcp_crs = dataset.gcps
        assert dataset.dtypes[0] == "uint16" and dataset.nodata == 0 and dataset.transform.is_identity
    expected = truth.expected["Amplitude_VV"][0]
    np.testing.assert_array_equal(values, np.nan_to_num(expected, nan=0).astype("u2"))
    assert values.max() > 32767
    assert gcp_crs.to_epsg() == 4326
    rows, cols = values.shape
    corners = {(0.5, 0.5), (0.5, cols - 0.5), (rows - 0.5, 0.5), (rows - 0.5, cols - 0.5)}
    assert corners <= {(gcp.row, gcp.col) for gcp in gcps} and 100 <= len(gcps) <= 21 * 21
    for gcp in gcps:
        lon, lat = swath_lonlat(np.float64(gcp.row), np.float64(gcp.col))
        assert gcp.x == pytest.approx(lon, abs=1e-4) and gcp.y == pytest.approx(lat, abs=1e-4)


@pytest.mark.parametrize("kind", ["opendap", "local"])
def test_extra_dimension_as_bands(kind, opendap_server, nc_settings, tmp_path):
    truth = opendap_server.files.latlon
    out = tmp_path / "soil.tif"
    details = convert(nc_settings, source_of(opendap_server, "latlon", kind), "soil_temp", out, time_index=1)
    assert details["band_dimension"] == "depth" and details["time"] == truth.times[1]
    with rasterio.open(out) as dataset:
        np.testing.assert_allclose(dataset.read(), truth.expected["soil_temp"][1], rtol=1e-6)
        assert dataset.descriptions == ("soil_temp[depth=0]", "soil_temp[depth=1]", "soil_temp[depth=2]")
        assert dataset.units == ("K", "K", "K") and dataset.transform.almost_equals(truth.transform)


def test_opendap_redirect_within_allowed_hosts(opendap_server, nc_settings, tmp_path):
    target = opendap_server.dap_url("latlon")
    with open_netcdf(nc_settings, opendap_server.redirect_url(target)) as source:
        assert source.location == target and source.kind == "opendap"
        write_variable(source, "precip", tmp_path / "p.tif")
    np.testing.assert_allclose(read_masked(tmp_path / "p.tif")[0], opendap_server.files.latlon.expected["precip"][0],
                               rtol=1e-6, equal_nan=True)


def test_list_variables(opendap_server, nc_settings):
    with open_netcdf(nc_settings, opendap_server.dap_url("latlon")) as source:
        infos = {info.name: info for info in list_variables(source)}
    assert infos["t2m"].gridded and infos["t2m"].units == "K" and infos["t2m"].long_name == "2 m temperature"
    assert infos["t2m"].dimensions == ["time", "lat", "lon"] and infos["t2m"].georeferencing == "geotransform"
    assert infos["crs"].role == "grid_mapping" and infos["lat"].role == "coordinate"
    assert infos["lat_bnds"].role == "auxiliary" and not infos["station_count"].gridded
    with open_netcdf(nc_settings, opendap_server.files.swath.path) as source:
        infos = {info.name: info for info in list_variables(source)}
    assert {name for name, info in infos.items() if info.gridded} == {"Amplitude_VV", "Amplitude_VH"}
    assert infos["lat"].role == "auxiliary" and infos["Amplitude_VH"].georeferencing == "gcps"


def test_urls():
    assert dap_base("https://nbs.met.no/thredds/dodsC/a/b.nc.html?x#y") == "https://nbs.met.no/thredds/dodsC/a/b.nc"
    assert url_kind("https://nbs.met.no/thredds/dodsC/a/b.nc") == "opendap"
    assert url_kind("https://nbs.met.no/thredds/fileServer/a/b.nc") == "download"
    assert url_kind("https://nbs.met.no/thredds/fileServer/a/b.zip") is None
    assert source_name("https://nbs.met.no/thredds/dodsC/a/S1A_x.nc.html") == "S1A_x"


def test_plan_netcdf(opendap_server, nc_settings, netcdf_record):
    plan = plan_netcdf(nc_settings, netcdf_record("swath", platform="S1A"))
    assert plan.kind == "opendap" and plan.url == opendap_server.dap_url("swath")
    assert plan.variables == ["Amplitude_VH", "Amplitude_VV"]
    assert {info.name for info in plan.available} == {"Amplitude_VV", "Amplitude_VH"}
    generic = plan_netcdf(nc_settings, netcdf_record("latlon"))
    assert generic.variables == ["t2m", "precip", "soil_temp"]
    chosen = plan_netcdf(nc_settings, netcdf_record("latlon"), [" precip ", "precip"])
    assert chosen.variables == ["precip"]
    download = plan_netcdf(nc_settings, netcdf_record("polar", opendap=False), ["sst"])
    assert (download.kind, download.url, download.variables) == ("download", opendap_server.file_url("polar"), ["sst"])
    assert plan_netcdf(nc_settings, netcdf_record("polar"), inspect=False).variables is None


@pytest.mark.parametrize(("case", "status", "code"), [
    ("no_netcdf", 404, "no_netcdf"),
    ("disallowed_host", 403, "download_host_not_allowed"),
    ("unknown_variable", 400, "unknown_variable"),
    ("not_gridded", 400, "variable_not_gridded"),
    ("missing_grid_mapping", 400, "variable_not_gridded"),
    ("bad_name", 400, "invalid_variables"),
])
def test_plan_errors(case, status, code, nc_settings, netcdf_record):
    record, variables = netcdf_record("latlon"), None
    if case == "no_netcdf":
        record = netcdf_record("latlon", opendap=False, download=False)
    elif case == "disallowed_host":
        nc_settings.download_hosts = ["nbs.met.no"]
    elif case == "unknown_variable":
        variables = ["t2m", "no_such_thing"]
    elif case == "not_gridded":
        variables = ["station_count"]
    elif case == "missing_grid_mapping":
        variables = ["ghost_grid"]
    else:
        variables = ["bad\nname"]
    with pytest.raises(GeoregError) as raised:
        plan_netcdf(nc_settings, record, variables)
    assert (status_for(raised.value), raised.value.code) == (status, code), raised.value.message
    if case == "unknown_variable":
        assert "no_such_thing" in raised.value.message and "t2m" in raised.value.details["available"]
    if case == "missing_grid_mapping":
        assert "no_such_crs" in raised.value.message


def registered(session: Session) -> list[Raster]:
    return list(session.exec(select(Raster).order_by(Raster.id)).all())


def test_ingest_registers_every_variable(registry, nc_settings, netcdf_record):
    record = netcdf_record("polar", platform="S3A")
    seen = []
    result = ingest_netcdf(registry, settings=nc_settings, record=record, endpoint="https://csw.example/csw",
                           report=lambda percent, phase, message: seen.append((phase, message)))
    assert result["kind"] == "opendap" and result["variables"] == ["ice_conc", "sst"]
    assert [item["variable"] for item in result["datasets"]] == ["ice_conc", "sst"]
    rasters = registered(registry)
    assert len(rasters) == 2 and {r.source for r in rasters} == {"csw"}
    assert {r.source_identifier for r in rasters} == {record.identifier} and rasters[0].platform == "S3A"
    meta = rasters[0].meta
    assert meta["netcdf"]["variable"] == "ice_conc" and meta["reference_url"] == result["url"]
    assert meta["csw_endpoint"] == "https://csw.example/csw" and meta["profile"] == "sentinel-3"
    assert rasters[0].title.endswith("ice_conc_t0") and rasters[0].acquired_at is not None
    assert ("converting", "ice_conc") in seen and ("converting", "sst") in seen and seen[-1][0] == "registering"
    again = ingest_netcdf(registry, settings=nc_settings, record=record, url=netcdf_record("polar").references[1].url)
    assert [item["duplicate_of"] for item in again["datasets"]] == [r.public_id for r in rasters]
    assert len(registered(registry)) == 2
    assert not list(nc_settings.tmp_dir.glob(f"{TEMP_PREFIX}*"))


def test_opendap_reference_that_looks_like_a_file(registry, nc_settings, opendap_server):
    """A Hyrax-style OPeNDAP URL ends in .nc: the record's reference scheme decides how it is read."""
    url = f"{opendap_server.base_url}/opendap/hyrax/{opendap_server.files.latlon.filename}"
    record = CswRecord(identifier="hyrax-latlon", references=[Reference(scheme="OPENDAP:OPENDAP", url=url,
                                                                        kind=classify_reference("OPENDAP:OPENDAP"))])
    plan = plan_netcdf(nc_settings, record, ["precip"])
    assert (plan.kind, plan.url) == ("opendap", url)
    result = ingest_netcdf(registry, settings=nc_settings, record=record, url=plan.url, variables=plan.variables)
    assert result["kind"] == "opendap" and len(registered(registry)) == 1


@pytest.mark.parametrize(("case", "status", "code"), [
    ("unknown_variable", 400, "unknown_variable"),
    ("fails_midway", 400, "invalid_time_index"),
    ("disallowed_host", 403, "download_host_not_allowed"),
    ("redirect_to_disallowed", 403, "download_host_not_allowed"),
    ("redirect_to_disallowed_download", 403, "download_host_not_allowed"),
    ("broken_download", 400, "invalid_netcdf"),
    ("missing_opendap", 502, "opendap_unavailable"),
    ("not_opendap", 502, "not_opendap"),
])
def test_hostile_ingest_registers_nothing(case, status, code, registry, nc_settings, netcdf_record, opendap_server):
    record, url, options = netcdf_record("latlon"), None, {}
    if case == "unknown_variable":
        options["variables"] = ["precip", "nope"]
    elif case == "fails_midway":
        options.update(variables=["precip", "t2m"], time_index=5)
    elif case == "disallowed_host":
        url = "https://evil.example/thredds/dodsC/x.nc"
    elif case == "redirect_to_disallowed":
        url = opendap_server.redirect_url("http://169.254.169.254/thredds/dodsC/x.nc")
    elif case == "redirect_to_disallowed_download":
        url = opendap_server.redirect_url("http://169.254.169.254/thredds/fileServer/x.nc")
    elif case == "broken_download":
        url = opendap_server.file_url("broken.nc")
    elif case == "missing_opendap":
        url = opendap_server.dap_url("missing.nc")
    else:
        url = opendap_server.file_url("login.nc.html")
    with pytest.raises(GeoregError) as raised:
        ingest_netcdf(registry, settings=nc_settings, record=record, url=url, **options)
    assert (status_for(raised.value), raised.value.code) == (status, code), raised.value.message
    assert registered(registry) == []
    assert not list(nc_settings.tmp_dir.glob(f"{TEMP_PREFIX}*"))
    assert not list(nc_settings.storage_dir.rglob("*.tif")) if nc_settings.storage_dir.exists() else True
