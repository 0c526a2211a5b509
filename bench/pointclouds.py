"""Point-cloud gridding: georeg's ``mean`` grid of a LAS file against ``numpy.histogram2d`` (weighted sum and count,
divided) on the same points already in memory, in fresh processes.

* georeg: :func:`georeg.core.pointclouds.service.grid_points` on the LAS file (laspy's chunk iterator, a million
  points at a time, per-cell sums and counts with ``np.bincount``), the read included.
* georeg in memory: the same accumulator on the in-memory points (chunks of a million), to separate the gridding
  from the LAS read.
* reference: ``np.histogram2d`` twice (weights z, then counts) over the in-memory points, then the division.

The points (``BENCH_POINTCLOUD_POINTS``, 10 000 000) are uniform over a 2000 x 1000 m area at 1 m cells (2 M
cells), z in [0, 100), written to a LAS 1.2 file (scale 0.001) and a ``.npy`` of the coordinates read back from it,
so both sides grid the same values. Each measurement runs in a fresh process (spawn); peak memory is the peak RSS
(VmHWM) above the RSS right before the run, after the imports and, for the in-memory sides, after loading the
points (their 240 MB are not counted). The sides alternate; times are medians of ``BENCH_RUNS`` (3) after one
warm-up each. The ratio is georeg wall time / reference wall time. The grids are compared cell by cell: they
differ only in cells that hold points exactly on a row edge (histogram2d's bins are ``[lo, hi)`` going up,
georeg's rows ``(lo, hi]`` going down). Files live in a temp dir under ``<project>/.bench/``, removed at the end.
"""

from __future__ import annotations

import multiprocessing
import resource
import statistics
import time
from pathlib import Path

import numpy as np

from bench._common import env_int, reset_peak_rss, scratch_dir, status_kb

WIDTH, HEIGHT, RESOLUTION = 2000, 1000, 1.0
SIDES = ("reference", "georeg", "georeg_in_memory")




def write_points(work: Path, count: int) -> tuple[Path, Path]:
    """A LAS file of ``count`` uniform points, written in chunks, and the .npy of the (x, y, z) it holds."""
    import laspy

    rng = np.random.default_rng(42)
    header = laspy.LasHeader(point_format=0, version="1.2")
    header.scales = np.array([0.001, 0.001, 0.001])
    header.offsets = np.array([0.0, 0.0, 0.0])
    las_path = work / "cloud.las"
    with laspy.open(str(las_path), mode="w", header=header) as writer:
        for start in range(0, count, 1_000_000):
            size = min(1_000_000, count - start)
            record = laspy.ScaleAwarePointRecord.zeros(size, header=header)
            record.x = rng.uniform(0, WIDTH, size)
            record.y = rng.uniform(0, HEIGHT, size)
            record.z = rng.uniform(0, 100, size)
            writer.write_points(record)
    data = laspy.read(str(las_path))
    npy_path = work / "points.npy"
    np.save(npy_path, np.vstack([np.asarray(data.x), np.asarray(data.y), np.asarray(data.z)]))
    return las_path, npy_path


def _measure(side: str, las_path: str, npy_path: str, output: str) -> dict:
    """Runs in a fresh process: one side, its time and its peak memory above the level before it."""
    import laspy  # noqa: F401 - imported before the baseline, like everything the sides use

    from georeg.core.config import Settings
    from georeg.core.pointclouds.grid import Accumulator, grid_spec
    from georeg.core.pointclouds.schemas import PointCloudGridConfig
    from georeg.core.pointclouds.service import grid_points

    points = np.load(npy_path) if side != "georeg" else None
    baseline = reset_peak_rss()
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    if side == "georeg":
        config = PointCloudGridConfig(source=las_path, crs="EPSG:25833", resolution=RESOLUTION,
                                      bounds=[0, 0, WIDTH, HEIGHT], output_type="mean")
        settings = Settings(data_dir=Path(output).parent / "data", pointcloud_max_cells=WIDTH * HEIGHT)
        grid, *_ = grid_points(settings, Path(las_path), config, lambda *_: None)
    elif side == "georeg_in_memory":
        accumulator = Accumulator(grid_spec((0, 0, WIDTH, HEIGHT), RESOLUTION, max_cells=WIDTH * HEIGHT), "mean")
        for start in range(0, points.shape[1], 1_000_000):
            accumulator.add(*points[:, start:start + 1_000_000])
        grid, _ = accumulator.result(-9999.0)
    else:
        x, y, z = points
        edges = ((0, HEIGHT), (0, WIDTH))
        sums, _, _ = np.histogram2d(y, x, bins=(HEIGHT, WIDTH), range=edges, weights=z)
        counts, _, _ = np.histogram2d(y, x, bins=(HEIGHT, WIDTH), range=edges)
        with np.errstate(invalid="ignore", divide="ignore"):
            grid = np.where(counts > 0, sums / counts, -9999.0).astype(np.float32)[::-1]  # north up
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    peak = status_kb("VmHWM")
    np.save(output, grid)
    return {"seconds": seconds, "cpu_seconds": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
            "peak_mb": (peak - baseline) / 1024, "rss_mb": peak / 1024}


def _in_fresh_process(*args: str) -> dict:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_measure, args)


def run() -> dict:
    count = env_int("BENCH_POINTCLOUD_POINTS", 10_000_000)
    runs = env_int("BENCH_RUNS", 3)
    with scratch_dir("pointclouds-") as work:
        started = time.perf_counter()
        las_path, npy_path = write_points(work, count)
        print(f"  {count} points written to a {las_path.stat().st_size / 2**20:.0f} MB LAS in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        measured: dict[str, list[dict]] = {side: [] for side in SIDES}
        for index in range(runs + 1):  # run 0 warms the page cache and is not counted
            for side in SIDES if index % 2 == 0 else tuple(reversed(SIDES)):
                sample = _in_fresh_process(side, str(las_path), str(npy_path), str(work / f"{side}.npy"))
                if index:
                    measured[side].append(sample)
                print(f"  run {index} {side:16s}: {sample['seconds']:6.2f} s wall, {sample['cpu_seconds']:6.2f} s "
                      f"CPU, peak RSS {sample['rss_mb']:.0f} MB (+{sample['peak_mb']:.0f} MB in the run)"
                      f"{' (warm-up)' if not index else ''}", flush=True)
        grids = {side: np.load(work / f"{side}.npy") for side in SIDES}

    def median(side: str, key: str) -> float:
        return statistics.median(sample[key] for sample in measured[side])

    wall = {side: median(side, "seconds") for side in SIDES}
    peak = {side: max(sample["peak_mb"] for sample in measured[side]) for side in SIDES}
    rss = {side: max(sample["rss_mb"] for sample in measured[side]) for side in SIDES}
    same = np.isclose(grids["georeg"], grids["reference"], rtol=1e-5, atol=1e-4)
    result = {
        "points": count, "cells": WIDTH * HEIGHT,
        **{f"{side}_s": round(wall[side], 3) for side in SIDES},
        "ratio": round(wall["georeg"] / wall["reference"], 3),
        "in_memory_ratio": round(wall["georeg_in_memory"] / wall["reference"], 3),
        **{f"{side}_peak_mb": round(peak[side], 1) for side in SIDES},
        **{f"{side}_rss_mb": round(rss[side], 1) for side in SIDES},
        "cells_equal_fraction": round(float(same.mean()), 6),
        "in_memory_identical": bool(np.array_equal(grids["georeg"], grids["georeg_in_memory"])),
    }
    print(f"mean grid of {count} points: georeg (LAS read included) {wall['georeg']:.2f} s, in memory "
          f"{wall['georeg_in_memory']:.2f} s vs histogram2d {wall['reference']:.2f} s -> ratio {result['ratio']:.2f} "
          f"({result['in_memory_ratio']:.2f} in memory); memory in the run georeg +{peak['georeg']:.0f} MB "
          f"(peak RSS {rss['georeg']:.0f} MB) vs histogram2d +{peak['reference']:.0f} MB (peak RSS "
          f"{rss['reference']:.0f} MB with the points); {100 * result['cells_equal_fraction']:.3f} % of cells equal",
          flush=True)
    return result
