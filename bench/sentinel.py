"""Sentinel SAFE processing: georeg's S1 quicklook and S2 RGB pipelines against a direct rasterio/numpy pipeline
doing the same steps on the same zipped SAFE (read through ``/vsizip/``), in fresh processes.

* S1 GRD (``1SDV``, one polarisation, VV): the measurement TIFF warped from its GCPs with a thin-plate spline to
  EPSG:32661 at 40 m (average resampling), dB, 1-99 % stretch to 1..255, alpha, gray+alpha COG (DEFLATE).
  Reference: ``calculate_default_transform`` + ``reproject`` into a numpy array, ``np.log10``/``np.percentile``/
  ``np.clip`` on the whole image, ``rasterio.open(driver="COG")``.
  georeg: warp to a scratch GTiff, histogram percentiles, lookup table strip by strip, COG copy.
* S2 L2A ``true_color_vegetation`` (B04, B03, B02; all 10 m): percentiles (0.5-99.5 %) from a read decimated by a
  power of two to <= 2048 px a side (a JPEG 2000 resolution level), gamma 0.7, nodata 0, RGB COG (DEFLATE).
  Reference: full-resolution reads of the three bands at once, float stretch/gamma in numpy, one COG write.
  georeg: strips of 1024 rows through per-band lookup tables into a scratch GTiff, COG copy.

Each measurement runs in a fresh process (spawn) so peak memory (the peak RSS, VmHWM, above the RSS right before
the run, after the imports; Linux) is the pipeline's own. The sides alternate; times are medians of
``BENCH_RUNS`` (3) after one warm-up each. The ratio is georeg wall time / reference wall time (target <= 1.2);
the CPU-time ratio (user + system of the process, all threads) is printed too, as it is steadier on a shared
machine. The outputs of both sides are compared pixel by pixel.

Sizes: ``BENCH_SENTINEL_S1_SIZE`` (4000: a 4000 x 4000 measurement at 10 m, ~1/25 of a real IW GRD) and
``BENCH_SENTINEL_S2_SIZE`` (4000: 10 m bands of 4000 x 4000, ~1/7.5 of a real tile). Files live in a temp dir
under ``<project>/.bench/`` (git-ignored), removed at the end.
"""

from __future__ import annotations

import multiprocessing
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench._common import env_int, reset_peak_rss, status_kb

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BENCH_ROOT = PROJECT_ROOT / ".bench"
TARGET_RATIO = 1.2
COG_OPTIONS = {"driver": "COG", "COMPRESS": "DEFLATE", "OVERVIEW_RESAMPLING": "AVERAGE", "BIGTIFF": "IF_SAFER"}
S1_PRODUCTS = ["VV"]
S2_PRODUCTS = ["true_color_vegetation"]


# ---------------------------------------------------------------- the reference pipelines

def reference_s1(safe: Path, destination: Path) -> None:
    """S1 quicklook, the direct way."""
    import rasterio
    from rasterio.enums import ColorInterp, Resampling
    from rasterio.warp import calculate_default_transform, reproject

    from georeg.core.sentinel import SafeArchive, prepare

    measurement = SafeArchive.open(safe).gdal_path(prepare(safe, products=S1_PRODUCTS).outputs[0].inputs[0])
    with rasterio.open(measurement) as src:
        gcps, gcp_crs = src.gcps
        transform, width, height = calculate_default_transform(gcp_crs, "EPSG:32661", src.width, src.height,
                                                               gcps=gcps, resolution=40.0, SRC_METHOD="GCP_TPS")
        amplitude = np.zeros((height, width), dtype="uint16")
        reproject(rasterio.band(src, 1), amplitude, gcps=gcps, src_crs=gcp_crs, dst_transform=transform,
                  dst_crs="EPSG:32661", src_nodata=0, dst_nodata=0, resampling=Resampling.average,
                  SRC_METHOD="GCP_TPS")
    valid = amplitude > 0
    db = 20 * np.log10(amplitude[valid].astype("float64"))
    low, high = np.percentile(db, [1.0, 99.0])
    gray = np.zeros(amplitude.shape, dtype="uint8")
    gray[valid] = np.rint(1 + 254 * np.clip((db - low) / (high - low), 0, 1))
    alpha = (valid * 255).astype("uint8")
    with rasterio.open(destination, "w", width=width, height=height, count=2, dtype="uint8", crs="EPSG:32661",
                       transform=transform, **COG_OPTIONS) as dst:
        dst.write(np.stack([gray, alpha]))
        dst.colorinterp = [ColorInterp.gray, ColorInterp.alpha]


def reference_s2(safe: Path, destination: Path) -> None:
    """S2 RGB, the direct way."""
    import rasterio
    from rasterio.enums import Resampling

    from georeg.core.sentinel import SafeArchive, prepare
    from georeg.core.sentinel.imaging import decimated_shape

    archive = SafeArchive.open(safe)
    members = prepare(safe, products=S2_PRODUCTS).outputs[0].inputs
    sources = [rasterio.open(archive.gdal_path(member)) for member in members]
    try:
        grid = min(sources, key=lambda source: source.res[0])
        stretched, valid = [], np.ones((grid.height, grid.width), dtype=bool)
        for source in sources:
            sample = source.read(1, out_shape=decimated_shape(source.height, source.width, 2048),
                                 resampling=Resampling.nearest)
            low, high = np.percentile(sample[sample > 0], [0.5, 99.5])
            values = source.read(1, out_shape=(grid.height, grid.width), resampling=Resampling.bilinear)
            valid &= values > 0
            x = np.clip((values - low) / (high - low), 0, 1) ** (1 / 0.7)
            stretched.append(np.rint(1 + 254 * x).astype("uint8"))
        rgb = np.stack(stretched)
        rgb[:, ~valid] = 0
        with rasterio.open(destination, "w", width=grid.width, height=grid.height, count=3, dtype="uint8",
                           crs=grid.crs, transform=grid.transform, nodata=0, photometric="RGB", **COG_OPTIONS) as dst:
            dst.write(rgb)
    finally:
        for source in sources:
            source.close()


# ---------------------------------------------------------------- measuring in fresh processes

def _georeg(family: str, safe: Path, destination: Path) -> None:
    from georeg.core.sentinel import process_safe

    outputs = process_safe(safe, products=S1_PRODUCTS if family == "s1" else S2_PRODUCTS,
                           output_dir=destination.parent / "georeg-out")
    Path(outputs[0].path).replace(destination)


def _measure(side: str, family: str, safe: str, destination: str) -> dict:
    """Runs in a fresh process: one pipeline, its time and its peak memory above the level before it."""
    import rasterio  # noqa: F401 - imported before the baseline, like everything the pipelines use

    import georeg.core.sentinel  # noqa: F401

    baseline = reset_peak_rss()
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    if side == "georeg":
        _georeg(family, Path(safe), Path(destination))
    else:
        (reference_s1 if family == "s1" else reference_s2)(Path(safe), Path(destination))
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    peak = status_kb("VmHWM")
    return {"seconds": seconds, "cpu_seconds": cpu, "peak_mb": (peak - baseline) / 1024, "rss_mb": peak / 1024}




def _in_fresh_process(*args: str) -> dict:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_measure, args)


def _compare(georeg_path: Path, reference_path: Path) -> dict:
    import rasterio

    with rasterio.open(georeg_path) as mine, rasterio.open(reference_path) as theirs:
        assert (mine.width, mine.height, mine.count, mine.crs) == (theirs.width, theirs.height, theirs.count,
                                                                   theirs.crs), "outputs differ in shape or CRS"
        a, b = mine.read().astype("int16"), theirs.read().astype("int16")
    difference = np.abs(a - b)
    return {"identical_fraction": float((difference == 0).mean()), "max_abs_difference": int(difference.max()),
            "size": f"{a.shape[2]}x{a.shape[1]}x{a.shape[0]}"}


def _bench(family: str, safe: Path, work: Path, runs: int) -> dict:
    sides = ("reference", "georeg")
    measured: dict[str, list[dict]] = {side: [] for side in sides}
    for index in range(runs + 1):  # run 0 warms the page cache and is not counted
        for side in sides if index % 2 == 0 else tuple(reversed(sides)):
            destination = work / f"{family}-{side}-{index}.tif"
            sample = _in_fresh_process(side, family, str(safe), str(destination))
            if index:
                measured[side].append(sample)
            print(f"  {family} run {index} {side:9s}: {sample['seconds']:6.2f} s wall, {sample['cpu_seconds']:6.2f} s "
                  f"CPU, peak RSS {sample['rss_mb']:.0f} MB (+{sample['peak_mb']:.0f} MB in the run)"
                  f"{' (warm-up)' if not index else ''}", flush=True)
    comparison = _compare(work / f"{family}-georeg-0.tif", work / f"{family}-reference-0.tif")

    def median(side: str, key: str) -> float:
        return statistics.median(sample[key] for sample in measured[side])

    wall = {side: median(side, "seconds") for side in sides}
    cpu = {side: median(side, "cpu_seconds") for side in sides}
    peak = {side: max(sample["peak_mb"] for sample in measured[side]) for side in sides}
    ratio, cpu_ratio = wall["georeg"] / wall["reference"], cpu["georeg"] / cpu["reference"]
    result = {"reference_s": round(wall["reference"], 3), "georeg_s": round(wall["georeg"], 3),
              "ratio": round(ratio, 3),
              "reference_cpu_s": round(cpu["reference"], 3), "georeg_cpu_s": round(cpu["georeg"], 3),
              "cpu_ratio": round(cpu_ratio, 3), "target": TARGET_RATIO, "meets_target": ratio <= TARGET_RATIO,
              "reference_peak_mb": round(peak["reference"], 1), "georeg_peak_mb": round(peak["georeg"], 1),
              **comparison}
    print(f"{family}: georeg {wall['georeg']:.2f} s vs reference {wall['reference']:.2f} s -> ratio {ratio:.2f} "
          f"(CPU {cpu['georeg']:.2f} s vs {cpu['reference']:.2f} s -> {cpu_ratio:.2f}; target <= {TARGET_RATIO}); "
          f"memory in the run georeg +{peak['georeg']:.0f} MB vs reference +{peak['reference']:.0f} MB; identical "
          f"pixels {comparison['identical_fraction']:.4%} (max difference {comparison['max_abs_difference']})",
          flush=True)
    return result


def run() -> dict:
    from tests.sentinel_fixtures import S1_PRODUCT, S2_L2A_PRODUCT, place, write_s1_grd_safe, write_s2_safe

    s1_size = env_int("BENCH_SENTINEL_S1_SIZE", 4000)
    s2_size = env_int("BENCH_SENTINEL_S2_SIZE", 4000)
    runs = max(1, env_int("BENCH_RUNS", 3))
    BENCH_ROOT.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="sentinel-", dir=BENCH_ROOT))
    try:
        started = time.perf_counter()
        root = work / "nbsArchive"
        s1 = place(root, write_s1_grd_safe, S1_PRODUCT, zipped=True, width=s1_size, height=s1_size, spacing=10.0)
        s2 = place(root, write_s2_safe, S2_L2A_PRODUCT, zipped=True, size=s2_size)
        print(f"temp dir : {work}\nproducts : S1 {s1_size}x{s1_size} ({s1.stat().st_size / 2**20:.0f} MB zip), "
              f"S2 L2A {s2_size}x{s2_size} at 10 m ({s2.stat().st_size / 2**20:.0f} MB zip), built in "
              f"{time.perf_counter() - started:.1f} s; {runs} run(s) per side", flush=True)
        return {"s1_quicklook": _bench("s1", s1, work, runs), "s2_rgb": _bench("s2", s2, work, runs),
                "s1_size": s1_size, "s2_size": s2_size, "runs": runs}
    finally:
        shutil.rmtree(work, ignore_errors=True)
