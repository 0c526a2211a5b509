"""Does the API keep its event loop free while blocking work runs? ``GET /version`` latency, idle vs under load.

Set-up (not timed): a fresh API (``bench._raster_api.Api``, SQLite, uvicorn subprocess) with
``BENCH_CONCURRENCY_RASTERS`` (3) tiled, uncompressed, overview-less GeoTIFFs of ``BENCH_CONCURRENCY_PIXELS`` (4096)
pixels a side -- 1-band uint16, 3-band uint8 and 1-band float32 in turn, written with ``bench.rasters._write_raster``
under ``<project>/.bench/`` and registered by mounted path -- and ``BENCH_CONCURRENCY_ROWS`` (30 000) more raster rows
bulk-inserted through SQL (``bench._raster_listing._bulk_insert``, copies of the first registration) so
that ``GET /datasets?q=...`` does real work.

Timed:

* idle: ``BENCH_CONCURRENCY_IDLE`` (300) sequential ``GET /version`` from one keep-alive client (after 20 untimed
  warm-up requests): p50, p99, max.
* under load: ``BENCH_CONCURRENCY_CLIENTS`` (16) threads, each with its own ``httpx.Client``, loop over heavy requests
  in turn -- cold thumbnails (``GET /datasets/{id}/thumbnail.png?size=...``, the (raster, size) pairs walked in a
  shuffled order so that none repeats before every pair (sizes 64..1024) has been used, and client 0 also sends
  ``DELETE /thumbnails`` every ``BENCH_CONCURRENCY_CLEAR_MS`` (2000) ms), listings (``GET /datasets?q=...&limit=100``
  with varied needles, from 2 characters up and from one hit to every row) and point samples
  (``GET /datasets/{id}/sample?lon=&lat=``, random valid pixels). After a 1 s ramp-up, one more client sends
  ``GET /version`` every ``BENCH_CONCURRENCY_PACE_MS`` (20) ms (a slot missed by a slow answer is skipped, not caught
  up) for ``BENCH_CONCURRENCY_SECONDS`` (20) s: p50, p99, max and count of its latencies, and the ratios to the idle
  figures. Heavy requests are counted per route (done within the window, per second, p50/p99 latency, non-2xx
  answers, transport failures, and the thumbnails' ``X-Thumbnail-Cache`` origins to show they stayed cold).

The target printed (not asserted): p99 under load stays within a small multiple of idle (the event loop is not
blocked). The probe's latency includes the bench process's own thread scheduling (17 client threads share one GIL)
and the machine's load (printed), so compare runs on a quiet machine. Every loop stops by itself at the end of the
window; the API process is stopped and the scratch folder removed at the end.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx
import numpy as np
import rasterio
from rasterio.warp import transform as warp_transform

from bench._common import env_int, scratch_dir
from bench._raster_api import Api
from bench._raster_listing import _bulk_insert
from bench.rasters import _write_raster
from georeg.core.rasters.thumbnails import MAX_SIZE

TARGET = "p99 under load stays within a small multiple of idle (the event loop is not blocked)"
KINDS = (("uint16", 1, 0), ("uint8", 3, None), ("float32", 1, -9999.0))  # dtype, bands, nodata
THUMB_MIN_SIZE = 64
HEAVY_ROUTES = ("thumbnail", "listing", "sample")
QUERIES = ("msil2a", "s2a", "s1b_msil2a_2024", "t33wxr", "2025", "t1", "abc", "scene_msil2a_2023", "t19", "s3a")
SAMPLE_POINTS = 200
HEAVY_TIMEOUT = httpx.Timeout(120.0, connect=10.0)


def _stats_ms(seconds: list[float]) -> dict:
    if not seconds:
        return {"count": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    ms = np.asarray(seconds) * 1000
    return {"count": len(ms), "p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3), "max_ms": round(float(ms.max()), 3)}


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


# --------------------------------------------------------------------------- set-up


def _sample_points(path: Path, rng: np.random.Generator) -> list[tuple[float, float]]:
    """Random WGS84 points on valid pixels (outside the nodata corner ``_write_raster`` leaves)."""
    with rasterio.open(path) as src:
        rows = rng.integers(src.height // 8, src.height, SAMPLE_POINTS)
        cols = rng.integers(0, src.width, SAMPLE_POINTS)
        xs, ys = src.xy(rows, cols)
        lons, lats = warp_transform(src.crs, "EPSG:4326", list(xs), list(ys))
    return list(zip(lons, lats, strict=True))


def _set_up(api: Api, mount: Path, *, rasters: int, side: int, rows: int) -> dict:
    """Write and register the rasters, bulk-insert the listing rows after the first; returns the fixture."""
    rng = np.random.default_rng(7)
    ids, points, files_mb = [], {}, 0.0
    for index in range(rasters):
        dtype, bands, nodata = KINDS[index % len(KINDS)]
        # a different pixel size per file: same-kind files must not be duplicates (same sha256)
        path = _write_raster(mount / f"concurrency-{index}.tif", side=side, dtype=dtype, count=bands, nodata=nodata,
                             pixel=10.0 + index)
        files_mb += path.stat().st_size / 2**20
        dataset_id = api.register_path(path)["dataset_id"]
        ids.append(dataset_id)
        points[dataset_id] = _sample_points(path, rng)
        if index == 0 and rows > 0:  # _bulk_insert copies the one registered raster row
            inserted_s = _bulk_insert(f"sqlite:///{api.folder / 'data' / 'georeg.db'}", rows)
            print(f"set-up   : {rows} raster rows bulk-inserted in {inserted_s:.1f} s (then ANALYZE)")
    total = api.get("/datasets", params={"limit": 1}).json()["total"]
    kinds = ", ".join(f"{KINDS[i % len(KINDS)][1]}x{KINDS[i % len(KINDS)][0]}" for i in range(rasters))
    print(f"set-up   : {rasters} GeoTIFFs of {side} x {side} ({kinds}; "
          f"{files_mb:.0f} MB, tiled, no overviews) registered by mounted path; {total} rows listed")
    order = [(dataset_id, size) for dataset_id in ids for size in range(THUMB_MIN_SIZE, MAX_SIZE + 1)]
    shuffled = [order[i] for i in rng.permutation(len(order))]
    return {"ids": ids, "points": points, "thumbnails": shuffled, "rows": total, "files_mb": round(files_mb, 1)}


# --------------------------------------------------------------------------- idle


def _idle(api: Api, count: int) -> dict:
    for _ in range(20):
        api.get("/version")
    times = []
    for _ in range(count):
        started = time.perf_counter()
        api.get("/version")
        times.append(time.perf_counter() - started)
    return _stats_ms(times)


# --------------------------------------------------------------------------- load


class Load:
    """The heavy clients and the ``/version`` probe sharing one stop event and one tally."""

    def __init__(self, api: Api, fixture: dict, *, clear_s: float):
        self.base_url, self.token, self.fixture, self.clear_s = api.base_url, api.token, fixture, clear_s
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.window = (float("inf"), float("inf"))  # probe start, probe end (perf_counter)
        self.times: dict[str, list[tuple[float, float]]] = defaultdict(list)  # route -> (finished at, seconds)
        self.statuses: dict[str, Counter] = defaultdict(Counter)
        self.failures: Counter = Counter()
        self.origins: Counter = Counter()
        self.probe_times: list[float] = []
        self.probe_errors = 0
        self._sequence: Counter = Counter()

    def _next(self, route: str) -> int:
        """The route's next request number (shared by the clients: the thumbnails walk their pairs once)."""
        with self.lock:
            self._sequence[route] += 1
            return self._sequence[route]

    def _request(self, route: str, n: int) -> tuple[str, str, dict | None]:
        fixture = self.fixture
        if route == "thumbnail":
            dataset_id, size = fixture["thumbnails"][n % len(fixture["thumbnails"])]
            return "GET", f"/datasets/{dataset_id}/thumbnail.png", {"size": size}
        if route == "listing":
            return "GET", "/datasets", {"q": QUERIES[n % len(QUERIES)], "limit": 100}
        if route == "sample":
            dataset_id = fixture["ids"][n % len(fixture["ids"])]
            lon, lat = fixture["points"][dataset_id][(n // len(fixture["ids"])) % SAMPLE_POINTS]
            return "GET", f"/datasets/{dataset_id}/sample", {"lon": lon, "lat": lat}
        return "DELETE", "/thumbnails", None

    def worker(self, index: int) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        next_clear = time.perf_counter() + self.clear_s
        with httpx.Client(base_url=self.base_url, headers=headers, timeout=HEAVY_TIMEOUT) as client:
            turn = index
            while not self.stop.is_set():
                if index == 0 and time.perf_counter() >= next_clear:
                    route, next_clear = "clear_thumbnails", time.perf_counter() + self.clear_s
                else:
                    route, turn = HEAVY_ROUTES[turn % len(HEAVY_ROUTES)], turn + 1
                method, url, params = self._request(route, self._next(route))
                started = time.perf_counter()
                try:
                    response = client.request(method, url, params=params)
                except httpx.HTTPError as exc:
                    with self.lock:
                        self.failures[f"{route}: {type(exc).__name__}"] += 1
                    self.stop.wait(0.05)
                    continue
                finished = time.perf_counter()
                with self.lock:
                    self.times[route].append((finished, finished - started))
                    self.statuses[route][response.status_code] += 1
                    if route == "thumbnail" and response.is_success:
                        self.origins[response.headers.get("x-thumbnail-cache", "?")] += 1

    def probe(self, pace: float) -> None:
        with httpx.Client(base_url=self.base_url, timeout=httpx.Timeout(60.0, connect=10.0)) as client:
            next_at = time.perf_counter()
            while not self.stop.is_set():
                started = time.perf_counter()
                try:
                    ok = client.get("/version").is_success
                except httpx.HTTPError:
                    ok = False
                elapsed = time.perf_counter() - started
                if ok:
                    self.probe_times.append(elapsed)
                else:
                    self.probe_errors += 1
                now = time.perf_counter()
                next_at = max(next_at + pace, now)  # skip the slots a slow answer missed
                self.stop.wait(next_at - now)

    def run(self, clients: int, seconds: float, pace: float) -> float:
        """Ramp the heavy clients up for 1 s, probe for ``seconds``, stop everything; returns the window length."""
        workers = [threading.Thread(target=self.worker, args=(i,), name=f"heavy-{i}", daemon=True)
                   for i in range(clients)]
        probe = threading.Thread(target=self.probe, args=(pace,), name="probe", daemon=True)
        for thread in workers:
            thread.start()
        time.sleep(1.0)
        start = time.perf_counter()
        self.window = (start, start + seconds)
        probe.start()
        self.stop.wait(seconds)
        self.stop.set()
        end = time.perf_counter()
        deadline = end + HEAVY_TIMEOUT.read + 10
        for thread in [probe, *workers]:
            thread.join(timeout=max(0.0, deadline - time.perf_counter()))
        stuck = [thread.name for thread in [probe, *workers] if thread.is_alive()]
        if stuck:
            print(f"load     : threads still running after the window: {', '.join(stuck)}")
        return end - start

    def heavy_report(self, window_s: float) -> dict:
        start, end = self.window
        result = {}
        for route in (*HEAVY_ROUTES, "clear_thumbnails"):
            timed = self.times.get(route, [])
            inside = [seconds for finished, seconds in timed if start <= finished <= end]
            statuses = self.statuses.get(route, Counter())
            errors = sum(count for status, count in statuses.items() if not 200 <= status < 300)
            failures = sum(count for key, count in self.failures.items() if key.startswith(f"{route}:"))
            stats = _stats_ms([seconds for _, seconds in timed])
            result[route] = {"done_total": len(timed), "done_in_window": len(inside),
                             "per_second": round(len(inside) / window_s, 2), "latency_p50_ms": stats["p50_ms"],
                             "latency_p99_ms": stats["p99_ms"], "errors_non_2xx": errors,
                             "statuses": {str(k): v for k, v in sorted(statuses.items())}, "failures": failures}
        result["thumbnail"]["cache_origins"] = dict(self.origins)
        return result


# --------------------------------------------------------------------------- run


def _ratio(load: float | None, idle: float | None) -> float | None:
    return round(load / idle, 2) if load is not None and idle else None


def run() -> dict:
    clients = env_int("BENCH_CONCURRENCY_CLIENTS", 16)
    seconds = env_int("BENCH_CONCURRENCY_SECONDS", 20)
    rows = env_int("BENCH_CONCURRENCY_ROWS", 30_000)
    idle_count = env_int("BENCH_CONCURRENCY_IDLE", 300)
    pace_ms = env_int("BENCH_CONCURRENCY_PACE_MS", 20)
    side = env_int("BENCH_CONCURRENCY_PIXELS", 4096)
    rasters = env_int("BENCH_CONCURRENCY_RASTERS", 3)
    clear_ms = env_int("BENCH_CONCURRENCY_CLEAR_MS", 2000)
    if min(clients, seconds, idle_count, pace_ms, side, rasters, clear_ms) < 1 or rows < 0:
        raise ValueError("BENCH_CONCURRENCY_* settings must be positive (ROWS may be 0)")
    settings = {"clients": clients, "seconds": seconds, "rows": rows, "idle_requests": idle_count,
                "pace_ms": pace_ms, "pixels": side, "rasters": rasters, "clear_thumbnails_ms": clear_ms}
    with scratch_dir("concurrency-") as tmp:
        mount = tmp / "mount"
        mount.mkdir()
        with Api(tmp / "api", mount_roots=[mount]) as api:
            print(f"API      : {api.base_url} (pid {api.pid}), data in {tmp}")
            started = time.perf_counter()
            fixture = _set_up(api, mount, rasters=rasters, side=side, rows=rows)
            setup_s = time.perf_counter() - started
            print(f"set-up   : {setup_s:.1f} s (not timed)")

            load_before = os.getloadavg()[0]
            idle = _idle(api, idle_count)
            print(f"idle     : GET /version x {idle['count']} sequential, one client: p50 {idle['p50_ms']:.2f} ms  "
                  f"p99 {idle['p99_ms']:.2f} ms  max {idle['max_ms']:.2f} ms")

            load = Load(api, fixture, clear_s=clear_ms / 1000)
            window_s = load.run(clients, seconds, pace_ms / 1000)
            load_after = os.getloadavg()[0]
            probe = {**_stats_ms(load.probe_times), "errors": load.probe_errors}
            heavy = load.heavy_report(window_s)

    ratios = {"p50": _ratio(probe["p50_ms"], idle["p50_ms"]), "p99": _ratio(probe["p99_ms"], idle["p99_ms"]),
              "max_vs_idle_p99": _ratio(probe["max_ms"], idle["p99_ms"])}
    print(f"load     : GET /version every {pace_ms} ms for {window_s:.1f} s while {clients} clients send heavy "
          f"requests: n {probe['count']}  p50 {_fmt(probe['p50_ms'])} ms  p99 {_fmt(probe['p99_ms'])} ms  "
          f"max {_fmt(probe['max_ms'])} ms  errors {probe['errors']}")
    print(f"ratio    : under load / idle: p50 {_fmt(ratios['p50'])} x  p99 {_fmt(ratios['p99'])} x  "
          f"(max / idle p99 {_fmt(ratios['max_vs_idle_p99'])} x)")
    print(f"target   : {TARGET}")
    for route, numbers in heavy.items():
        extra = f"  origins {numbers['cache_origins']}" if "cache_origins" in numbers else ""
        print(f"heavy    : {route:16} {numbers['done_in_window']:6d} in window ({numbers['per_second']:7.2f}/s; "
              f"{numbers['done_total']} in all)  p50 {_fmt(numbers['latency_p50_ms'], 1):>7} ms  "
              f"p99 {_fmt(numbers['latency_p99_ms'], 1):>7} ms  non-2xx {numbers['errors_non_2xx']}  "
              f"failures {numbers['failures']}{extra}")
    if load.failures:
        print(f"failures : {dict(load.failures)}")
    print(f"load avg : {load_before:.2f} before the idle phase, {load_after:.2f} after the load phase "
          f"(1-min, {os.cpu_count()} CPUs)")
    return {"settings": settings, "setup_s": round(setup_s, 1), "listing_rows": fixture["rows"],
            "raster_files_mb": fixture["files_mb"], "idle_version": idle, "load_version": probe, "ratios": ratios,
            "window_s": round(window_s, 2), "heavy": heavy,
            "heavy_errors_non_2xx": sum(n["errors_non_2xx"] for n in heavy.values()),
            "heavy_failures": sum(n["failures"] for n in heavy.values()),
            "load_average": {"before": round(load_before, 2), "after": round(load_after, 2)}, "target": TARGET}
