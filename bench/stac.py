"""STAC item search over 100,000 items: p50/p95 of search variants on SQLite and PostgreSQL (target p50 < 50 ms).

The registry gets one real registration, then 100,000 copies bulk-inserted through SQL (``bench._raster_listing``:
varied footprints, 1 % across the antimeridian, acquisition times over three years). Every item is then reachable
twice (as an entry of ``default/registry`` and in the ``rasters`` collection), so a search sees 200,000 candidates.
Environment: ``BENCH_STAC_ROWS`` (100000), ``BENCH_STAC_REQUESTS`` (30), ``BENCH_POSTGRES_URL`` (an admin URL of
another server).
"""

from __future__ import annotations

import os
import time

import numpy as np

from bench._common import env_int, scratch_dir
from bench._raster_api import Api, postgres_scratch
from bench._raster_listing import _bulk_insert, _template

TARGET_MS = 50.0
AREA = {"type": "Polygon", "coordinates": [[[5, 55], [15, 55], [15, 65], [5, 65], [5, 55]]]}
VARIANTS = {
    "search, first page of 10": ("GET", "/stac/search", {"limit": 10}),
    "search bbox 5,55,15,65": ("GET", "/stac/search", {"bbox": "5,55,15,65", "limit": 10}),
    "search bbox across 180°": ("GET", "/stac/search", {"bbox": "179,-20,-179,20", "limit": 10}),
    "search datetime 2 months": ("GET", "/stac/search", {"datetime": "2025-01-01T00:00:00Z/2025-03-01T00:00:00Z"}),
    "search rasters, bbox, 100": ("GET", "/stac/search", {"collections": "rasters", "bbox": "-20,30,40,70",
                                                          "limit": 100}),
    "POST search intersects": ("POST", "/stac/search", {"intersects": AREA, "limit": 10}),
    "collection items, deep token": ("GET", "/stac/collections/default/registry/items", {"token": "e90000"}),
    "collections (extents)": ("GET", "/stac/collections", {}),
}


def _bench_backend(folder, database_url: str | None, rows: int, requests: int) -> dict:
    backend = "postgresql" if database_url else "sqlite"
    mount = folder / "mount"
    mount.mkdir(parents=True)
    with Api(folder, database_url=database_url, mount_roots=[mount]) as api:
        api.register_path(_template(mount))
        url = database_url or f"sqlite:///{folder / 'data' / 'georeg.db'}"
        inserted_s = _bulk_insert(url, rows)
        print(f"stac     : {backend}: {rows} rows bulk-inserted in {inserted_s:.1f} s")
        results = {}
        for name, (method, path, params) in VARIANTS.items():
            def call(method=method, path=path, params=params):
                if method == "POST":
                    return api.client.post(path, json=params)
                return api.client.get(path, params=params)
            for _ in range(3):
                response = call()
                response.raise_for_status()
            times = []
            for _ in range(requests):
                started = time.perf_counter()
                body = call().json()
                times.append((time.perf_counter() - started) * 1000)
            p50, p95 = float(np.median(times)), float(np.percentile(times, 95))
            count = len(body.get("features", body.get("collections", [])))
            verdict = "ok" if p50 < TARGET_MS else "MISSES TARGET"
            print(f"stac     : {backend:10} {name:30} p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  returned {count:4d}"
                  f"  (target p50 < {TARGET_MS:.0f} ms)  {verdict}")
            results[name] = {"p50_ms": round(p50, 2), "p95_ms": round(p95, 2), "ok": p50 < TARGET_MS}
    return results


def run() -> dict:
    rows = env_int("BENCH_STAC_ROWS", 100_000)
    requests = env_int("BENCH_STAC_REQUESTS", 30)
    results = {}
    with scratch_dir("georeg-bench-stac-") as folder:
        results["sqlite"] = _bench_backend(folder / "sqlite", None, rows, requests)
        admin_url = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
        with postgres_scratch(admin_url) as pg_url:
            if pg_url:
                results["postgresql"] = _bench_backend(folder / "postgresql", pg_url, rows, requests)
            else:
                print("stac     : PostgreSQL does not answer; SQLite only")
    results["ok"] = all(v["ok"] for backend in results.values() for v in backend.values())
    return results
