"""pytest plugin: NetCDF files built with netCDF4 and a real OPeNDAP server (xpublish + xpublish-opendap).

Registered from ``tests/conftest.py`` (``pytest_plugins``); everything is session-scoped and built on first use.

Fixtures
--------
``netcdf_files`` (session) -> :class:`NetcdfFiles`: files under ``.root`` with their truth (:class:`NcFixture`):
    ``polar``  CF polar stereographic (EPSG:3413 parameters) ``grid_mapping``, 1-D x/y in metres with y
               *ascending* (rows must be flipped), 3 time steps; ``ice_conc`` int16 packed (scale 0.01,
               offset 0.5, ``_FillValue`` -32767) and ``sst`` float32 (``missing_value`` -999).
    ``latlon`` regular lat/lon grid with latitude *descending*, ``lat_bnds``/``lon_bnds`` cell edges, 2 time
               steps; ``t2m`` float32 (``_FillValue`` NaN, ``latitude_longitude`` grid mapping), ``precip`` and
               ``soil_temp`` (time, depth, lat, lon: three depths become bands);
               ``station_count`` (1-D) and ``ghost_grid`` (names a grid mapping the file lacks) are not gridded.
    ``swath``  S1-like: 2-D ``lat``/``lon`` (y, x), ``GCP_*`` vectors, ``Amplitude_VV``/``Amplitude_VH`` uint16
               (time, y, x), ``_FillValue`` 0, values above 32767 (unsigned over DAP2).
    ``broken`` bytes that start like NetCDF-3 and are not; ``login.nc.dds`` (an HTML page where a DDS should be:
               ``file_url("login.nc.html")`` is an "OPeNDAP" URL that is not one).
    ``global360`` a global 1° grid with longitudes 0..360 (``tas`` float32) for wrap-around queries.
    ``lcc``    Lambert conformal conic ``grid_mapping``, x/y in *kilometres*; ``height`` float32.
    ``utm``    transverse Mercator (UTM 33N) ``grid_mapping``, x/y in metres, y descending; ``depth`` float64.
``opendap_server`` (session) -> :class:`OpendapServer`: ``tests/opendap_server.py`` in its own process on a free
    port, THREDDS-like: ``dap_url(name)`` (``/thredds/dodsC/<file>``), ``file_url(name)``
    (``/thredds/fileServer/<file>``), ``redirect_url(to)`` (302, path kept), ``host`` (for
    ``GEOREG_DOWNLOAD_HOSTS``).
``netcdf_record`` -> factory ``(fixture_name, *, opendap=True, download=True, platform=None)`` of a
    :class:`~georeg.core.catalog.csw.CswRecord` whose references point at the server.

The builders (``write_polar``, ``write_latlon``, ``write_swath``) write a file anywhere, for other tests.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest
from affine import Affine
from pyproj import CRS

from georeg.core.catalog.csw import CswRecord, Reference, classify_reference

SERVER = Path(__file__).resolve().with_name("opendap_server.py")
START_TIMEOUT = 60.0
EPSG_3413_CF = {"grid_mapping_name": "polar_stereographic", "straight_vertical_longitude_from_pole": -45.0,
                "latitude_of_projection_origin": 90.0, "standard_parallel": 70.0, "false_easting": 0.0,
                "false_northing": 0.0, "semi_major_axis": 6378137.0, "inverse_flattening": 298.257223563}
FIXTURE_NAMES = ("polar", "latlon", "swath", "global360", "lcc", "utm")
S1_PRODUCT = "S1A_EW_GRDM_1SDV_20240227T070021_20240227T070128_052741_0661BB_2E43"


@dataclass
class NcFixture:
    """A NetCDF file and what a GeoTIFF of each variable must hold (north-up, unpacked, NaN where missing)."""

    name: str
    path: Path
    expected: dict[str, np.ndarray]
    crs: CRS
    transform: Affine | None = None
    lat: np.ndarray | None = None
    lon: np.ndarray | None = None
    times: list[str] = field(default_factory=list)

    @property
    def filename(self) -> str:
        return self.path.name


def _time(nc, count: int) -> list[str]:
    nc.createDimension("time", count)
    variable = nc.createVariable("time", "f8", ("time",))
    variable.units, variable.standard_name, variable.calendar = "hours since 2024-02-27 00:00:00", "time", "standard"
    variable[:] = np.arange(count) * 6.0
    return [f"2024-02-27T{6 * index:02d}:00:00" for index in range(count)]


def _coordinate(nc, name: str, values: np.ndarray, **attrs) -> None:
    nc.createDimension(name, len(values))
    variable = nc.createVariable(name, "f8", (name,))
    variable.setncatts(attrs)
    variable[:] = values


def write_polar(path: Path) -> NcFixture:
    """EPSG:3413-like grid, y ascending (south row first), packed int16 with fill, 3 time steps."""
    import netCDF4

    rows, cols, step = 12, 16, 25_000.0
    xs = -800_000.0 + step * (np.arange(cols) + 0.5)
    ys = -1_200_000.0 + step * (np.arange(rows) + 0.5)
    rng = np.random.default_rng(3413)
    packed = rng.integers(0, 10_000, size=(3, rows, cols)).astype("i2")
    packed[:, 0, 0] = -32767
    packed[1, 5, 7] = -32767
    sst = rng.normal(271.0, 2.0, size=(3, rows, cols)).astype("f4")
    sst[:, 3, 3] = -999.0
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.Conventions = "CF-1.8"
        times = _time(nc, 3)
        _coordinate(nc, "x", xs, standard_name="projection_x_coordinate", units="m", axis="X")
        _coordinate(nc, "y", ys, standard_name="projection_y_coordinate", units="m", axis="Y")
        crs = nc.createVariable("polar_stereographic", "i4")
        crs.setncatts(EPSG_3413_CF)
        ice = nc.createVariable("ice_conc", "i2", ("time", "y", "x"), fill_value=np.int16(-32767))
        ice.setncatts({"scale_factor": np.float32(0.01), "add_offset": np.float32(0.5), "units": "%",
                       "long_name": "sea ice concentration", "grid_mapping": "polar_stereographic"})
        ice.set_auto_maskandscale(False)
        ice[:] = packed
        temperature = nc.createVariable("sst", "f4", ("time", "y", "x"))
        temperature.setncatts({"missing_value": np.float32(-999.0), "units": "K",
                               "long_name": "sea surface temperature", "standard_name": "sea_surface_temperature",
                               "grid_mapping": "polar_stereographic"})
        temperature[:] = sst
    unpacked = np.where(packed == -32767, np.nan,
                        packed.astype("f4") * np.float32(0.01) + np.float32(0.5)).astype("f8")
    return NcFixture(
        name="polar", path=path, crs=CRS.from_cf(EPSG_3413_CF), times=times,
        expected={"ice_conc": unpacked[:, ::-1, :], "sst": np.where(sst == -999.0, np.nan, sst)[:, ::-1, :]},
        transform=Affine(step, 0, -800_000.0, 0, -step, -1_200_000.0 + step * rows),
    )


def write_latlon(path: Path) -> NcFixture:
    """A 0.25° lat/lon grid, latitude descending, with cell bounds; 2 time steps."""
    import netCDF4

    rows, cols, step = 20, 24, 0.25
    lats = 72.0 - step * (np.arange(rows) + 0.5)
    lons = 4.0 + step * (np.arange(cols) + 0.5)
    rng = np.random.default_rng(4326)
    t2m = rng.normal(265.0, 5.0, size=(2, rows, cols)).astype("f4")
    t2m[0, 2, :4] = np.nan
    precip = rng.gamma(2.0, 1.5, size=(rows, cols)).astype("f4")
    precip[7, 9] = -999.0
    soil_temp = rng.normal(270.0, 3.0, size=(2, 3, rows, cols)).astype("f4")
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        times = _time(nc, 2)
        _coordinate(nc, "lat", lats, standard_name="latitude", units="degrees_north", bounds="lat_bnds")
        _coordinate(nc, "lon", lons, standard_name="longitude", units="degrees_east", bounds="lon_bnds")
        nc.createDimension("nv", 2)
        lat_bnds = nc.createVariable("lat_bnds", "f8", ("lat", "nv"))
        lat_bnds[:] = np.stack([lats + step / 2, lats - step / 2], axis=1)
        lon_bnds = nc.createVariable("lon_bnds", "f8", ("lon", "nv"))
        lon_bnds[:] = np.stack([lons - step / 2, lons + step / 2], axis=1)
        crs = nc.createVariable("crs", "i4")
        crs.setncatts({"grid_mapping_name": "latitude_longitude", "semi_major_axis": 6378137.0,
                       "inverse_flattening": 298.257223563})
        temperature = nc.createVariable("t2m", "f4", ("time", "lat", "lon"), fill_value=np.float32(np.nan))
        temperature.setncatts({"units": "K", "long_name": "2 m temperature", "grid_mapping": "crs"})
        temperature[:] = t2m
        rain = nc.createVariable("precip", "f4", ("lat", "lon"))
        rain.setncatts({"units": "mm", "long_name": "precipitation", "missing_value": np.float32(-999.0)})
        rain[:] = precip
        station = nc.createVariable("station_count", "i4", ("time",))
        station[:] = [3, 4]
        _coordinate(nc, "depth", np.array([0.05, 0.2, 1.0]), units="m", positive="down", axis="Z")
        soil = nc.createVariable("soil_temp", "f4", ("time", "depth", "lat", "lon"))
        soil.setncatts({"units": "K", "long_name": "soil temperature", "grid_mapping": "crs"})
        soil[:] = soil_temp
        ghost = nc.createVariable("ghost_grid", "f4", ("lat", "lon"))
        ghost.grid_mapping = "no_such_crs"
        ghost[:] = np.zeros((rows, cols), dtype="f4")
    return NcFixture(
        name="latlon", path=path, crs=CRS.from_epsg(4326), times=times,
        expected={"t2m": t2m.astype("f8"), "precip": np.where(precip == -999.0, np.nan, precip)[None].astype("f8"),
                  "soil_temp": soil_temp.astype("f8")},
        transform=Affine(step, 0, 4.0, 0, -step, 72.0),
    )


def swath_lonlat(rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A sheared, rotated swath near Svalbard (linear in pixel space, so GCPs reproduce it exactly)."""
    lon = 15.0 + 0.02 * cols + 0.006 * rows
    lat = 79.0 - 0.008 * rows + 0.003 * cols
    return lon, lat


def write_swath(path: Path, *, rows: int = 45, cols: int = 61) -> NcFixture:
    """S1-like NetCDF: ``Amplitude_VV``/``Amplitude_VH`` uint16 on 2-D lat/lon, ``GCP_*`` vectors."""
    import netCDF4

    grid_rows, grid_cols = np.meshgrid(np.arange(rows) + 0.5, np.arange(cols) + 0.5, indexing="ij")
    lon, lat = swath_lonlat(grid_rows, grid_cols)
    rng = np.random.default_rng(1)
    amplitudes = {pol: rng.integers(1, 65_535, size=(1, rows, cols), dtype="u2") for pol in ("VV", "VH")}
    for amplitude in amplitudes.values():
        amplitude[0, :, :3] = 0
        amplitude[0, 0, 10] = 40_000
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.title, nc.platform = f"Sentinel-1A {S1_PRODUCT}", "Sentinel-1A"
        times = _time(nc, 1)
        nc.createDimension("y", rows)
        nc.createDimension("x", cols)
        for name, values, units in (("lat", lat, "degrees_north"), ("lon", lon, "degrees_east")):
            variable = nc.createVariable(name, "f4", ("y", "x"))
            variable.setncatts({"units": units, "standard_name": "latitude" if name == "lat" else "longitude"})
            variable[:] = values
        gcp_rows, gcp_cols = np.meshgrid(np.arange(0, rows, 11), np.arange(0, cols, 15), indexing="ij")
        nc.createDimension("gcp_index", gcp_rows.size)
        gcp_lon, gcp_lat = swath_lonlat(gcp_rows.ravel() + 0.5, gcp_cols.ravel() + 0.5)
        for name, values in (("GCP_pixel_VV", gcp_cols.ravel()), ("GCP_line_VV", gcp_rows.ravel()),
                             ("GCP_latitude_VV", gcp_lat), ("GCP_longitude_VV", gcp_lon)):
            nc.createVariable(name, "f4", ("gcp_index",))[:] = values
        for pol, amplitude in amplitudes.items():
            variable = nc.createVariable(f"Amplitude_{pol}", "u2", ("time", "y", "x"), fill_value=np.uint16(0))
            variable.setncatts({"long_name": f"Amplitude {pol}-polarisation", "units": "1",
                                "coordinates": "lat lon", "polarisation": pol})
            variable[:] = amplitude
    expected = {f"Amplitude_{pol}": np.where(a == 0, np.nan, a.astype("f8")) for pol, a in amplitudes.items()}
    return NcFixture(name="swath", path=path, crs=CRS.from_epsg(4326), expected=expected, lat=lat, lon=lon,
                     times=times)


def _projected(path: Path, name: str, mapping: dict, xs: np.ndarray, ys: np.ndarray, units: str, var: str,
               seed: int) -> NcFixture:
    """A projected grid with a CF ``grid_mapping`` and 1-D x/y axes (in ``units``), one float32 variable."""
    import netCDF4

    values = np.random.default_rng(seed).normal(100.0, 20.0, size=(len(ys), len(xs))).astype("f4")
    values[2, 3] = -9999.0
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        _coordinate(nc, "x", xs, standard_name="projection_x_coordinate", units=units, axis="X")
        _coordinate(nc, "y", ys, standard_name="projection_y_coordinate", units=units, axis="Y")
        crs = nc.createVariable("crs", "i4")
        crs.setncatts(mapping)
        variable = nc.createVariable(var, "f4", ("y", "x"), fill_value=np.float32(-9999.0))
        variable.setncatts({"units": "m", "long_name": f"{var} test field", "grid_mapping": "crs"})
        variable[:] = values
    scale = 1000.0 if units == "km" else 1.0
    return NcFixture(name=name, path=path, crs=CRS.from_cf(mapping),
                     expected={var: np.where(values == -9999.0, np.nan, values).astype("f8")},
                     lon=xs * scale, lat=ys * scale)


def write_lcc(path: Path) -> NcFixture:
    mapping = {"grid_mapping_name": "lambert_conformal_conic", "standard_parallel": [63.3, 63.3],
               "longitude_of_central_meridian": 15.0, "latitude_of_projection_origin": 63.3,
               "earth_radius": 6371000.0}
    return _projected(path, "lcc", mapping, -300.0 + 2.5 * (np.arange(40) + 0.5), -200.0 + 2.5 * (np.arange(30) + 0.5),
                      "km", "height", 2500)


def write_utm(path: Path) -> NcFixture:
    mapping = {"grid_mapping_name": "transverse_mercator", "longitude_of_central_meridian": 15.0,
               "latitude_of_projection_origin": 0.0, "scale_factor_at_central_meridian": 0.9996,
               "false_easting": 500000.0, "false_northing": 0.0, "semi_major_axis": 6378137.0,
               "inverse_flattening": 298.257223563}
    return _projected(path, "utm", mapping, 400_000.0 + 1000.0 * (np.arange(25) + 0.5),
                      8_700_000.0 - 1000.0 * (np.arange(20) + 0.5), "m", "depth", 32633)


def write_global360(path: Path) -> NcFixture:
    """A global 1° grid, longitudes 0.5..359.5, latitudes ascending."""
    import netCDF4

    lats, lons = -89.5 + np.arange(180), 0.5 + np.arange(360)
    values = np.random.default_rng(360).normal(280.0, 10.0, size=(180, 360)).astype("f4")
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        _coordinate(nc, "lat", lats, standard_name="latitude", units="degrees_north")
        _coordinate(nc, "lon", lons, standard_name="longitude", units="degrees_east")
        variable = nc.createVariable("tas", "f4", ("lat", "lon"))
        variable.setncatts({"units": "K", "long_name": "air temperature"})
        variable[:] = values
    return NcFixture(name="global360", path=path, crs=CRS.from_epsg(4326), expected={"tas": values.astype("f8")},
                     lat=lats, lon=lons)


@dataclass
class NetcdfFiles:
    root: Path
    polar: NcFixture
    latlon: NcFixture
    swath: NcFixture
    broken: Path
    global360: NcFixture
    lcc: NcFixture
    utm: NcFixture

    def __getitem__(self, name: str) -> NcFixture:
        return getattr(self, name)

    @property
    def served(self) -> list[NcFixture]:
        return [self.polar, self.latlon, self.swath, self.global360, self.lcc, self.utm]


def build_files(root: Path) -> NetcdfFiles:
    root.mkdir(parents=True, exist_ok=True)
    broken = root / "broken.nc"
    broken.write_bytes(b"CDF\x01" + bytes(range(256)) * 8)
    (root / "login.nc.dds").write_text("<!DOCTYPE html><html><body>Please log in</body></html>")
    return NetcdfFiles(root=root, polar=write_polar(root / "polar_3413.nc"),
                       latlon=write_latlon(root / "era_latlon.nc"), swath=write_swath(root / f"{S1_PRODUCT}.nc"),
                       broken=broken, global360=write_global360(root / "global360.nc"),
                       lcc=write_lcc(root / "lcc_km.nc"), utm=write_utm(root / "utm33.nc"))


@dataclass
class OpendapServer:
    base_url: str
    files: NetcdfFiles
    process: subprocess.Popen
    log_path: Path

    @property
    def host(self) -> str:
        return self.base_url.split("://", 1)[1]

    def dap_url(self, name: str) -> str:
        """The OPeNDAP URL of a fixture (``polar``, ``latlon``, ``swath``) or of any file name."""
        return f"{self.base_url}/thredds/dodsC/{self._filename(name)}"

    def file_url(self, name: str) -> str:
        """The download URL of a fixture or of any file under the files' root (``broken.nc``)."""
        return f"{self.base_url}/thredds/fileServer/{self._filename(name)}"

    def _filename(self, name: str) -> str:
        return self.files[name].filename if name in FIXTURE_NAMES else name

    def redirect_url(self, to: str) -> str:
        """A URL answering 302 to ``to`` (``http://`` only); DAP suffixes appended to it are kept."""
        return f"{self.base_url}/redirect/{to.split('://', 1)[1]}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_opendap(files: NetcdfFiles, log_path: Path) -> Iterator[OpendapServer]:
    """The OPeNDAP + file server over ``files`` in its own process, stopped on exit."""
    port = free_port()
    arguments = [f"{fixture.filename}={fixture.path}" for fixture in files.served]
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, str(SERVER), "--port", str(port), "--root", str(files.root),
                                    *arguments], stdout=log, stderr=subprocess.STDOUT)
    server = OpendapServer(base_url=f"http://127.0.0.1:{port}", files=files, process=process, log_path=log_path)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the OPeNDAP server exited: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{server.base_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the OPeNDAP server did not start in {START_TIMEOUT}s: "
                                   f"{log_path.read_text()[-2000:]}")
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def make_record(server: OpendapServer, name: str, *, opendap: bool = True, download: bool = True,
                platform: str | None = None) -> CswRecord:
    """A CSW record of a fixture with NBS-like references (OPeNDAP ``.html`` form and a fileServer download)."""
    references = []
    if opendap:
        references.append(("OPeNDAP:OPeNDAP", server.dap_url(name) + ".html"))
    if download:
        references.append(("WWW:DOWNLOAD-1.0-http--download", server.file_url(name)))
    references.append(("OGC:WMS", f"{server.base_url}/wms?service=WMS&request=GetCapabilities"))
    identifier = server.files[name].path.stem
    return CswRecord(
        identifier=identifier, title=identifier, platform=platform,
        references=[Reference(scheme=scheme, url=url, kind=classify_reference(scheme, url))
                    for scheme, url in references],
        temporal_extent={"start": "2024-02-27T00:00:00Z", "end": "2024-02-27T12:00:00Z"},
    )


@pytest.fixture(scope="session")
def netcdf_files(tmp_path_factory: pytest.TempPathFactory) -> NetcdfFiles:
    return build_files(tmp_path_factory.mktemp("netcdf") / "files")


@pytest.fixture(scope="session")
def opendap_server(netcdf_files: NetcdfFiles, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpendapServer]:
    with running_opendap(netcdf_files, tmp_path_factory.mktemp("opendap") / "server.log") as server:
        yield server


@pytest.fixture
def netcdf_record(opendap_server: OpendapServer):
    """Factory of CSW records pointing at the OPeNDAP/file server (see :func:`make_record`)."""

    def _make(name: str, **options) -> CswRecord:
        return make_record(opendap_server, name, **options)

    return _make
