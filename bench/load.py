"""A mixed workload at fixed concurrency against a running stack: per-route throughput, latency, errors and the API's
memory over the run.

The stack is the embedded one, ``georeg serve`` started as a subprocess on free loopback ports with a data dir of its
own under ``<project>/.bench/`` (Prefect server, fork server, worker and API; ready when it prints ``georeg: ready``),
stopped with SIGTERM and removed at the end. With ``BENCH_LOAD_TOPOLOGIES=serve,scale-out`` the same load also runs
against the scale-out topology on one machine (as tests/e2e/test_scale_out.py builds it): Prefect's server on a
scratch PostgreSQL database, ``georeg migrate`` and ``georeg deploy``, two ``georeg api`` and two ``georeg worker``,
the registry on PostgreSQL too, the virtual users spread over both APIs.

Set-up (not timed): a dataset ``admin/load`` with ``FILES`` small files in folders, and a 2048 x 2048 uint16 GeoTIFF
registered by mounted path for the Datasets API routes.

Timed: ``BENCH_LOAD_USERS`` (8) virtual users, each an ``httpx.AsyncClient`` on the loopback interface in one asyncio
loop, send requests back to back for ``BENCH_LOAD_SECONDS`` (300; e.g. 60 for a smoke run), each time one route drawn
by weight:

* listings: ``GET /orgs/admin/ds``, ``GET /orgs/admin/ds/load/list?path=...``, ``GET /datasets?limit=50``;
* downloads: ``GET /orgs/admin/ds/load/download?path=...`` of a small file;
* raster samples: ``GET /datasets/{id}/sample?lon=&lat=`` at random points of the raster;
* tiles: ``GET /datasets/{id}/tiles/{z}/{x}/{y}.png``, a tile not fetched yet (a cache miss, from the raster's tiles
  at its native zoom and three zooms above, shuffled) or one fetched before (a hit); counted by the answer's
  ``X-Tile-Cache``;
* uploads: ``POST /orgs/admin/ds/load/obj`` of a 1-64 KiB file to a path of its own;
* task submissions: ``POST /orgs/admin/ds/load/tasks`` (``bulk-download`` of one small file, ``force``), at most
  ``BENCH_LOAD_TASKS_PER_MINUTE`` (30) over all users; after the window the submitted tasks are followed for up to
  ``BENCH_LOAD_DRAIN_SECONDS`` (180) and their end states counted.

Reported per route: requests done in the window, throughput, p50/p99/max latency and errors (non-2xx answers and
transport failures; target 0), and the resident memory (psutil) of the API process with its children at the start of
the window, its peak (sampled every 0.5 s) and at the end, and of the whole stack. The load generator stops by
itself at the end of the window; nothing leaves the loopback interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import psutil

from bench._common import (
    BENCH_ADMIN_PASSWORD,
    PROJECT_ROOT,
    check,
    env_int,
    free_port,
    process_tree_rss,
    scratch_dir,
    stop_process,
)

MB = 1024 * 1024
FILES = 40
FOLDERS = ("a", "b", "c", "d")
RASTER_SIDE = 2048
ROUTE_WEIGHTS = {  # relative frequency of each route a virtual user picks
    "list datasets (org)": 6, "list folder": 8, "list rasters": 6, "download": 12, "sample": 14,
    "tile": 18, "upload": 8, "task": 4,
}
READY_LINE = "georeg: ready"
TIMEOUT = httpx.Timeout(120.0, connect=10.0)
TOPOLOGIES = ("serve", "scale-out")
DONE = {"Succeeded", "Failed", "Cancelled"}


# --------------------------------------------------------------------------- stacks


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("GEOREG_", "PREFECT_"))}


def _georeg_settings(data_dir: Path, mount: Path) -> dict[str, str]:
    return {"GEOREG_DATA_DIR": str(data_dir), "GEOREG_ADMIN_PASSWORD": BENCH_ADMIN_PASSWORD,
            "GEOREG_SECRET_KEY": "bench-load", "GEOREG_MOUNT_ROOTS": str(mount),
            "GEOREG_MAX_ACTIVE_TASKS_PER_USER": "100000", "GEOREG_BUILD_ON_UPLOAD": "false",
            "PYTHONUNBUFFERED": "1"}


@dataclass
class Stack:
    """A running stack: the API base URLs, the API processes (for RSS) and the root of all its processes."""

    apis: list[str]
    api_processes: Callable[[], list[psutil.Process]]
    roots: list[psutil.Process] = field(default_factory=list)

    def api_rss(self) -> int:
        return sum(process_tree_rss(process) for process in self.api_processes())

    def stack_rss(self) -> int:
        return sum(process_tree_rss(process) for process in self.roots)


def _wait_line(log_path: Path, process: subprocess.Popen, line: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace") if log_path.exists() else ""
        if line in text.splitlines():
            return
        if process.poll() is not None:
            break
        time.sleep(0.5)
    tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-40:])
    raise RuntimeError(f"no {line!r} within {timeout:.0f} s (exit {process.poll()}):\n{tail}")


@contextlib.contextmanager
def serve_stack(folder: Path, mount: Path) -> Iterator[Stack]:
    """``georeg serve`` on free ports with its own data dir; stopped (SIGTERM, then SIGKILL) at the end."""
    api_port, prefect_port = free_port(), free_port()
    env = {**_clean_env(), **_georeg_settings(folder / "data", mount), "GEOREG_API_PORT": str(api_port),
           "GEOREG_PREFECT_PORT": str(prefect_port)}
    log_path = folder / "serve.log"
    georeg = str(Path(sys.executable).with_name("georeg"))
    with open(log_path, "wb") as log:
        process = subprocess.Popen([georeg, "serve"], cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        started = time.monotonic()
        _wait_line(log_path, process, READY_LINE, timeout=300)
        print(f"stack    : georeg serve ready in {time.monotonic() - started:.1f} s (pid {process.pid}), "
              f"API http://127.0.0.1:{api_port}, data in {folder}")
        root = psutil.Process(process.pid)

        def api_processes() -> list[psutil.Process]:
            return [child for child in root.children(recursive=True)
                    if "georeg.api.app:create_app" in _cmdline(child)]

        yield Stack(apis=[f"http://127.0.0.1:{api_port}"], api_processes=api_processes, roots=[root])
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            stop_process(process)


def _cmdline(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


@contextlib.contextmanager
def scale_out_stack(folder: Path, mount: Path) -> Iterator[Stack]:
    """Prefect's server and the registry on scratch PostgreSQL databases, migrate + deploy, two ``georeg api`` and
    two ``georeg worker``, each its own process and working directory, sharing the data dir."""
    from sqlalchemy import create_engine, text

    from georeg.deployments.processes import ChildProcess

    admin_url = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"georeg_load_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        for database in (name, f"{name}_prefect"):
            connection.execute(text(f'CREATE DATABASE "{database}"'))
    url = admin.url
    registry_url = url.set(database=name).render_as_string(hide_password=False)
    prefect_db = url.set(drivername="postgresql+asyncpg", database=f"{name}_prefect").render_as_string(
        hide_password=False)
    prefect_url = f"http://127.0.0.1:{free_port()}/api"
    georeg = str(Path(sys.executable).with_name("georeg"))
    settings = {**_georeg_settings(folder / "shared-data", mount), "GEOREG_DATABASE_URL": registry_url,
                "GEOREG_PREFECT_API_URL": prefect_url, "GEOREG_PROJECT_DIR": str(PROJECT_ROOT),
                "PREFECT_API_URL": prefect_url}
    children: list[ChildProcess] = []

    def start(name: str, command: list[str], env: dict[str, str]) -> ChildProcess:
        home = folder / name
        home.mkdir(parents=True, exist_ok=True)
        child = ChildProcess(name, command, env={**_clean_env(), "PREFECT_HOME": str(home / "prefect-home"), **env},
                             cwd=home, log_file=home / "output.log")
        child.start()
        children.append(child)
        return child

    def wait_http(target: str, child: ChildProcess, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not child.alive():
                raise RuntimeError(f"{child.name} exited:\n{child.tail(40)}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(target, timeout=2).status_code < 500:
                    return
            time.sleep(0.3)
        raise RuntimeError(f"{child.name} not answering at {target}:\n{child.tail(40)}")

    try:
        started = time.monotonic()
        port = prefect_url.split(":")[2].split("/")[0]
        server = start("prefect-server", [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                          "--port", port],
                       {"PREFECT_SERVER_DATABASE_CONNECTION_URL": prefect_db,
                        "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_ENABLED": "false"})
        wait_http(f"{prefect_url}/health", server)
        for step in ("migrate", "deploy"):
            child = start(step, [georeg, step], settings)
            if child.process.wait(timeout=300) != 0:
                raise RuntimeError(f"georeg {step} failed:\n{child.tail(40)}")
        apis, api_children = [], []
        for number in (1, 2):
            api_port = free_port()
            api = start(f"api-{number}", [georeg, "api", "--host", "127.0.0.1", "--port", str(api_port)], settings)
            wait_http(f"http://127.0.0.1:{api_port}/version", api)
            apis.append(f"http://127.0.0.1:{api_port}")
            api_children.append(psutil.Process(api.pid))
        for number in (1, 2):
            start(f"worker-{number}", [georeg, "worker", "--limit", "4", "--name", f"load-worker-{number}"], settings)
        print(f"stack    : scale-out ready in {time.monotonic() - started:.1f} s: APIs {', '.join(apis)}, "
              f"Prefect {prefect_url}, registry and Prefect on PostgreSQL ({name}), data in {folder}")
        roots = [psutil.Process(child.pid) for child in children if child.alive()]
        yield Stack(apis=apis, api_processes=lambda: api_children, roots=roots)
    finally:
        for child in reversed(children):
            child.stop()
        with admin.connect() as connection:
            for database in (name, f"{name}_prefect"):
                connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()


# --------------------------------------------------------------------------- set-up


@dataclass
class Fixture:
    """What the virtual users request: files, folders, the raster, its tiles and sample points."""

    token: str
    files: list[str]
    raster_id: str
    points: list[tuple[float, float]]
    tiles: list[tuple[int, int, int]]


def prepare(api: str, mount: Path) -> Fixture:
    from rasterio.warp import transform as warp_transform

    from bench.rasters import _tile_reader, _write_raster

    with httpx.Client(base_url=api, timeout=TIMEOUT) as client:
        token = check(client.post("/users/authenticate", json={"userName": "admin", "password": BENCH_ADMIN_PASSWORD}),
                      "authenticate").json()["token"]
        client.headers["Authorization"] = f"Bearer {token}"
        check(client.post("/orgs/admin/ds", json={"slug": "load"}), "create dataset")
        rng = random.Random(7)
        files = []
        for index in range(FILES):
            path = f"{FOLDERS[index % len(FOLDERS)]}/f{index}.bin"
            check(client.post("/orgs/admin/ds/load/obj", files={"file": (f"f{index}.bin",
                                                                         rng.randbytes(rng.randint(1024, 65536)))},
                              data={"path": path}), f"upload {path}")
            files.append(path)
        raster = _write_raster(mount / "load.tif", side=RASTER_SIDE, dtype="uint16", nodata=0, block=256)
        raster_id = check(client.post("/datasets/from-string", json={"path": str(raster)}),
                          "register raster").json()["dataset_id"]
    import morecantile
    import rasterio

    with rasterio.open(raster) as src:
        nrng = np.random.default_rng(5)
        xs, ys = src.xy(nrng.integers(src.height // 8, src.height, 500), nrng.integers(0, src.width, 500))
        lons, lats = warp_transform(src.crs, "EPSG:4326", list(xs), list(ys))
    tms = morecantile.tms.get("WebMercatorQuad")
    with _tile_reader(raster) as src:
        zoom = src.maxzoom
        bounds = src.get_geographic_bounds(tms.rasterio_geographic_crs)
    tiles = [(t.z, t.x, t.y) for z in range(max(0, zoom - 2), zoom + 2) for t in tms.tiles(*bounds, zooms=[z])]
    random.Random(11).shuffle(tiles)
    print(f"set-up   : dataset admin/load with {FILES} files in {len(FOLDERS)} folders; a {RASTER_SIDE} x "
          f"{RASTER_SIDE} uint16 raster (native zoom {zoom}), {len(tiles)} tiles at zooms {max(0, zoom - 2)}-"
          f"{zoom + 1}")
    return Fixture(token=token, files=files, raster_id=raster_id, points=list(zip(lons, lats, strict=True)),
                   tiles=tiles)


# --------------------------------------------------------------------------- the load


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    error_samples: list[str] = field(default_factory=list)
    tasks: list[tuple[str, str]] = field(default_factory=list)  # (api, task id)

    def add(self, route: str, seconds: float, status: int | str, body: str = "") -> None:
        self.latencies[route].append(seconds)
        if not (isinstance(status, int) and status < 400):
            self.errors[route][str(status)] += 1
            if len(self.error_samples) < 10:
                self.error_samples.append(f"{route}: {status} {body[:200]}")


class Workload:
    def __init__(self, stack: Stack, fixture: Fixture, tally: Tally, deadline: float, tasks_per_minute: int):
        self.stack, self.fixture, self.tally, self.deadline = stack, fixture, tally, deadline
        self.task_interval = 60.0 / tasks_per_minute if tasks_per_minute > 0 else math.inf
        self.next_task = time.monotonic()
        self.tiles_fetched: list[tuple[int, int, int]] = []
        self.tile_cursor = 0
        self.upload_serial = 0

    def pick(self, rng: random.Random) -> str:
        while True:
            route = rng.choices(list(ROUTE_WEIGHTS), weights=list(ROUTE_WEIGHTS.values()))[0]
            if route != "task":
                return route
            now = time.monotonic()
            if now >= self.next_task:
                self.next_task = max(self.next_task + self.task_interval, now - self.task_interval)
                return route

    def request(self, route: str, rng: random.Random) -> tuple[str, str, dict]:
        """(route label, method, httpx request arguments) of one request of ``route``."""
        fixture = self.fixture
        if route == "list datasets (org)":
            return route, "GET", {"url": "/orgs/admin/ds"}
        if route == "list folder":
            return route, "GET", {"url": "/orgs/admin/ds/load/list", "params": {"path": rng.choice(FOLDERS)}}
        if route == "list rasters":
            return route, "GET", {"url": "/datasets", "params": {"limit": 50}}
        if route == "download":
            return route, "GET", {"url": "/orgs/admin/ds/load/download", "params": {"path": rng.choice(fixture.files)}}
        if route == "sample":
            lon, lat = rng.choice(fixture.points)
            return route, "GET", {"url": f"/datasets/{fixture.raster_id}/sample", "params": {"lon": lon, "lat": lat}}
        if route == "tile":
            if self.tile_cursor < len(fixture.tiles) and (not self.tiles_fetched or rng.random() < 0.5):
                tile = fixture.tiles[self.tile_cursor]
                self.tile_cursor += 1
                self.tiles_fetched.append(tile)
            else:
                tile = rng.choice(self.tiles_fetched)
            z, x, y = tile
            return route, "GET", {"url": f"/datasets/{fixture.raster_id}/tiles/{z}/{x}/{y}.png"}
        if route == "upload":
            self.upload_serial += 1
            content = rng.randbytes(rng.randint(1024, 65536))
            return route, "POST", {"url": "/orgs/admin/ds/load/obj",
                                   "files": {"file": ("u.bin", content)},
                                   "data": {"path": f"uploads/u{self.upload_serial}.bin"}}
        if route == "task":
            return route, "POST", {"url": "/orgs/admin/ds/load/tasks", "json": {
                "toolId": "bulk-download", "force": True, "parameters": {"paths": [rng.choice(fixture.files)]}}}
        raise ValueError(route)

    async def user(self, number: int) -> None:
        rng = random.Random(1000 + number)
        api = self.stack.apis[number % len(self.stack.apis)]
        headers = {"Authorization": f"Bearer {self.fixture.token}"}
        async with httpx.AsyncClient(base_url=api, headers=headers, timeout=TIMEOUT) as client:
            while time.monotonic() < self.deadline:
                label, method, arguments = self.request(self.pick(rng), rng)
                started = time.perf_counter()
                try:
                    response = await client.request(method, **arguments)
                except httpx.HTTPError as exc:
                    self.tally.add(label, time.perf_counter() - started, type(exc).__name__, str(exc))
                    continue
                elapsed = time.perf_counter() - started
                if label == "tile" and response.status_code == 200:
                    label = f"tile ({response.headers.get('x-tile-cache', '?')})"
                if time.monotonic() <= self.deadline:  # a request that ends after the window is not counted
                    self.tally.add(label, elapsed, response.status_code, response.text if response.is_error else "")
                if label == "task" and response.status_code in (200, 202):
                    self.tally.tasks.append((api, response.json()["taskId"]))


class RssSampler:
    """Peak RSS of the API processes and of the whole stack, sampled every ``interval`` seconds, and the API's RSS
    at the start and then every ``mark_every`` seconds (does it level off?)."""

    def __init__(self, stack: Stack, interval: float = 0.5, mark_every: float = 60.0):
        self.stack, self.interval, self.mark_every = stack, interval, mark_every
        self.api_peak = self.stack_peak = 0
        self.api_marks: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        next_mark = time.monotonic()
        while not self._stop.is_set():
            api = self.stack.api_rss()
            self.api_peak = max(self.api_peak, api)
            self.stack_peak = max(self.stack_peak, self.stack.stack_rss())
            if time.monotonic() >= next_mark:
                self.api_marks.append(api)
                next_mark += self.mark_every
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _drain(tally: Tally, token: str, seconds: float) -> dict:
    """Follow the submitted tasks until they end or ``seconds`` pass; their states counted."""
    states: dict[str, str] = {}
    deadline = time.monotonic() + seconds
    pending = {task_id: api for api, task_id in tally.tasks}  # task id -> the API it went to
    started = time.monotonic()
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT) as client:
        while pending and time.monotonic() < deadline:
            for task_id, api in list(pending.items()):
                response = client.get(f"{api}/orgs/admin/ds/load/tasks/{task_id}")
                state = response.json().get("state", f"HTTP {response.status_code}") if response.is_success \
                    else f"HTTP {response.status_code}"
                states[task_id] = state
                if state in DONE:
                    del pending[task_id]
            if pending:
                time.sleep(2)
    counts = Counter(states.values())
    result = {"submitted": len(tally.tasks), "states": dict(counts), "all_succeeded":
              counts.get("Succeeded", 0) == len(tally.tasks), "drain_s": round(time.monotonic() - started, 1)}
    print(f"tasks    : {len(tally.tasks)} submitted; after {result['drain_s']} s: "
          f"{', '.join(f'{k} {v}' for k, v in sorted(counts.items())) or 'none'}")
    return result


def _route_table(tally: Tally, seconds: float) -> dict:
    routes = {}
    header = f"{'route':22} {'count':>7} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>6}"
    print(header)
    print("-" * len(header))
    for route in sorted(tally.latencies):
        ms = np.asarray(tally.latencies[route]) * 1000
        errors = sum(tally.errors[route].values())
        row = {"count": len(ms), "per_s": round(len(ms) / seconds, 2), "p50_ms": round(float(np.percentile(ms, 50)), 2),
               "p99_ms": round(float(np.percentile(ms, 99)), 2), "max_ms": round(float(ms.max()), 2),
               "errors": errors, "error_statuses": dict(tally.errors[route])}
        routes[route] = row
        print(f"{route:22} {row['count']:7d} {row['per_s']:7.2f} {row['p50_ms']:8.2f} {row['p99_ms']:8.2f} "
              f"{row['max_ms']:8.2f} {errors:6d}")
    total = sum(len(v) for v in tally.latencies.values())
    print("-" * len(header))
    print(f"{'all':22} {total:7d} {total / seconds:7.2f}")
    return routes


def run_load(stack: Stack, fixture: Fixture, *, users: int, seconds: int, tasks_per_minute: int,
             drain_seconds: int) -> dict:
    tally = Tally()
    api_start, stack_start = stack.api_rss(), stack.stack_rss()
    load = os.getloadavg()[0]
    print(f"load     : {users} virtual users for {seconds} s over {len(stack.apis)} API(s); tasks <= "
          f"{tasks_per_minute}/min; machine load {load:.2f} ({os.cpu_count()} CPUs); API RSS {api_start / MB:.1f} MB")
    with RssSampler(stack) as sampler:
        started = time.monotonic()
        workload = Workload(stack, fixture, tally, started + seconds, tasks_per_minute)

        async def main() -> None:
            await asyncio.gather(*(workload.user(number) for number in range(users)))

        asyncio.run(main())
        window = time.monotonic() - started
        api_end, stack_end = stack.api_rss(), stack.stack_rss()
    routes = _route_table(tally, min(window, seconds))
    errors = sum(row["errors"] for row in routes.values())
    rss = {"api_start_mb": round(api_start / MB, 1), "api_end_mb": round(api_end / MB, 1),
           "api_peak_mb": round(max(sampler.api_peak, api_end) / MB, 1),
           "api_growth_mb": round((api_end - api_start) / MB, 1),
           "stack_start_mb": round(stack_start / MB, 1), "stack_end_mb": round(stack_end / MB, 1),
           "stack_peak_mb": round(max(sampler.stack_peak, stack_end) / MB, 1),
           "api_per_minute_mb": [round(value / MB, 1) for value in [*sampler.api_marks, api_end]],
           "api_growth_after_first_minute_mb": round((api_end - sampler.api_marks[1]) / MB, 1)
           if len(sampler.api_marks) > 1 else None}
    print(f"memory   : API RSS {rss['api_start_mb']} -> {rss['api_end_mb']} MB (growth {rss['api_growth_mb']:+} MB, "
          f"peak {rss['api_peak_mb']}); whole stack {rss['stack_start_mb']} -> {rss['stack_end_mb']} MB "
          f"(peak {rss['stack_peak_mb']})")
    print(f"           API RSS each minute, then at the end: {rss['api_per_minute_mb']} MB "
          f"(after the first minute: {rss['api_growth_after_first_minute_mb']} MB)")
    print(f"errors   : {errors} (target 0){''.join(chr(10) + '  ' + s for s in tally.error_samples)}")
    tasks = _drain(tally, fixture.token, drain_seconds)
    return {"users": users, "seconds": seconds, "apis": len(stack.apis), "requests": sum(r["count"] for r in
            routes.values()), "errors": errors, "ok": errors == 0 and tasks["all_succeeded"], "routes": routes,
            "rss": rss, "tasks": tasks, "load_average_before": round(load, 2)}


def run() -> dict:
    topologies = [t.strip() for t in os.environ.get("BENCH_LOAD_TOPOLOGIES", "serve").split(",") if t.strip()]
    unknown = set(topologies) - set(TOPOLOGIES)
    if unknown:
        raise ValueError(f"unknown BENCH_LOAD_TOPOLOGIES {sorted(unknown)}; use {', '.join(TOPOLOGIES)}")
    options = {"users": env_int("BENCH_LOAD_USERS", 8), "seconds": env_int("BENCH_LOAD_SECONDS", 300),
               "tasks_per_minute": env_int("BENCH_LOAD_TASKS_PER_MINUTE", 30),
               "drain_seconds": env_int("BENCH_LOAD_DRAIN_SECONDS", 180)}
    results: dict = {}
    for topology in topologies:
        print(f"--- topology: {topology}")
        with scratch_dir(f"load-{topology}-") as folder:
            mount = folder / "mount"
            mount.mkdir()
            starter = serve_stack if topology == "serve" else scale_out_stack
            with starter(folder, mount) as stack:
                fixture = prepare(stack.apis[0], mount)
                results[topology] = run_load(stack, fixture, **options)
    return results
