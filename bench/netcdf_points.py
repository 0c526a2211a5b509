"""NetCDF point queries: a batch of 10 000 points over OPeNDAP against a naive per-point xarray ``.sel`` loop over
the same OPeNDAP URL (target: >= 100x), and the same batch on the local file.

A 1000 x 2000 float32 lat/lon grid is written to a scratch dir and served by the test OPeNDAP server
(``tests/opendap_server.py``: xpublish + xpublish-opendap, DAP2, in its own process). The naive loop is timed on
``BENCH_NAIVE_POINTS`` (default 200) points and scaled to the batch size; both sides run nearest-neighbour
queries on the same points. Environment: ``BENCH_POINTS`` (10 000), ``BENCH_NAIVE_POINTS``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from bench._common import env_int, free_port, scratch_dir, stop_process

ROOT = Path(__file__).resolve().parent.parent
SERVER = ROOT / "tests" / "opendap_server.py"
ROWS, COLS = 1000, 2000


def write_grid(path: Path) -> None:
    import netCDF4

    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        for name, values, units in (("lat", 50.0 + 0.01 * (np.arange(ROWS) + 0.5), "degrees_north"),
                                    ("lon", 0.0 + 0.01 * (np.arange(COLS) + 0.5), "degrees_east")):
            nc.createDimension(name, len(values))
            variable = nc.createVariable(name, "f8", (name,))
            variable.units = units
            variable[:] = values
        field = nc.createVariable("field", "f4", ("lat", "lon"), fill_value=np.float32(-9999))
        field.units = "1"
        field[:] = np.random.default_rng(7).normal(0, 1, (ROWS, COLS)).astype("f4")


def start_server(path: Path, root: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, str(SERVER), "--port", str(port), "--root", str(root),
                                f"{path.name}={path}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return process, base
        except httpx.HTTPError:
            time.sleep(0.2)
    stop_process(process)
    raise RuntimeError("the OPeNDAP server did not start")


def batch_seconds(settings, location, points, repeats: int = 3) -> float:
    from georeg.core.netcdf.points import PointsQuery, query_source
    from georeg.core.netcdf.source import open_netcdf

    request = PointsQuery(points=points, variables=["field"])
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        with open_netcdf(settings, location) as source:
            answer = query_source(source, request.points, request, defaults=[])
        times.append(time.perf_counter() - started)
    assert answer.count == len(points)
    return statistics.median(times)


def naive_seconds(url: str, points: list[dict]) -> float:
    import xarray as xr

    started = time.perf_counter()
    with xr.open_dataset(url, engine="netcdf4") as dataset:
        for point in points:
            float(dataset["field"].sel(lat=point["lat"], lon=point["lon"], method="nearest").values)
    return time.perf_counter() - started


def run() -> dict:
    from georeg.core.config import Settings

    count, naive_count = env_int("BENCH_POINTS", 10_000), env_int("BENCH_NAIVE_POINTS", 200)
    rng = np.random.default_rng(10_000)
    points = [{"lon": float(lon), "lat": float(lat)}
              for lon, lat in zip(rng.uniform(0, 20, count), rng.uniform(50, 60, count), strict=True)]
    with scratch_dir("georeg-bench-points-") as tmp:
        path = tmp / "grid.nc"
        write_grid(path)
        process, base = start_server(path, tmp)
        try:
            url = f"{base}/thredds/dodsC/{path.name}"
            settings = Settings(data_dir=tmp / "data", download_hosts=[base.split("://")[1]])
            opendap = batch_seconds(settings, url, points)
            local = batch_seconds(settings, path, points)
            naive = naive_seconds(url, points[:naive_count]) / naive_count * count
        finally:
            stop_process(process)
    ratio = naive / opendap
    print(f"{count} points, nearest, {ROWS}x{COLS} grid: georeg batch over OPeNDAP {opendap:.3f} s, on the local "
          f"file {local:.3f} s; naive per-point xarray .sel over OPeNDAP {naive:.1f} s (scaled from {naive_count} "
          f"points) -> {ratio:.0f}x (target >= 100x); OPeNDAP/local {opendap / local:.1f}x")
    return {"points": count, "batch_opendap_s": round(opendap, 4), "batch_local_s": round(local, 4),
            "naive_opendap_s": round(naive, 2), "ratio_vs_naive": round(ratio, 1),
            "opendap_vs_local": round(opendap / local, 2)}
