"""Sentinel SAFE processing core: locating, planning, S1 quicklooks, S2 RGBs, hostile inputs."""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.enums import ColorInterp, Resampling
from rasterio.warp import calculate_default_transform, reproject

from georeg.core.errors import InvalidInput, PermissionDenied
from georeg.core.sentinel import (
    SafeArchive,
    SafeParameters,
    execute,
    locate_safe,
    parse_product,
    prepare,
    process_safe,
    resolve_safe_path,
)
from georeg.core.sentinel.errors import BrokenArchive, InvalidSafe, MissingBand, SafeNotFound, UnsupportedProduct
from tests.sentinel_fixtures import S1_PRODUCT, S2_L2A_PRODUCT, sentinel_archive, write_s1_grd_safe  # noqa: F401

pytestmark = pytest.mark.usefixtures("sentinel_archive")


def safe(archive, role: str) -> Path:
    return locate_safe(archive.products[role], [archive.root])


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


# ---------------------------------------------------------------- locating

def test_locate_in_nbs_layout(sentinel_archive):  # noqa: F811
    for role in ("s1_zip", "s1_dir", "s1_dh_zip", "l2a_zip", "l2a_dir", "l1c_zip"):
        assert safe(sentinel_archive, role) == sentinel_archive.paths[role].resolve()
    s1 = sentinel_archive.paths["s1_zip"].relative_to(sentinel_archive.root).as_posix()
    assert s1 == f"S1A/2026/01/15/IW/{S1_PRODUCT}.zip"
    l2a = sentinel_archive.paths["l2a_zip"].relative_to(sentinel_archive.root).as_posix()
    assert l2a == f"S2C/2026/01/11/{S2_L2A_PRODUCT}.zip"
    assert locate_safe(f"{S1_PRODUCT}.zip", [Path("/nonexistent"), sentinel_archive.root]).name == f"{S1_PRODUCT}.zip"


def test_locate_errors(sentinel_archive, tmp_path):  # noqa: F811
    root = sentinel_archive.root
    with pytest.raises(SafeNotFound) as missing:
        locate_safe(S1_PRODUCT.replace("_1234", "_0000"), [root])
    assert missing.value.code == "safe_not_found"
    for hostile in ("../../etc/passwd", "S1A_IW/../../x", "", "S1A\x00", "/etc/passwd", "S1A IW"):
        with pytest.raises(InvalidInput):
            locate_safe(hostile, [root])
    with pytest.raises(UnsupportedProduct):
        locate_safe("S1A_IW_SLC__1SDV_20260115T052300_20260115T052325_012345_0ABCDE_1234", [root])
    with pytest.raises(PermissionDenied) as no_roots:
        locate_safe(S1_PRODUCT, [])
    assert no_roots.value.code == "no_safe_roots"

    outside = tmp_path / "outside" / f"{S1_PRODUCT.replace('_1234', '_AAAA')}.zip"
    outside.parent.mkdir()
    shutil.copy(sentinel_archive.paths["s1_zip"], outside)
    mine = tmp_path / "root"
    link = mine / "S1A/2026/01/15/IW" / outside.name
    link.parent.mkdir(parents=True)
    link.symlink_to(outside)
    with pytest.raises(PermissionDenied) as escaped:
        locate_safe(outside.name, [mine])
    assert escaped.value.code == "outside_safe_roots"


def test_resolve_explicit_paths(sentinel_archive, tmp_path):  # noqa: F811
    root = sentinel_archive.root
    relative = sentinel_archive.paths["l2a_zip"].relative_to(root).as_posix()
    assert resolve_safe_path(relative, [root]) == sentinel_archive.paths["l2a_zip"].resolve()
    assert resolve_safe_path(str(sentinel_archive.paths["s1_dir"]), [root]).is_dir()
    for escape in ("../../../../etc/passwd", "/etc/passwd", f"{relative}/../../../../../../.."):
        with pytest.raises(PermissionDenied):
            resolve_safe_path(escape, [root])
    with pytest.raises(SafeNotFound):
        resolve_safe_path("S1A/2026/nothing.zip", [root])
    with pytest.raises(InvalidInput) as not_safe:
        resolve_safe_path("S1A/2026/01/15", [root])
    assert not_safe.value.code == "not_a_safe"
    with pytest.raises(InvalidInput):
        resolve_safe_path("a\x00b", [root])


def test_parse_product():
    s1 = parse_product(S1_PRODUCT)
    assert (s1.kind, s1.platform, s1.mode, s1.polarisations) == ("S1_GRD", "S1A", "IW", ("VV", "VH"))
    assert s1.acquired_at.isoformat() == "2026-01-15T05:23:00+00:00"
    assert parse_product(f"{S2_L2A_PRODUCT}.SAFE").kind == "S2_L2A"
    for unsupported in ("S2A_MSIL1B_20260111T105401_N0511_R051_T33WXR_20260111T130000",
                        "S3A_OL_1_EFR____20260111T105401_20260111T105701_20260111T130000_0179_000_000_1800_MAR_O_NR_003",
                        "S1A_IW_OCN__2SDV_20260115T052300_20260115T052325_012345_0ABCDE_1234"):
        with pytest.raises(UnsupportedProduct):
            parse_product(unsupported)
    with pytest.raises(InvalidInput) as bad_date:
        parse_product(S1_PRODUCT.replace("20260115T052300_2026", "20261315T052300_2026"))
    assert bad_date.value.code == "invalid_product_name"


# ---------------------------------------------------------------- planning

def test_prepare_has_no_side_effects(sentinel_archive, tmp_path):  # noqa: F811
    before = {p: p.stat().st_mtime_ns for p in sentinel_archive.root.rglob("*")}
    plan = prepare(safe(sentinel_archive, "s1_zip"))
    assert plan.product_type == "S1_GRD" and plan.platform == "S1A" and plan.archive == "zip"
    assert [o.product for o in plan.outputs] == ["amplitude_vv", "amplitude_vh"]
    assert plan.outputs[0].inputs[0].startswith("measurement/s1a-iw-grd-vv-")
    assert plan.outputs[0].inputs[1].startswith("annotation/s1a-iw-grd-vv-")
    assert plan.outputs[0].crs == "EPSG:32661" and plan.outputs[0].resolution == 40
    assert [o.bands for o in prepare(safe(sentinel_archive, "s1_dh_zip")).outputs] == [["HH"], ["HV"]]
    assert [o.product for o in prepare(safe(sentinel_archive, "s1_dir"), products=["vh", "amplitude_VH"]).outputs] \
        == ["amplitude_vh"]
    l2a = prepare(safe(sentinel_archive, "l2a_dir"), products=["false_color_glacier"])
    assert l2a.archive == "directory" and l2a.outputs[0].bands == ["B12", "B8A", "B03"]
    assert [Path(m).name[-11:] for m in l2a.outputs[0].inputs] == ["B12_20m.jp2", "B8A_20m.jp2", "B03_10m.jp2"]
    l1c = prepare(safe(sentinel_archive, "l1c_zip"))
    assert l1c.product_type == "S2_L1C" and len(l1c.outputs) == 3
    assert l1c.outputs[0].inputs[0].endswith("_B04.jp2") and "/IMG_DATA/" in l1c.outputs[0].inputs[0]
    assert {p: p.stat().st_mtime_ns for p in sentinel_archive.root.rglob("*")} == before
    assert plan.model_dump(mode="json")["parameters"]["target_crs"] == "EPSG:32661"


def test_prepare_rejects_bad_selections_and_parameters(sentinel_archive):  # noqa: F811
    with pytest.raises(InvalidInput) as unknown:
        prepare(safe(sentinel_archive, "s1_zip"), products=["HH"])
    assert unknown.value.code == "unknown_product"
    with pytest.raises(InvalidInput):
        prepare(safe(sentinel_archive, "l2a_zip"), products=["ndvi"])
    for bad in ({"target_crs": "EPSG:4326"}, {"target_crs": "+proj=longlat"}, {"target_crs": "EPSG:1"},
                {"s1_percentiles": (99, 1)}, {"resolution": 0}, {"gamma": -1}, {"unknown": 1}):
        with pytest.raises(ValueError):
            SafeParameters(**bad)


# ---------------------------------------------------------------- Sentinel-1

def direct_s1_quicklook(measurement: str, crs: str, resolution: float, resampling: Resampling) -> np.ndarray:
    """The recipe step by step with rasterio and numpy, for comparison."""
    with rasterio.open(measurement) as src:
        gcps, gcp_crs = src.gcps
        transform, width, height = calculate_default_transform(gcp_crs, crs, src.width, src.height, gcps=gcps,
                                                               resolution=resolution, SRC_METHOD="GCP_TPS")
        amplitude = np.zeros((height, width), dtype="uint16")
        reproject(src.read(1), amplitude, gcps=gcps, src_crs=gcp_crs, dst_transform=transform, dst_crs=crs,
                  src_nodata=0, dst_nodata=0, resampling=resampling, SRC_METHOD="GCP_TPS")
    valid = amplitude > 0
    db = 20 * np.log10(amplitude[valid].astype("float64"))
    low, high = np.percentile(db, [1, 99])
    expected = np.zeros(amplitude.shape, dtype="uint8")
    expected[valid] = np.rint(1 + 254 * np.clip((db - low) / (high - low), 0, 1))
    return expected


@pytest.mark.parametrize("role", ["s1_zip", "s1_dir"])
def test_s1_quicklooks(sentinel_archive, tmp_path, role):  # noqa: F811
    path = safe(sentinel_archive, role)
    plan = prepare(path)
    outputs = execute(plan, tmp_path)
    assert [o.product for o in outputs] == ["amplitude_vv", "amplitude_vh"]
    archive = SafeArchive.open(path)
    for output, planned in zip(outputs, plan.outputs, strict=True):
        assert output.band_layout == "gray+alpha" and output.epsg == 32661 and output.resolution == (40.0, 40.0)
        with rasterio.open(output.path) as cog:
            assert cog.count == 2 and cog.dtypes == ("uint8", "uint8") and cog.crs.to_epsg() == 32661
            assert cog.colorinterp == (ColorInterp.gray, ColorInterp.alpha)
            assert cog.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG" and cog.block_shapes[0] == (512, 512)
            gray, alpha = cog.read()
        assert set(np.unique(alpha)) == {0, 255}
        assert (gray[alpha == 0] == 0).all() and gray[alpha == 255].min() >= 1
        expected = direct_s1_quicklook(archive.gdal_path(planned.inputs[0]), "EPSG:32661", 40, Resampling.average)
        assert np.array_equal(gray, expected)
        assert 0.01 < (gray == 1).sum() / (alpha == 255).sum() < 0.02  # ~1 % at or below the 1st percentile
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(o.name for o in outputs)


def test_s1_other_target_and_annotation_gcps(sentinel_archive, tmp_path):  # noqa: F811
    params = SafeParameters(target_crs="EPSG:32633", resolution=60, s1_resampling="nearest")
    outputs = process_safe(safe(sentinel_archive, "s1_zip"), products=["VV"], output_dir=tmp_path / "a",
                           parameters=params)
    assert outputs[0].epsg == 32633 and outputs[0].resolution == (60.0, 60.0)
    path = safe(sentinel_archive, "s1_zip")
    measurement = SafeArchive.open(path).gdal_path(prepare(path).outputs[0].inputs[0])
    with rasterio.open(outputs[0].path) as cog:
        assert np.array_equal(cog.read(1), direct_s1_quicklook(measurement, "EPSG:32633", 60, Resampling.nearest))

    no_gcps = write_s1_grd_safe(tmp_path / "plain", gcps_in_tiff=False)
    with rasterio.open(next((no_gcps / "measurement").iterdir())) as measurement_tiff:
        assert not measurement_tiff.gcps[0]
    fallback = process_safe(no_gcps, products=["VV"], output_dir=tmp_path / "b")
    reference = process_safe(safe(sentinel_archive, "s1_zip"), products=["VV"], output_dir=tmp_path / "c")
    assert fallback[0].bounds == pytest.approx(reference[0].bounds, abs=1e-3)
    with rasterio.open(fallback[0].path) as one, rasterio.open(reference[0].path) as other:
        assert np.array_equal(one.read(), other.read())


def test_s1_large_targets_warp_through_a_scratch_file(sentinel_archive, tmp_path, monkeypatch):  # noqa: F811
    from georeg.core.sentinel import s1

    path = safe(sentinel_archive, "s1_zip")
    in_memory = process_safe(path, products=["VH"], output_dir=tmp_path / "memory")[0]
    monkeypatch.setattr(s1, "IN_MEMORY_PIXELS", 0)
    on_disk = process_safe(path, products=["VH"], output_dir=tmp_path / "disk")[0]
    assert on_disk.stretch == in_memory.stretch and on_disk.bounds == in_memory.bounds
    with rasterio.open(in_memory.path) as one, rasterio.open(on_disk.path) as other:
        assert np.array_equal(one.read(), other.read())
    assert leftovers(tmp_path / "disk") == [on_disk.name]


def test_progress_is_reported_per_output(sentinel_archive, tmp_path):  # noqa: F811
    calls = []
    process_safe(safe(sentinel_archive, "s1_zip"), output_dir=tmp_path, progress=lambda *call: calls.append(call))
    percents = [call[0] for call in calls]
    assert percents == sorted(percents) and percents[-1] == 100
    assert {call[2] for call in calls} == {f"{S1_PRODUCT}_amplitude_vv.tif", f"{S1_PRODUCT}_amplitude_vh.tif"}
    assert {"warping", "stretching", "writing COG", "written"} <= {call[1] for call in calls}


# ---------------------------------------------------------------- Sentinel-2

def direct_band(archive: SafeArchive, member: str, size: int, percentiles=(0.5, 99.5), gamma=0.7):
    """(stretched band on the 10 m grid by nearest upsampling, raw values on the grid, low, high)."""
    with rasterio.open(archive.gdal_path(member)) as src:
        native = src.read(1)
    low, high = np.percentile(native[native > 0], percentiles)
    factor = size // native.shape[0]
    values = np.repeat(np.repeat(native, factor, axis=0), factor, axis=1)
    x = np.clip((values.astype("float64") - low) / (high - low), 0, 1) ** (1 / gamma)
    return np.rint(1 + 254 * x).astype("uint8"), values, low, high


@pytest.mark.parametrize("role", ["l2a_zip", "l2a_dir", "l1c_zip"])
def test_s2_rgb_combinations(sentinel_archive, tmp_path, role):  # noqa: F811
    path = safe(sentinel_archive, role)
    plan = prepare(path)
    outputs = execute(plan, tmp_path, None)
    archive = SafeArchive.open(path)
    assert [o.product for o in outputs] == ["true_color_vegetation", "false_color_glacier", "false_color_vegetation"]
    assert [o.bands for o in outputs] == [["B04", "B03", "B02"], ["B12", "B8A", "B03"], ["B8A", "B04", "B03"]]
    for output, planned in zip(outputs, plan.outputs, strict=True):
        assert output.band_layout == "rgb" and output.resolution == (10.0, 10.0) and output.epsg == 32633
        assert (output.width, output.height) == (256, 256)
        with rasterio.open(output.path) as cog:
            assert cog.count == 3 and cog.dtypes == ("uint8",) * 3 and cog.nodata == 0
            assert cog.colorinterp == (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
            assert cog.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
            rgb = cog.read()
        valid = np.ones((256, 256), dtype=bool)
        expected = []
        for index, member in enumerate(planned.inputs):
            stretched, values, low, high = direct_band(archive, member, 256)
            assert (output.stretch[index].low, output.stretch[index].high) == (low, high)
            valid &= values > 0
            expected.append(stretched)
        written = rgb[0] > 0
        assert all(np.array_equal(written, band > 0) for band in rgb)  # one no-data mask for the three bands
        assert (written != valid).mean() < 0.02  # bilinear 20 m bands only move the no-data edge
        both = written & valid
        for index in range(3):
            if output.bands[index] in ("B8A", "B12"):  # resampled bilinearly from 20 m: close, not equal
                assert np.abs(rgb[index][both].astype(int) - expected[index][both]).mean() < 6
            else:
                assert np.array_equal(rgb[index][both], expected[index][both])


def test_s2_nearest_resampling_matches_numpy(sentinel_archive, tmp_path):  # noqa: F811
    path = safe(sentinel_archive, "l2a_zip")
    params = SafeParameters(s2_resampling="nearest", gamma=1.0, s2_percentiles=(2, 98))
    plan = prepare(path, products=["false_color_glacier"], parameters=params)
    output = execute(plan, tmp_path)[0]
    archive = SafeArchive.open(path)
    with rasterio.open(output.path) as cog:
        rgb = cog.read()
    bands = [direct_band(archive, member, 256, (2, 98), 1.0) for member in plan.outputs[0].inputs]
    valid = np.logical_and.reduce([values > 0 for _, values, _, _ in bands])
    for index, (stretched, _, _, _) in enumerate(bands):
        assert np.array_equal(np.where(valid, stretched, 0), rgb[index])


def test_s2_decimated_statistics(sentinel_archive, tmp_path):  # noqa: F811
    exact = process_safe(safe(sentinel_archive, "l2a_zip"), products=["true_color_vegetation"],
                         output_dir=tmp_path / "exact", parameters=SafeParameters(stats_max_size=0))
    decimated = process_safe(safe(sentinel_archive, "l2a_zip"), products=["true_color_vegetation"],
                             output_dir=tmp_path / "decimated", parameters=SafeParameters(stats_max_size=128))
    for a, b in zip(exact[0].stretch, decimated[0].stretch, strict=True):
        assert a.low == pytest.approx(b.low, rel=0.1) and a.high == pytest.approx(b.high, rel=0.1)
        assert (a.low, a.high) != (b.low, b.high)


# ---------------------------------------------------------------- hostile inputs

def test_broken_and_missing(sentinel_archive, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    with pytest.raises(BrokenArchive) as broken:
        process_safe(safe(sentinel_archive, "broken_zip"), output_dir=out)
    assert broken.value.code == "broken_archive"
    with pytest.raises(MissingBand) as missing:
        process_safe(safe(sentinel_archive, "missing_band"), output_dir=out)
    assert missing.value.code == "missing_band" and "B12" in missing.value.message
    assert len(prepare(safe(sentinel_archive, "missing_band"), products=["true_color_vegetation"]).outputs) == 1
    with pytest.raises(MissingBand) as no_vh:
        prepare(safe(sentinel_archive, "s1_missing"))
    assert no_vh.value.code == "missing_measurement"
    assert leftovers(out) == []


def test_failure_midway_leaves_nothing(sentinel_archive, tmp_path):  # noqa: F811
    path = safe(sentinel_archive, "corrupt_zip")
    plan = prepare(path, products=["VH", "VV"])
    seen = []
    with pytest.raises(InvalidSafe) as corrupt:
        execute(plan, tmp_path, lambda percent, phase, name: seen.append((phase, name)))
    assert corrupt.value.code == "unreadable_raster" and "-vv-" in corrupt.value.message
    assert ("written", f"{plan.product}_amplitude_vh.tif") in seen
    assert leftovers(tmp_path) == []


def test_not_a_safe_and_hostile_zips(tmp_path):
    plain = tmp_path / f"{S2_L2A_PRODUCT}.zip"
    with zipfile.ZipFile(plain, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(InvalidSafe) as not_safe:
        prepare(plain)
    assert not_safe.value.code == "not_a_safe"
    sneaky = tmp_path / f"{S1_PRODUCT}.zip"
    with zipfile.ZipFile(sneaky, "w") as archive:
        archive.writestr(f"{S1_PRODUCT}.SAFE/manifest.safe", "<x/>")
        archive.writestr(f"{S1_PRODUCT}.SAFE/measurement/../../../../etc/s1a-iw-grd-vv-x-001.tiff", b"II*\x00")
        archive.writestr(f"/{S1_PRODUCT}.SAFE/measurement/s1a-iw-grd-vh-x-002.tiff", b"II*\x00")
    assert SafeArchive.open(sneaky).members == ["manifest.safe"]
    with pytest.raises(MissingBand):
        prepare(sneaky)
    empty = tmp_path / f"{S1_PRODUCT.replace('_1234', '_0001')}.zip"
    empty.write_bytes(b"")
    with pytest.raises(BrokenArchive):
        prepare(empty)


def test_output_size_guard(sentinel_archive, tmp_path):  # noqa: F811
    with pytest.raises(InvalidInput) as huge:
        process_safe(safe(sentinel_archive, "s1_zip"), output_dir=tmp_path,
                     parameters=SafeParameters(resolution=0.001))
    assert huge.value.code == "output_too_large"
    assert leftovers(tmp_path) == []


def test_symlinked_member_outside_safe_dir_is_ignored(sentinel_archive, tmp_path):  # noqa: F811
    copy = tmp_path / f"{S2_L2A_PRODUCT}.SAFE"
    shutil.copytree(sentinel_archive.paths["l2a_dir"], copy)
    b12 = next(copy.rglob("*_B12_20m.jp2"))
    outside = tmp_path / "outside.jp2"
    os.replace(b12, outside)
    b12.symlink_to(outside)
    with pytest.raises(MissingBand):
        prepare(copy)
