"""HySpex children without Prefect: the plan over OPeNDAP, the rgb/z conversion against numpy truth, all-or-none
registration, the missing-variants listing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from sqlmodel import Session, select

from georeg.core.bootstrap import bootstrap
from georeg.core.catalog.hyspex import ingest_hyspex, missing_variants, plan_hyspex, registered_variants
from georeg.core.config import Settings
from georeg.core.db import make_engine
from georeg.core.errors import InvalidInput, NotFound
from georeg.core.models import Raster
from georeg.core.rasters import service as rasters
from tests.helpers import truncate_all
from tests.hyspex_fixtures import NO_NETCDF, NOT_HYSPEX, iso_record, nearest_bands, rgb_truth, wavelengths


@pytest.fixture
def hx_settings(tmp_path: Path, hyspex_opendap) -> Settings:
    return Settings(data_dir=tmp_path / "data", download_hosts=[hyspex_opendap.host], csw_timeout_seconds=20,
                    admin_password="admin-pw", secret_key="k", password_hash_memory_kib=64, password_hash_time_cost=1)


@pytest.fixture
def registry(hx_settings: Settings, database_urls: dict[str, str]):
    hx_settings.database_url = database_urls["sqlite"]
    engine = make_engine(hx_settings.effective_database_url)
    truncate_all(engine)
    bootstrap(hx_settings, engine)
    with Session(engine, expire_on_commit=False) as session:
        yield session
    engine.dispose()


def stored(settings: Settings, session: Session, dataset_id: str) -> Path:
    raster = rasters.get_raster(session, public_id=dataset_id)
    (path,) = [p for p in settings.storage_dir.rglob("*.tif") if raster.sha256[:12] in str(p)]
    return path


def test_plan_reads_bands_and_elevation_over_opendap(hx_settings, hyspex_catalogue, hyspex_files):
    record = iso_record(hyspex_catalogue.get(hyspex_files.children[0].identifier))
    plan = plan_hyspex(hx_settings, record, ["rgb", "z"])
    assert plan.source.kind == "opendap" and plan.source.url.endswith(hyspex_files.children[0].filename)
    assert [band["index"] for band in plan.bands] == nearest_bands() == [74, 46, 18]
    assert [band["wavelength_nm"] for band in plan.bands] == pytest.approx(list(wavelengths()[[74, 46, 18]]))
    assert plan.cube_variable == "reflectance" and plan.elevation_variable == "elevation"
    stem = hyspex_files.children[0].identifier
    assert plan.outputs == {"rgb": f"{stem}_rgb.tif", "z": f"{stem}_z.tif"}


def test_ingest_matches_numpy_truth(registry, hx_settings, hyspex_catalogue, hyspex_files):
    cube = hyspex_files.children[1]
    record = iso_record(hyspex_catalogue.get(cube.identifier))
    result = ingest_hyspex(registry, settings=hx_settings, record=record, variants=["rgb", "z"])
    by_variant = {item["variant"]: item for item in result["datasets"]}
    with rasterio.open(stored(hx_settings, registry, by_variant["rgb"]["dataset_id"])) as rgb:
        assert (rgb.count, rgb.dtypes[0], rgb.nodata, rgb.crs.to_epsg()) == (3, "uint8", 0, 32633)
        assert rgb.transform.almost_equals(cube.transform)
        np.testing.assert_array_equal(rgb.read(), rgb_truth(cube))
    with rasterio.open(stored(hx_settings, registry, by_variant["z"]["dataset_id"])) as z:
        assert z.dtypes[0] == "float32" and z.crs.to_epsg() == 32633
        data = z.read(1).astype("f8")
        data[data == z.nodata] = np.nan
        np.testing.assert_array_equal(data, cube.elevation)
    assert registered_variants(registry, cube.identifier).keys() == {"rgb", "z"}
    assert missing_variants(registry, limit=10, offset=0).total == 0
    raster = registry.exec(select(Raster).where(Raster.public_id == by_variant["z"]["dataset_id"])).one()
    assert raster.meta["variant"] == "z" and raster.meta["parent_identifier"] == record.parent_identifier
    rasters.delete_raster(registry, hx_settings, raster)
    page = missing_variants(registry, limit=10, offset=0)
    assert page.total == 1 and page.items[0].identifier == cube.identifier and page.items[0].missing == ["z"]


def test_not_hyspex_and_no_netcdf(registry, hx_settings, hyspex_catalogue):
    with pytest.raises(InvalidInput) as raised:
        plan_hyspex(hx_settings, iso_record(hyspex_catalogue.get(NOT_HYSPEX)), ["rgb"])
    assert raised.value.code == "not_hyspex"
    with pytest.raises(NotFound) as raised:
        plan_hyspex(hx_settings, iso_record(hyspex_catalogue.get(NO_NETCDF)), ["rgb"])
    assert raised.value.code == "no_netcdf"
    with pytest.raises(InvalidInput):
        ingest_hyspex(registry, settings=hx_settings, record=iso_record(hyspex_catalogue.get(NOT_HYSPEX)),
                      variants=["rgb", "z"])
    assert registry.exec(select(Raster)).all() == []
