"""Rasters from point clouds and NetCDF x/y/z configs (``/datasets/from-point-cloud-config``, its alias
``/datasets/from-nc-config``): the registered COG against brute force, duplicates, and hostile configs that leave
nothing behind."""

from __future__ import annotations

import laspy
import numpy as np
import pytest
import rasterio

from georeg.core.rasters.service import get_raster, raster_file
from tests.helpers import assert_error
from tests.pointclouds import BOUNDS, CRS, expected, make_points, write_las, write_netcdf, write_xyz

ROUTE = "/datasets/from-point-cloud-config"


@pytest.fixture
def mount(settings, tmp_path):
    folder = tmp_path / "mount"
    folder.mkdir()
    settings.mount_roots = [folder]
    return folder


@pytest.fixture(scope="module")
def points():
    return make_points(2000)


def registered_array(client, settings, dataset_id):
    """The registered file's band 1 and profile, read from where the registry keeps it."""
    from sqlmodel import Session

    from georeg.core.db import make_engine

    engine = make_engine(settings.effective_database_url)
    try:
        with Session(engine) as session:
            path = raster_file(session, settings, get_raster(session, public_id=dataset_id))
    finally:
        engine.dispose()
    with rasterio.open(path) as src:
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        return src.read(1), src.profile, src.transform, src.tags()


def total(client, headers):
    return client.get("/datasets", headers=headers).json()["total"]


@pytest.mark.parametrize("output_type", ["min", "max", "mean", "count", "idw"])
def test_las_grids_match_brute_force(client, admin_headers, settings, mount, points, output_type):
    path = write_las(mount / "cloud.las", *points)
    read = laspy.read(str(path))
    truth = expected(np.asarray(read.x), np.asarray(read.y), np.asarray(read.z), bounds=BOUNDS, resolution=1.0,
                     output_type=output_type)
    response = client.post(ROUTE, json={"source": "cloud.las", "crs": CRS, "resolution": 1,
                                        "output_type": output_type, "title": f"cloud {output_type}"},
                           headers=admin_headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["duplicate_of"] is None and body["source"] == "pointcloud" and body["output_type"] == output_type
    assert body["points"] == points[0].size and body["points_outside"] == 0
    assert (body["width"], body["height"], body["crs"]["epsg"]) == (20, 10, 25833)
    assert body["title"] == f"cloud {output_type}"
    array, profile, transform, tags = registered_array(client, settings, body["dataset_id"])
    assert tuple(transform)[:6] == (1.0, 0.0, 100.0, 0.0, -1.0, 210.0)
    assert profile["crs"].to_epsg() == 25833 and profile["tiled"] and profile["blockxsize"] == 256
    if output_type == "count":
        assert array.dtype == np.uint32 and profile["nodata"] is None
        assert body["cells_with_data"] == np.count_nonzero(truth)
    else:
        assert array.dtype == np.float32 and profile["nodata"] == -9999
        assert body["cells_with_data"] == np.count_nonzero(truth != -9999)
    np.testing.assert_allclose(array, truth.astype(array.dtype), rtol=1e-6)
    assert tags["POINTCLOUD_OUTPUT_TYPE"] == output_type and tags["POINTCLOUD_SOURCE"] == "cloud.las"


def test_laz_bounds_nodata_and_duplicates(client, admin_headers, settings, mount, points):
    write_las(mount / "sub" / "cloud.laz", *points)
    bounds = [104.0, 202.0, 111.5, 208.0]
    config = {"source": str(mount / "sub" / "cloud.laz"), "crs": "EPSG:25833+5941", "resolution": 0.5,
              "bounds": bounds, "output_type": "max", "nodata": -1}
    first = client.post(ROUTE, json=config, headers=admin_headers)
    assert first.status_code == 201, first.text
    body = first.json()
    x, y, z = points
    inside = (x >= 104) & (x <= 111.5) & (y >= 202) & (y <= 208)
    assert body["points"] == inside.sum() and body["points_outside"] == (~inside).sum()
    array, profile, transform, *_ = registered_array(client, settings, body["dataset_id"])
    assert (array.shape, profile["nodata"]) == ((12, 15), -1)
    assert tuple(transform)[:6] == (0.5, 0.0, 104.0, 0.0, -0.5, 208.0)
    np.testing.assert_allclose(array, expected(x, y, z, bounds=bounds, resolution=0.5, output_type="max",
                                               nodata=-1).astype(np.float32))

    again = client.post("/datasets/from-nc-config", json=config, headers=admin_headers)  # the alias
    assert again.status_code == 200 and again.json()["duplicate_of"] == body["dataset_id"]
    assert total(client, admin_headers) == 1
    stored = list((settings.storage_dir / "default" / "registry").rglob("*.tif"))
    assert len(stored) == 1 and stored[0].name == "cloud_max.tif"
    assert list(settings.tmp_dir.iterdir()) == []


def test_xyz_and_netcdf_sources(client, admin_headers, settings, mount, points):
    x, y, z = points
    write_xyz(mount / "points.csv", x, y, z, separator=";", header="X;Y;Z")
    write_xyz(mount / "points.xyz", x, y, z, separator=" ", header=None)
    write_netcdf(mount / "points.nc", x, y, z, names=("east", "north", "elevation"))
    truth = expected(x, y, z, bounds=BOUNDS, resolution=2.0, output_type="mean")
    ids = set()
    for source, route, extra in (("points.csv", ROUTE, {}), ("points.xyz", ROUTE, {}),
                                 ("points.nc", "/datasets/from-nc-config",
                                  {"x_variable": "east", "y_variable": "north", "z_variable": "elevation"})):
        response = client.post(route, json={"source": source, "crs": CRS, "resolution": 2, **extra},
                               headers=admin_headers)
        assert response.status_code in (200, 201), response.text
        ids.add(response.json()["duplicate_of"] or response.json()["dataset_id"])
        array, *_ = registered_array(client, settings, response.json()["dataset_id"])
        np.testing.assert_allclose(array, truth.astype(np.float32), rtol=1e-6)
    assert len(ids) == 3  # the source's name is in the GeoTIFF's tags: three rasters
    assert_error(client.post("/datasets/from-nc-config", json={"source": "points.nc", "crs": CRS, "resolution": 2},
                             headers=admin_headers), 400, "unknown_variable")


def test_hostile_configs_leave_nothing(client, admin_headers, settings, mount, points, tmp_path, make_user):
    write_las(mount / "cloud.las", *points)
    (mount / "junk.las").write_bytes(b"definitely not a point cloud" * 10)
    data = (mount / "cloud.las").read_bytes()
    (mount / "cut.las").write_bytes(data[: len(data) // 2])
    write_las(mount / "empty.las", np.array([]), np.array([]), np.array([]))
    (mount / "garbage.csv").write_text("x,y,z\n1,2,3\n4,oops,6\n")
    (mount / "blank.csv").write_text("\n")
    write_las(tmp_path / "outside.las", *points)
    good = {"source": "cloud.las", "crs": CRS, "resolution": 1}
    cases = [
        ({"crs": CRS, "resolution": 1}, 422, None),
        ({**good, "output_type": "median"}, 422, None),
        ({**good, "resolution": 0}, 422, None),
        ({**good, "resolution": -2}, 422, None),
        ({**good, "bounds": [120, 200, 100, 210]}, 422, None),
        ({**good, "output_type": "count", "nodata": 0}, 422, None),
        ({**good, "crs": "EPSG:0"}, 400, "invalid_crs"),
        ({**good, "crs": "nonsense"}, 400, "invalid_crs"),
        ({**good, "source": str(tmp_path / "outside.las")}, 403, "outside_mount_roots"),
        ({**good, "source": "../outside.las"}, 403, "outside_mount_roots"),
        ({**good, "source": "missing.las"}, 404, "file_not_found"),
        ({**good, "source": "junk.las"}, 400, "invalid_point_cloud"),
        ({**good, "source": "cut.las"}, 400, "invalid_point_cloud"),
        ({**good, "source": "empty.las"}, 400, "empty_point_cloud"),
        ({**good, "source": "garbage.csv"}, 400, "invalid_csv"),
        ({**good, "source": "blank.csv"}, 400, "empty_point_cloud"),
        ({**good, "bounds": [0, 0, 10, 10]}, 400, "no_points"),
        ({**good, "resolution": 0.001}, 413, "grid_too_large"),
    ]
    settings.pointcloud_max_cells = 100_000
    for body, status, code in cases:
        assert_error(client.post(ROUTE, json=body, headers=admin_headers), status, code)
    assert_error(client.post(ROUTE, json=good), 401)
    assert total(client, admin_headers) == 0
    assert list(settings.tmp_dir.iterdir()) == []
    assert not any((settings.storage_dir / "default" / "registry").rglob("*.tif"))
    user = make_user("lidar")  # any signed-in user may grid, as with /datasets/from-string
    assert client.post(ROUTE, json=good, headers=user).status_code == 201
