"""Point-cloud gridding in core: the cell convention and every reduction against brute force, chunk by chunk; the
readers (LAS, LAZ, XYZ text variants, NetCDF); CRS and grid-size checks."""

from __future__ import annotations

import math

import laspy
import numpy as np
import pytest
from pydantic import ValidationError

from georeg.core.config import Settings
from georeg.core.errors import InvalidInput, PayloadTooLarge
from georeg.core.pointclouds.grid import Accumulator, grid_spec
from georeg.core.pointclouds.readers import open_points
from georeg.core.pointclouds.schemas import PointCloudGridConfig
from georeg.core.pointclouds.service import parse_crs
from tests.pointclouds import BOUNDS, expected, make_points, write_las, write_netcdf, write_xyz

TYPES = ["min", "max", "mean", "count", "idw"]


def grid(points, *, bounds=BOUNDS, resolution=1.0, output_type="mean", chunk=700, radius=None, power=1.0):
    spec = grid_spec(bounds, resolution, max_cells=10_000)
    radius = resolution * math.sqrt(2) if radius is None else radius
    accumulator = Accumulator(spec, output_type, radius=radius, power=power)
    x, y, z = points
    for start in range(0, x.size, chunk):
        accumulator.add(x[start:start + chunk], y[start:start + chunk], z[start:start + chunk])
    return accumulator.result(None if output_type == "count" else -9999.0)[0], spec, accumulator


@pytest.mark.parametrize("output_type", TYPES)
@pytest.mark.parametrize(("bounds", "resolution"), [(BOUNDS, 1.0), (BOUNDS, 1.5), ((103.0, 201.5, 111.25, 207.0), 0.5)])
def test_reductions_match_brute_force(output_type, bounds, resolution):
    points = make_points(1500)
    raster, spec, accumulator = grid(points, bounds=bounds, resolution=resolution, output_type=output_type)
    truth = expected(*points, bounds=bounds, resolution=resolution, output_type=output_type)
    assert raster.shape == truth.shape == (spec.height, spec.width)
    assert raster.dtype == (np.uint32 if output_type == "count" else np.float32)
    np.testing.assert_allclose(raster, truth.astype(raster.dtype), rtol=1e-6)
    x, y, _ = points
    inside = (x >= bounds[0]) & (x <= bounds[2]) & (y >= bounds[1]) & (y <= bounds[3])
    assert accumulator.points == inside.sum() and accumulator.outside == (~inside).sum()


def test_cell_convention_on_edges():
    """Points on interior edges go right/up-inclusive as documented; max edges land in the last column/row."""
    x = np.array([100.0, 101.0, 120.0, 120.0, 100.0, 110.0])
    y = np.array([210.0, 209.0, 200.0, 210.0, 200.0, 205.0])
    z = np.arange(1.0, 7.0)
    counts, spec, _ = grid((x, y, z), output_type="count")
    assert (spec.width, spec.height) == (20, 10) and counts.sum() == 6
    assert counts[0, 0] == 1  # (100, 210): the top-left corner
    assert counts[1, 1] == 1  # (101, 209): x on a column edge -> the right column; y on a row edge -> the row below
    assert counts[9, 19] == 1 and counts[0, 19] == 1 and counts[9, 0] == 1  # the other corners, clamped inside
    assert counts[5, 10] == 1  # (110, 205): row 5 covers (204, 205]


def test_idw_exact_centre_and_radius():
    x, y, z = np.array([100.5, 100.5, 101.2]), np.array([209.5, 209.5, 209.5]), np.array([1.0, 3.0, 50.0])
    raster, _, _ = grid((x, y, z), bounds=(100, 206, 104, 210), output_type="idw", radius=0.9, power=2.0)
    assert raster[0, 0] == 2.0  # two points exactly at the centre: their mean
    assert raster[0, 1] == pytest.approx(50.0)  # (101.5, 209.5): only the point 0.3 away is within 0.9
    assert raster[0, 3] == -9999.0 and raster[3, 0] == -9999.0
    raster, _, _ = grid((x, y, z), bounds=(100, 206, 104, 210), output_type="idw", radius=1.0, power=2.0)
    weights = np.array([1.0, 1.0, 1 / 0.3**2])  # the radius is inclusive: the centre points 1.0 away count
    assert raster[0, 1] == pytest.approx((weights * z).sum() / weights.sum(), rel=1e-6)


def test_large_grid_path_matches_small(monkeypatch):
    """Grids much larger than a chunk add with ufunc.at instead of bincount: same answer."""
    points = make_points(800)
    small, _, _ = grid(points, output_type="mean", chunk=10_000)
    monkeypatch.setattr("georeg.core.pointclouds.grid.BINCOUNT_RATIO", 0)
    large, _, _ = grid(points, output_type="mean", chunk=10_000)
    np.testing.assert_array_equal(small, large)


def test_grid_size_limit():
    with pytest.raises(PayloadTooLarge) as caught:
        grid_spec(BOUNDS, 0.01, max_cells=1_000_000)
    assert caught.value.code == "grid_too_large" and caught.value.details["width"] == 2000
    assert grid_spec((5, 5, 5, 5), 1, max_cells=1).cells == 1  # a single point: one cell


@pytest.mark.parametrize("suffix", [".las", ".laz"])
def test_las_reader_in_chunks(tmp_path, suffix):
    points = make_points(2500)
    path = write_las(tmp_path / f"cloud{suffix}", *points)
    with open_points(Settings(data_dir=tmp_path), path, chunk_points=1000) as reader:
        assert reader.kind == "las"
        assert reader.extent() == BOUNDS
        chunks = list(reader.chunks())
        assert [c[0].size for c in chunks] == [1000, 1000, points[0].size - 2000]
        again = list(reader.chunks())  # a second pass starts over
    read = [np.concatenate([c[k] for c in again]) for k in range(3)]
    for got, want in zip(read, points, strict=True):
        np.testing.assert_array_equal(got, want)
    assert laspy.read(str(path)).header.point_count == points[0].size


@pytest.mark.parametrize(("separator", "header"), [(",", "x,y,z"), (";", "X;Y;Z"), (" ", None), ("\t", None),
                                                   (",", "z,id,x,y")])
def test_xyz_reader_variants(tmp_path, separator, header):
    x, y, z = make_points(300)
    if header == "z,id,x,y":  # named columns in another order
        path = tmp_path / "named.csv"
        path.write_text(header + "\n" + "".join(f"{c},{n},{a},{b}\n" for n, (a, b, c) in enumerate(zip(x, y, z,
                                                                                                      strict=True))))
    else:
        path = write_xyz(tmp_path / "points.xyz", x, y, z, separator=separator, header=header)
    with open_points(Settings(data_dir=tmp_path), path, chunk_points=100) as reader:
        assert reader.kind == "csv" and reader.extent() == BOUNDS
        read = [np.concatenate([c[k] for c in reader.chunks()]) for k in range(3)]
    for got, want in zip(read, (x, y, z), strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(("content", "code"), [
    ("x,y,z\n1,2,3\n4,five,6\n", "invalid_csv"), ("1,2\n", "invalid_csv"), ("", "empty_point_cloud"),
    ("# only a comment\n\n", "empty_point_cloud"), ("1 2 3\n4 5\n", "invalid_csv"),
])
def test_bad_xyz(tmp_path, content, code):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(InvalidInput) as caught, open_points(Settings(data_dir=tmp_path), path) as reader:
        list(reader.chunks())
    assert caught.value.code == code


def test_netcdf_reader(tmp_path):
    x, y, z = make_points(400)
    z[5] = np.nan
    path = write_netcdf(tmp_path / "points.nc", x, y, z, names=("east", "north", "height"))
    settings = Settings(data_dir=tmp_path)
    with open_points(settings, path, variables=("east", "north", "height"), chunk_points=150) as reader:
        assert reader.kind == "netcdf" and reader.extent() == BOUNDS
        assert sum(c[0].size for c in reader.chunks()) == x.size
    with pytest.raises(InvalidInput) as caught, open_points(settings, path) as reader:
        pass
    assert caught.value.code == "unknown_variable" and "east" in caught.value.details["available"]


def test_config_validation():
    base = {"source": "a.las", "crs": "EPSG:25833", "resolution": 1}
    assert PointCloudGridConfig(**base).effective_nodata == -9999.0
    assert PointCloudGridConfig(**base, output_type="count").effective_nodata is None
    assert PointCloudGridConfig(**base, output_type="idw").effective_radius == pytest.approx(math.sqrt(2))
    for bad in ({"resolution": 0}, {"resolution": -1}, {"output_type": "median"}, {"bounds": [1, 2, 0, 3]},
                {"bounds": [1, 2, 3]}, {"output_type": "count", "nodata": 0}, {"radius": 2},
                {"output_type": "idw", "power": 0}, {"output_type": "idw", "radius": 8.5}, {"surprise": 1}):
        with pytest.raises(ValidationError):
            PointCloudGridConfig(**{**base, **bad})


def test_parse_crs():
    assert parse_crs("EPSG:25833").to_epsg() == 25833
    assert parse_crs("EPSG:25833+5941").to_epsg() == 25833  # compound: its horizontal part
    assert parse_crs("+proj=utm +zone=33 +datum=WGS84 +units=m +no_defs").is_projected
    for bad in ("EPSG:999999", "not a crs", "EPSG:5941"):
        with pytest.raises(InvalidInput) as caught:
            parse_crs(bad)
        assert caught.value.code == "invalid_crs"
