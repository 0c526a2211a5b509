"""pytest plugin: a HySpex campaign in a real pycsw and its NetCDFs on a real OPeNDAP server.

Registered from ``tests/conftest.py`` (``pytest_plugins``); session-scoped, built on first use.

Fixtures
--------
``hyspex_files`` (session) -> :class:`HyspexFiles`: under ``.root``, 25 HySpex-like child NetCDFs (``.children``,
    :class:`HyspexCube` each) and ``not_hyspex.nc`` (an elevation grid without a wavelength coordinate). A child:
    dims ``band`` (186) x ``y`` (20) x ``x`` (24); ``reflectance`` float32 (band, y, x), ``_FillValue`` -9999
    (a 3x4 block missing in every band, one pixel missing in band 74 only); ``wavelength`` (band) in nm
    (401.7 + 3.23 i, standard_name ``radiation_wavelength``), so the bands nearest 640/550/460 nm are 74/46/18;
    ``elevation`` float32 (y, x), standard_name ``surface_altitude``, ``_FillValue`` -9999 (one pixel missing);
    2 m cells in UTM 33N (EPSG:32633) via a CF ``crs`` grid mapping, y descending (row 0 is north).
``hyspex_opendap`` (session) -> :class:`tests.netcdf_fixtures.OpendapServer` over those files
    (``/thredds/dodsC/<file>``, ``/thredds/fileServer/<file>``).
``hyspex_catalogue`` (session) -> :class:`tests.nbs_catalogue.NbsCatalogue`: the campaign record
    (``HYSPEX_PARENT``), its 25 children (gmd:parentIdentifier, an OPeNDAP and a download reference each), a record
    without any NetCDF reference (``NO_NETCDF``) and one whose NetCDF has no wavelength (``NOT_HYSPEX``).
``hyspex_csw`` (session) -> ``str``: the URL of a pycsw process of its own loaded with that catalogue.
``hyspex_settings`` -> ``settings`` pointed at that CSW and OPeNDAP server.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from pyproj import CRS

from tests.csw_fixtures import running_pycsw
from tests.nbs_catalogue import NbsCatalogue, NbsRecord, NbsReference
from tests.netcdf_fixtures import OpendapServer, running_opendap

BANDS, ROWS, COLS, CELL = 186, 20, 24, 2.0
FILL = -9999.0
CHILDREN = 25
HYSPEX_PARENT = "hyspex-svalbard-2026-campaign"
NO_NETCDF = "hyspex-svalbard-2026-no-netcdf"
NOT_HYSPEX = "hyspex-svalbard-2026-not-hyspex"
SUBJECTS = ("EARTH SCIENCE > SPECTRAL/ENGINEERING > VISIBLE WAVELENGTHS", "HySpex", "VNIR-1800", "hyperspectral")


def wavelengths() -> np.ndarray:
    return 401.7 + 3.23 * np.arange(BANDS)


@dataclass
class HyspexCube:
    """One child file and its truth: ``reflectance`` (band, y, x) with NaN where missing, ``elevation`` (y, x)
    with NaN where missing, north-up, and the UTM transform."""

    identifier: str
    path: Path
    reflectance: np.ndarray
    elevation: np.ndarray
    transform: Affine

    @property
    def filename(self) -> str:
        return self.path.name


def write_hyspex(path: Path, *, seed: int, x0: float, y0: float, wavelength: bool = True) -> HyspexCube:
    import netCDF4

    rng = np.random.default_rng(seed)
    cube = rng.uniform(0.0, 0.6, size=(BANDS, ROWS, COLS)).astype("f4")
    cube[:, 0:3, 0:4] = FILL
    cube[74, 10, 10] = FILL
    elevation = rng.uniform(0.0, 500.0, size=(ROWS, COLS)).astype("f4")
    elevation[5, 7] = FILL
    xs = x0 + CELL * (np.arange(COLS) + 0.5)
    ys = y0 - CELL * (np.arange(ROWS) + 0.5)
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.Conventions = "CF-1.8"
        nc.title = f"HySpex VNIR-1800 {path.stem}"
        for name, values, standard_name in (("x", xs, "projection_x_coordinate"), ("y", ys, "projection_y_coordinate")):
            nc.createDimension(name, len(values))
            variable = nc.createVariable(name, "f8", (name,))
            variable.setncatts({"standard_name": standard_name, "units": "m", "axis": name.upper()})
            variable[:] = values
        crs = nc.createVariable("crs", "i4")
        crs.setncatts(CRS.from_epsg(32633).to_cf())
        nc.createDimension("band", BANDS)
        band = nc.createVariable("band", "i4", ("band",))
        band[:] = np.arange(1, BANDS + 1)
        if wavelength:
            wl = nc.createVariable("wavelength", "f8", ("band",))
            wl.setncatts({"units": "nm", "standard_name": "radiation_wavelength", "long_name": "band centre"})
            wl[:] = wavelengths()
            data = nc.createVariable("reflectance", "f4", ("band", "y", "x"), fill_value=np.float32(FILL))
            data.setncatts({"units": "1", "long_name": "surface reflectance", "grid_mapping": "crs",
                            "coordinates": "wavelength"})
            data[:] = cube
        z = nc.createVariable("elevation", "f4", ("y", "x"), fill_value=np.float32(FILL))
        z.setncatts({"units": "m", "standard_name": "surface_altitude", "grid_mapping": "crs"})
        z[:] = elevation
    return HyspexCube(identifier=path.stem, path=path, reflectance=np.where(cube == FILL, np.nan, cube).astype("f8"),
                      elevation=np.where(elevation == FILL, np.nan, elevation).astype("f8"),
                      transform=Affine(CELL, 0, x0, 0, -CELL, y0))


@dataclass
class HyspexFiles:
    root: Path
    children: list[HyspexCube]
    not_hyspex: HyspexCube

    @property
    def served(self) -> list[HyspexCube]:
        return [*self.children, self.not_hyspex]

    def child(self, identifier: str) -> HyspexCube:
        return next(cube for cube in self.children if cube.identifier == identifier)


def child_identifier(line: int) -> str:
    return f"hyspex-svalbard-2026-line-{line:03d}"


@pytest.fixture(scope="session")
def hyspex_files(tmp_path_factory: pytest.TempPathFactory) -> HyspexFiles:
    root = tmp_path_factory.mktemp("hyspex") / "files"
    root.mkdir(parents=True)
    children = [write_hyspex(root / f"{child_identifier(line)}.nc", seed=line, x0=430_000.0 + 100.0 * line,
                             y0=8_760_000.0) for line in range(1, CHILDREN + 1)]
    other = write_hyspex(root / f"{NOT_HYSPEX}.nc", seed=999, x0=420_000.0, y0=8_760_000.0, wavelength=False)
    return HyspexFiles(root=root, children=children, not_hyspex=other)


@pytest.fixture(scope="session")
def hyspex_opendap(hyspex_files: HyspexFiles, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpendapServer]:
    with running_opendap(hyspex_files, tmp_path_factory.mktemp("hyspex-opendap") / "server.log") as server:
        yield server


def _record(identifier: str, title: str, *, parent: str | None, references: tuple[NbsReference, ...],
            kind: str, begin: str) -> NbsRecord:
    return NbsRecord(identifier=identifier, title=title, abstract=f"{title}: HySpex VNIR-1800 airborne campaign",
                     subjects=SUBJECTS, begin=begin, end=begin, bbox=(11.0, 78.8, 12.6, 79.1), parent_identifier=parent,
                     platform=None, kind=kind, hierarchy_level="dataset" if parent else "series", references=references)


def _netcdf_references(server: OpendapServer, filename: str, line: int) -> tuple[NbsReference, ...]:
    return (NbsReference(("OPeNDAP:OPeNDAP", "OPENDAP:OPENDAP")[line % 2], server.dap_url(filename), "OPeNDAP access",
                         "opendap"),
            NbsReference("WWW:DOWNLOAD-1.0-http--download", server.file_url(filename), "NetCDF download", "download"))


@pytest.fixture(scope="session")
def hyspex_catalogue(hyspex_opendap: OpendapServer, hyspex_files: HyspexFiles) -> NbsCatalogue:
    landing = NbsReference("WWW:LINK-1.0-http--link", f"{hyspex_opendap.base_url}/campaign", "Landing page", "other")
    records = [_record(HYSPEX_PARENT, "HySpex VNIR-1800 campaign, Svalbard, 2026", parent=None, references=(landing,),
                       kind="hyspex-parent", begin="2026-07-14T00:00:00Z")]
    for line, cube in enumerate(hyspex_files.children, start=1):
        records.append(_record(cube.identifier, f"HySpex flight line {line:03d}", parent=HYSPEX_PARENT,
                               references=_netcdf_references(hyspex_opendap, cube.filename, line),
                               kind="hyspex-child", begin=f"2026-07-15T10:{line:02d}:00Z"))
    records.append(_record(NO_NETCDF, "HySpex flight line without data", parent=None, references=(landing,),
                           kind="hyspex-child", begin="2026-07-16T10:00:00Z"))
    records.append(_record(NOT_HYSPEX, "Elevation grid, not hyperspectral", parent=None,
                           references=_netcdf_references(hyspex_opendap, hyspex_files.not_hyspex.filename, 0),
                           kind="hyspex-child", begin="2026-07-16T11:00:00Z"))
    return NbsCatalogue(base_url=hyspex_opendap.base_url, records=tuple(records))


@pytest.fixture(scope="session")
def hyspex_csw(pycsw_python: Path, hyspex_catalogue: NbsCatalogue,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    try:
        with running_pycsw(pycsw_python, hyspex_catalogue, tmp_path_factory.mktemp("hyspex-pycsw")) as server:
            yield server.url
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def hyspex_settings(settings, hyspex_csw: str, hyspex_opendap: OpendapServer):
    """``settings`` with the HySpex CSW as the (only) catalogue and the OPeNDAP server as download host."""
    settings.csw_endpoints = [hyspex_csw]
    settings.download_hosts = [hyspex_opendap.host]
    settings.csw_timeout_seconds = 10.0
    return settings


def nearest_bands(targets: tuple[float, ...] = (640.0, 550.0, 460.0)) -> list[int]:
    return [int(np.argmin(np.abs(wavelengths() - target))) for target in targets]


def rgb_truth(cube: HyspexCube, low: float = 2.0, high: float = 98.0) -> np.ndarray:
    """The 8-bit RGB the rgb variant must hold, computed here from the cube: a pixel missing in any of the three
    bands is 0 everywhere; valid ones are ``1 + 254 * (v - p_low) / (p_high - p_low)`` rounded, clipped to 1..255,
    with the percentiles of that band's valid pixels."""
    planes = cube.reflectance[nearest_bands()]
    missing = np.isnan(planes).any(axis=0)
    out = np.zeros(planes.shape, dtype=np.uint8)
    for index, plane in enumerate(planes):
        lo, hi = np.percentile(plane[~missing], [low, high])
        out[index][~missing] = np.clip(np.rint(1 + 254 * (plane[~missing] - lo) / (hi - lo)), 1, 255)
    return out


def iso_record(record: NbsRecord):
    """The :class:`~georeg.core.catalog.csw.CswRecord` georeg reads from that record's ISO 19139 document."""
    from lxml import etree

    from georeg.core.catalog.csw import record_from_iso

    return record_from_iso(etree.fromstring(record.iso19139()))
