"""COPC builds of LAS/LAZ files (georeg.core.pointclouds.copc): the files read back with laspy's CopcReader (lazrs)
and copclib hold the source's points and attributes, a connected octree whose levels are voxel-subsampled, and the
CRS; broken sources are 400s and nothing is left behind."""

from __future__ import annotations

import laspy
import numpy as np
import pyproj
import pytest

from georeg.core.errors import InvalidInput
from georeg.core.pointclouds.copc import GRID, GRID_BITS, MAX_DEPTH, assign_levels, validate_copc, write_copc
from tests.pointclouds import CRS, SCALE, make_points, write_las


def _copc(tmp_path, source):
    target = tmp_path / "out" / "cloud.copc.laz"
    report = write_copc(source, target, tmp_path / "work")
    assert target.is_file() and report["valid"] is True
    assert not (tmp_path / "work" / "points.bin").exists() and not (tmp_path / "work" / "cloud.copc.laz").exists()
    return target, report


def _xyz(points) -> np.ndarray:
    """The integer coordinates, sorted (a point set to compare)."""
    xyz = np.stack([np.asarray(points.X), np.asarray(points.Y), np.asarray(points.Z)], axis=1).astype(np.int64)
    return xyz[np.lexsort(xyz.T[::-1])]


def _hierarchy(path):
    import copclib

    reader = copclib.FileReader(str(path))
    try:
        return {(n.key.d, n.key.x, n.key.y, n.key.z): n.point_count for n in reader.GetAllNodes()}
    finally:
        reader.Close()


def test_a_single_point(tmp_path):
    source = write_las(tmp_path / "one.las", np.array([105.5]), np.array([203.25]), np.array([7.0]))
    target, report = _copc(tmp_path, source)
    assert (report["points"], report["nodes"], report["depth"]) == (1, 1, 0)
    with laspy.CopcReader.open(str(target)) as copc:
        points = copc.query()
        assert (float(points.x[0]), float(points.y[0]), float(points.z[0])) == (105.5, 203.25, 7.0)
        assert len(copc.query(bounds=laspy.copc.Bounds(np.array([105.0, 203.0]), np.array([106.0, 204.0])))) == 1
        assert len(copc.query(bounds=laspy.copc.Bounds(np.array([106.0, 203.0]), np.array([107.0, 204.0])))) == 0
    assert _hierarchy(target) == {(0, 0, 0, 0): 1}


@pytest.mark.parametrize("suffix", [".las", ".laz"])
def test_points_octree_and_queries(tmp_path, suffix):
    x, y, z = make_points(50_000)
    source = write_las(tmp_path / f"cloud{suffix}", x, y, z)
    target, report = _copc(tmp_path, source)
    assert report["points"] == x.size and report["pointFormat"] == 7 and report["sourcePointFormat"] == 3
    with laspy.open(str(source)) as original:
        src = original.read().points
    with laspy.CopcReader.open(str(target)) as copc:
        assert copc.header.point_format.id == 7 and str(copc.header.version) == "1.4"
        assert np.allclose(copc.header.scales, [SCALE] * 3) and np.allclose(copc.header.offsets, 0)
        assert np.allclose(copc.header.mins, [x.min(), y.min(), z.min()])
        assert np.allclose(copc.header.maxs, [x.max(), y.max(), z.max()])
        halfsize, center = copc.copc_info.halfsize, copc.copc_info.center
        assert np.allclose(center - halfsize, copc.header.mins)  # the cube starts at the points' minimum
        assert np.isclose(2 * halfsize, max(np.ptp(x), np.ptp(y), np.ptp(z)))
        everything = copc.query()
        assert np.array_equal(_xyz(everything), _xyz(src))
        box = (np.array([104.0, 202.5, 10.0]), np.array([111.25, 207.0, 60.0]))
        inside = (x >= box[0][0]) & (x <= box[1][0]) & (y >= box[0][1]) & (y <= box[1][1]) & (z >= box[0][2]) & (
            z <= box[1][2])
        found = copc.query(bounds=laspy.copc.Bounds(*box))
        assert len(found) == inside.sum() > 0
        assert np.array_equal(_xyz(found), _xyz(src[inside]))
        # every level is a voxel subsample: no two points of a level share a voxel of its GRID³-per-node grid
        span = 2 * halfsize
        levels = [copc.query(level=depth) for depth in range(report["depth"] + 1)]
        assert sum(len(level) for level in levels) == x.size
        for depth, level in enumerate(levels[:-1]):
            cells = np.floor((np.stack([level.x, level.y, level.z], 1) - copc.header.mins) / span * GRID * 2**depth)
            assert len(np.unique(cells, axis=0)) == len(level) > 0
        root = levels[0]
        assert np.ptp(root.x) > 0.9 * np.ptp(x) and np.ptp(root.y) > 0.9 * np.ptp(y)  # spread over the extent
    nodes = _hierarchy(target)
    assert len(nodes) == report["nodes"] and sum(nodes.values()) == x.size
    assert max(key[0] for key in nodes) == report["depth"] > 0
    for depth, kx, ky, kz in nodes:
        assert depth == 0 or (depth - 1, kx // 2, ky // 2, kz // 2) in nodes  # a connected hierarchy


@pytest.mark.parametrize("point_format", [1, 3])
def test_legacy_point_formats_keep_their_attributes(tmp_path, point_format):
    count = 3000
    rng = np.random.default_rng(point_format)
    header = laspy.LasHeader(point_format=point_format, version="1.2")
    header.scales, header.offsets = np.array([0.01, 0.01, 0.001]), np.array([400000.0, 6700000.0, 0.0])
    header.add_crs(pyproj.CRS.from_user_input(CRS))  # GeoTIFF keys in a LAS 1.2 file
    las = laspy.LasData(header)
    las.x, las.y = rng.uniform(400000, 400500, count), rng.uniform(6700000, 6700300, count)
    las.z = rng.uniform(-5, 80, count)
    las.intensity = rng.integers(0, 65535, count)
    las.return_number = rng.integers(1, 6, count)
    las.number_of_returns = np.maximum(las.return_number, rng.integers(1, 6, count))
    las.classification = rng.integers(0, 32, count)
    las.withheld = rng.integers(0, 2, count)
    las.scan_angle_rank = rng.integers(-90, 91, count)
    las.user_data = rng.integers(0, 256, count)
    las.point_source_id = rng.integers(0, 65535, count)
    las.gps_time = np.arange(count) * 0.5 + 1000.0  # unique: identifies the points
    if point_format == 3:
        las.red, las.green, las.blue = (rng.integers(0, 65536, count) for _ in range(3))
    source = tmp_path / "legacy.las"
    las.write(str(source))
    target, report = _copc(tmp_path, source)
    assert (report["sourcePointFormat"], report["pointFormat"]) == (point_format, {1: 6, 3: 7}[point_format])
    assert report["crs"] is True
    with laspy.CopcReader.open(str(target)) as copc:
        points = copc.query()
    order = np.argsort(np.asarray(points.gps_time))
    assert np.array_equal(np.asarray(points.gps_time)[order], las.gps_time)
    for name in ("X", "Y", "Z", "intensity", "return_number", "number_of_returns", "classification", "withheld",
                 "user_data", "point_source_id", *(("red", "green", "blue") if point_format == 3 else ())):
        assert np.array_equal(np.asarray(points[name])[order], np.asarray(las[name])), name
    assert np.array_equal(np.asarray(points.scan_angle)[order], np.round(np.asarray(las.scan_angle_rank) / 0.006))
    assert laspy.read(str(target)).header.parse_crs().to_epsg() == 25833  # copclib writes the WKT as an EVLR


def test_wkt_and_extra_bytes_of_a_las_1_4_source(tmp_path):
    header = laspy.LasHeader(point_format=8, version="1.4")
    header.scales, header.offsets = np.array([0.001] * 3), np.array([10.0, 60.0, 0.0])
    header.add_extra_dim(laspy.ExtraBytesParams(name="amplitude", type=np.float32))
    header.add_crs(pyproj.CRS.from_epsg(4326))
    las = laspy.LasData(header)
    rng = np.random.default_rng(3)
    las.x, las.y, las.z = rng.uniform(10, 11, 500), rng.uniform(60, 60.5, 500), rng.uniform(0, 2, 500)
    las.nir = rng.integers(0, 65536, 500)
    las.amplitude = rng.random(500).astype(np.float32)
    source = tmp_path / "wkt.laz"
    las.write(str(source))
    target, report = _copc(tmp_path, source)
    assert report["pointFormat"] == 8 and report["droppedDimensions"] == ["amplitude"]
    read = laspy.read(str(target))
    assert read.header.parse_crs().to_epsg() == 4326
    order, original = np.lexsort((read.Z, read.Y, read.X)), np.lexsort((las.Z, las.Y, las.X))
    assert np.array_equal(np.asarray(read.nir)[order], np.asarray(las.nir)[original])


def test_duplicate_points_go_to_the_deepest_level(tmp_path):
    source = write_las(tmp_path / "same.las", np.full(300, 110.0), np.full(300, 205.0), np.full(300, 3.0))
    target, report = _copc(tmp_path, source)
    assert report["points"] == 300 and report["depth"] == MAX_DEPTH
    with laspy.CopcReader.open(str(target)) as copc:
        assert len(copc.query()) == 300
        assert len(copc.query(level=MAX_DEPTH)) == 300 - MAX_DEPTH


def test_node_cap_pushes_points_deeper():
    rng = np.random.default_rng(5)
    fine = rng.integers(0, 1 << 21, size=(20_000, 3)).astype(np.uint32)
    levels = assign_levels(fine, node_cap=1000)
    nodes = np.right_shift(fine, (MAX_DEPTH - levels.astype(np.uint32) + GRID_BITS)[:, None])
    _, per_node = np.unique(np.column_stack([levels, nodes]), axis=0, return_counts=True)
    assert per_node.max() == 1000 and levels.max() < MAX_DEPTH
    assert np.bincount(levels)[0] == 1000  # the root is one node
    uncapped = assign_levels(fine)
    assert np.bincount(uncapped)[0] == len(np.unique(fine >> MAX_DEPTH, axis=0))  # one point a root voxel


def test_broken_sources_are_invalid_point_clouds(tmp_path):
    x, y, z = make_points(20_000)
    whole = write_las(tmp_path / "whole.las", x, y, z).read_bytes()
    (tmp_path / "truncated.las").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "fake.laz").write_bytes(b"not a point cloud at all")
    (tmp_path / "header.las").write_bytes(whole[:100])
    for name in ("truncated.las", "fake.laz", "header.las"):
        with pytest.raises(InvalidInput) as caught:
            write_copc(tmp_path / name, tmp_path / "out" / name, tmp_path / "work")
        assert caught.value.code == "invalid_point_cloud", (name, caught.value.message)
        assert not (tmp_path / "out" / name).exists()
    assert not (tmp_path / "work" / "points.bin").exists()
    empty = write_las(tmp_path / "empty.las", np.array([]), np.array([]), np.array([]))
    with pytest.raises(InvalidInput) as caught:
        write_copc(empty, tmp_path / "out" / "empty", tmp_path / "work")
    assert caught.value.code == "empty_point_cloud"


def test_a_damaged_copc_does_not_validate(tmp_path):
    x, y, z = make_points(5000)
    target, report = _copc(tmp_path, write_las(tmp_path / "c.las", x, y, z))
    data = target.read_bytes()
    damaged = tmp_path / "damaged.copc.laz"
    damaged.write_bytes(data[: len(data) - 200])
    sums = {"X": int(np.round(x / SCALE).sum()), "Y": int(np.round(y / SCALE).sum()),
            "Z": int(np.round(z / SCALE).sum())}
    mins, maxs = np.array([x.min(), y.min(), z.min()]), np.array([x.max(), y.max(), z.max()])
    assert validate_copc(target, total=x.size, mins=mins, maxs=maxs, checksums=sums)["nodes"] == report["nodes"]
    with pytest.raises(InvalidInput) as caught:
        validate_copc(damaged, total=x.size, mins=mins, maxs=maxs, checksums=sums)
    assert caught.value.code == "build_invalid"
    with pytest.raises(InvalidInput) as caught:
        validate_copc(target, total=x.size, mins=mins, maxs=maxs, checksums={**sums, "X": sums["X"] + 1})
    assert caught.value.code == "build_invalid"
