"""NetCDF point queries against truth computed here by brute force over every grid cell: regular lat/lon
(descending latitude, 0..360 longitudes), projected grids (polar stereographic, LCC in km, UTM), a curvilinear
swath, packed data with fill values, time steps; windowed and coarse-to-fine paths; hostile requests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pyproj import Transformer

from georeg.core.config import Settings
from georeg.core.errors import GeoregError, PayloadTooLarge
from georeg.core.netcdf import points as engine
from georeg.core.netcdf.points import PointsQuery, query_source
from georeg.core.netcdf.source import open_netcdf

RNG = np.random.default_rng(20261205)


@pytest.fixture
def local_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


def cell_centres(fixture, variable: str) -> tuple[np.ndarray, np.ndarray]:
    """lon, lat of every cell centre in the file's array order (rows, cols)."""
    import netCDF4

    with netCDF4.Dataset(fixture.path) as nc:
        if fixture.name == "swath":
            return np.asarray(nc["lon"][:], "f8"), np.asarray(nc["lat"][:], "f8")
        dims = nc[variable].dimensions[-2:]
        ys, xs = np.asarray(nc[dims[0]][:], "f8"), np.asarray(nc[dims[1]][:], "f8")
        if fixture.name in ("latlon", "global360"):
            lon, lat = np.meshgrid(xs, ys)
            return lon, lat
        scale = 1000.0 if str(nc[dims[1]].units) == "km" else 1.0
        x, y = np.meshgrid(xs * scale, ys * scale)
        lon, lat = Transformer.from_crs(fixture.crs, "EPSG:4326", always_xy=True).transform(x, y)
        return np.asarray(lon), np.asarray(lat)


def file_values(fixture, variable: str, index: tuple = ()) -> np.ndarray:
    """The variable as stored in array order, unpacked, NaN where filled (netCDF4's own decoding)."""
    import netCDF4

    with netCDF4.Dataset(fixture.path) as nc:
        data = np.ma.asarray(nc[variable][index] if index else nc[variable][:], dtype="f8")
    return np.ma.filled(np.ma.masked_invalid(data), np.nan)


def random_points(lon: np.ndarray, lat: np.ndarray, count: int, jitter: float = 0.4) -> list[dict]:
    """Points near random cell centres, moved by up to ``jitter`` of the local cell spacing."""
    rows = RNG.integers(0, lon.shape[0], count)
    cols = RNG.integers(0, lon.shape[1], count)
    dlon = np.abs(np.gradient(lon, axis=1))[rows, cols] + np.abs(np.gradient(lon, axis=0))[rows, cols]
    dlat = np.abs(np.gradient(lat, axis=0))[rows, cols] + np.abs(np.gradient(lat, axis=1))[rows, cols]
    return [{"lon": float(lon[r, c] + RNG.uniform(-jitter, jitter) * dlon[k] / 2),
             "lat": float(lat[r, c] + RNG.uniform(-jitter, jitter) * dlat[k] / 2)}
            for k, (r, c) in enumerate(zip(rows, cols, strict=True))]


def brute_nearest(fixture, variable: str, lon: np.ndarray, lat: np.ndarray, point: dict) -> tuple[int, int]:
    """The nearest cell: on the sphere for a swath, in the grid's own coordinates for 1-D axes."""
    if fixture.name == "swath":
        distance = np.full(lon.shape, np.inf)
        for r in range(lon.shape[0]):
            for c in range(lon.shape[1]):
                distance[r, c] = engine.great_circle_m(point["lon"], point["lat"], lon[r, c], lat[r, c])
        return np.unravel_index(int(np.argmin(distance)), lon.shape)
    import netCDF4

    with netCDF4.Dataset(fixture.path) as nc:
        dims = nc[variable].dimensions[-2:]
        ys, xs = np.asarray(nc[dims[0]][:], "f8"), np.asarray(nc[dims[1]][:], "f8")
        if fixture.name in ("latlon", "global360"):
            qx = (point["lon"] - xs + 180.0) % 360.0 - 180.0
            return int(np.argmin(np.abs(point["lat"] - ys))), int(np.argmin(np.abs(qx)))
        scale = 1000.0 if str(nc[dims[1]].units) == "km" else 1.0
    qx, qy = Transformer.from_crs("EPSG:4326", fixture.crs, always_xy=True).transform(point["lon"], point["lat"])
    return int(np.argmin(np.abs(qy - ys * scale))), int(np.argmin(np.abs(qx - xs * scale)))


def query(settings: Settings, path: Path, pts: list[dict], **options) -> engine.PointsValues:
    request = PointsQuery(points=pts, **options)
    with open_netcdf(settings, path) as source:
        return query_source(source, request.points, request, defaults=[])


CASES = [("global360", "tas", ()), ("latlon", "t2m", (0,)), ("swath", "Amplitude_VV", (0,)),
         ("polar", "ice_conc", (0,)), ("lcc", "height", ()), ("utm", "depth", ())]


@pytest.mark.parametrize(("name", "variable", "index"), CASES, ids=[case[0] for case in CASES])
def test_nearest_matches_brute_force(netcdf_files, local_settings, name, variable, index):
    fixture = netcdf_files[name]
    lon, lat = cell_centres(fixture, variable)
    values = file_values(fixture, variable, index)
    pts = random_points(lon, lat, 60)
    answer = query(local_settings, fixture.path, pts, variables=[variable])
    assert answer.count == 60 and [(p.lon, p.lat) for p in answer.points] == [(p["lon"], p["lat"]) for p in pts]
    for point, got in zip(pts, answer.points, strict=True):
        row, col = brute_nearest(fixture, variable, lon, lat, point)
        assert got.grid is not None, point
        assert tuple(got.grid.indices.values()) == (row, col), point
        expected = values[row, col]
        value = got.values[variable].value
        assert (value is None) if np.isnan(expected) else value == pytest.approx(expected, rel=1e-6), point
        assert got.grid.distance_m == pytest.approx(
            float(engine.great_circle_m(point["lon"], point["lat"], lon[row, col], lat[row, col])), abs=1.0)


def bilinear_truth(axis_x: np.ndarray, axis_y: np.ndarray, values: np.ndarray, qx: float, qy: float) -> float:
    """Bilinear between the four centres around (qx, qy) on 1-D axes (either direction), by explicit search."""
    def bracket(axis: np.ndarray, q: float) -> tuple[int, int, float]:
        best = None
        for i in range(len(axis) - 1):
            lo, hi = axis[i], axis[i + 1]
            if min(lo, hi) <= q <= max(lo, hi):
                best = (i, i + 1, (q - lo) / (hi - lo))
        return best

    c0, c1, tx = bracket(axis_x, qx)
    r0, r1, ty = bracket(axis_y, qy)
    return float((values[r0, c0] * (1 - tx) + values[r0, c1] * tx) * (1 - ty)
                 + (values[r1, c0] * (1 - tx) + values[r1, c1] * tx) * ty)


def test_bilinear_matches_formula_on_regular_grids(netcdf_files, local_settings):
    fixture = netcdf_files.global360
    values = file_values(fixture, "tas")
    pts = [{"lon": float(lon), "lat": float(lat)} for lon, lat in RNG.uniform([1, -88], [359, 88], size=(40, 2))]
    answer = query(local_settings, fixture.path, pts, variables=["tas"], method="bilinear")
    for point, got in zip(pts, answer.points, strict=True):
        truth = bilinear_truth(fixture.lon, fixture.lat, values, point["lon"], point["lat"])
        assert got.values["tas"].value == pytest.approx(truth, rel=1e-9)
    utm = netcdf_files.utm
    depth = file_values(utm, "depth")
    lon, lat = cell_centres(utm, "depth")
    pts = random_points(lon[1:-1, 1:-1], lat[1:-1, 1:-1], 30)
    answer = query(local_settings, utm.path, pts, variables=["depth"], method="bilinear")
    forward = Transformer.from_crs("EPSG:4326", utm.crs, always_xy=True)
    for point, got in zip(pts, answer.points, strict=True):
        qx, qy = forward.transform(point["lon"], point["lat"])
        truth = bilinear_truth(utm.lon, utm.lat, depth, qx, qy)
        if np.isnan(truth):  # a missing corner: renormalised over the others
            assert got.values["depth"].value is not None
        else:
            assert got.values["depth"].value == pytest.approx(truth, rel=1e-9)


def test_bilinear_at_cell_centres_is_the_cell_value(netcdf_files, local_settings):
    for name, variable, index in CASES:
        fixture = netcdf_files[name]
        lon, lat = cell_centres(fixture, variable)
        values = file_values(fixture, variable, index)
        cells = [(r, c) for r, c in zip(RNG.integers(0, lon.shape[0], 15), RNG.integers(0, lon.shape[1], 15),
                                        strict=True) if np.isfinite(values[r, c])]
        pts = [{"lon": float(lon[r, c]), "lat": float(lat[r, c])} for r, c in cells]
        answer = query(local_settings, fixture.path, pts, variables=[variable], method="bilinear")
        for (r, c), got in zip(cells, answer.points, strict=True):
            assert got.values[variable].value == pytest.approx(values[r, c], rel=1e-6, abs=1e-6), (name, r, c)


def test_longitudes_wrap_to_the_grids_convention(netcdf_files, local_settings):
    fixture = netcdf_files.global360
    answer = query(local_settings, fixture.path, [{"lon": -170.2, "lat": 10.3}, {"lon": 189.8, "lat": 10.3},
                                                  {"lon": -0.2, "lat": 0.3}])
    first, second, seam = answer.points
    assert first.grid.lon == 189.5 and first.grid.indices == {"lat": 100, "lon": 189}
    assert first.values == second.values
    assert seam.grid.lon == 359.5
    latlon = netcdf_files.latlon  # a regional 4..10°E grid: -355.5 is 4.5
    answer = query(local_settings, latlon.path, [{"lon": 4.5 - 360, "lat": 70.0}, {"lon": 4.5, "lat": 70.0}],
                   variables=["t2m"])
    assert answer.points[0].values == answer.points[1].values and answer.points[0].grid is not None


def test_time_steps_packed_values_and_fill(netcdf_files, local_settings):
    fixture = netcdf_files.polar
    lon, lat = cell_centres(fixture, "ice_conc")
    centre = {"lon": float(lon[5, 7]), "lat": float(lat[5, 7])}
    corner = {"lon": float(lon[0, 0]), "lat": float(lat[0, 0])}
    for when, step in ((None, 0), ("2024-02-27T07:00:00Z", 1), ("2030-01-01T00:00:00Z", 2)):
        answer = query(local_settings, fixture.path, [centre, corner], variables=["ice_conc", "sst"], time=when)
        stored = file_values(fixture, "ice_conc", (step,))
        assert answer.points[0].time == fixture.times[step]
        expected = stored[5, 7]
        got = answer.points[0].values["ice_conc"]
        assert (got.value is None) if np.isnan(expected) else got.value == pytest.approx(expected, rel=1e-6)
        assert got.units == "%" and got.long_name == "sea ice concentration"
        assert answer.points[1].values["ice_conc"].value is None  # _FillValue -32767 in every step
    assert query(local_settings, fixture.path, [centre], variables=["ice_conc"],
                 time="2024-02-27T06:00:00Z").points[0].values["ice_conc"].value is None  # filled in step 1 only
    levels = query(local_settings, netcdf_files.latlon.path, [{"lon": 5.1, "lat": 70.1}], variables=["soil_temp"])
    assert len(levels.points[0].values["soil_temp"].value) == 3


def test_outside_points_are_null_and_a_single_one_is_400(netcdf_files, local_settings, tmp_path):
    answer = query(local_settings, netcdf_files.latlon.path, [{"lon": 30.0, "lat": 70.0}, {"lon": 5.1, "lat": 70.1}],
                   variables=["t2m"])
    assert answer.points[0].grid is None and answer.points[0].values["t2m"].value is None
    assert answer.points[1].grid is not None
    swath = query(local_settings, netcdf_files.swath.path, [{"lon": 0.0, "lat": 0.0}])
    assert swath.points[0].grid is None
    settings = Settings(data_dir=tmp_path / "d", mount_roots=[netcdf_files.root])
    with pytest.raises(GeoregError) as outside:
        engine.query_url_point(settings, engine.UrlPointQuery(url=str(netcdf_files.latlon.path), lon=30, lat=70))
    assert outside.value.code == "point_outside_grid"


def test_windowed_and_coarse_to_fine_paths_agree(netcdf_files, local_settings, monkeypatch):
    swath = netcdf_files.swath
    lon, lat = cell_centres(swath, "Amplitude_VV")
    pts = random_points(lon, lat, 80)
    direct = query(local_settings, swath.path, pts)
    monkeypatch.setattr(engine, "MAX_WINDOW_CELLS", 16)
    monkeypatch.setattr(engine, "TILE", 8)
    monkeypatch.setattr(engine, "MAX_SWATH_CELLS", 50)
    tiled = query(local_settings, swath.path, pts)
    assert [p.model_dump() for p in tiled.points] == [p.model_dump() for p in direct.points]


def test_hostile_requests(netcdf_files, tmp_path):
    settings = Settings(data_dir=tmp_path / "d", mount_roots=[netcdf_files.root], query_max_points=5)
    path = str(netcdf_files.latlon.path)

    def code_of(**request) -> str:
        with pytest.raises(GeoregError) as caught:
            engine.query_url(settings, engine.UrlPointsQuery(**request))
        return caught.value.code

    assert code_of(url=path, points=[{"lon": 5, "lat": 70}], variables=["nope"]) == "unknown_variable"
    with pytest.raises(GeoregError) as caught:
        engine.query_url(settings, engine.UrlPointsQuery(url=path, points=[{"lon": 5, "lat": 70}],
                                                         variables=["nope"]))
    assert "t2m" in caught.value.details["available"]
    assert code_of(url=path, points=[{"lon": 5, "lat": 70}], variables=["station_count"]) == "variable_not_gridded"
    with pytest.raises(PayloadTooLarge):
        engine.query_url(settings, engine.UrlPointsQuery(url=path, points=[{"lon": 5, "lat": 70}] * 6))
    assert code_of(url="file:///etc/passwd", points=[{"lon": 5, "lat": 70}]) == "unsupported_url"
    assert code_of(url="/etc/hostname", points=[{"lon": 5, "lat": 70}]) == "outside_mount_roots"
    assert code_of(url=str(netcdf_files.broken), points=[{"lon": 5, "lat": 70}]) == "invalid_netcdf"
    assert code_of(url="http://10.1.2.3/x.nc", points=[{"lon": 5, "lat": 70}]) == "download_host_not_allowed"
    listed = Settings(data_dir=tmp_path / "e", download_hosts=["localhost"])
    with pytest.raises(GeoregError) as inward:
        engine.query_url(listed, engine.UrlPointsQuery(url="http://localhost/x.nc", points=[{"lon": 5, "lat": 70}]))
    assert inward.value.code == "address_not_allowed"
