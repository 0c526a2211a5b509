"""``GET /datasets`` with a large registry: bulk-inserted rows, then p50/p95 of several filter/sort/page variants."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from sqlalchemy import insert, select, text

from bench._raster_api import Api
from georeg.core.db import make_engine
from georeg.core.models import Entry, Raster

BATCH = 5000
PLATFORMS = ["S1A", "S1B", "S2A", "S2B", "S3A", None]
SOURCES = ["upload", "path", "csw", "task"]
EPOCH = datetime(2023, 1, 1, tzinfo=UTC)
VARIANTS = {
    "default (-created)": {},
    "deep page (offset 50000)": {"offset": 50000},
    "q=t33wxr": {"q": "t33wxr"},
    "q=s2a (many hits)": {"q": "s2a"},
    "platform=S2": {"platform": "S2"},
    "source=csw": {"source": "csw"},
    "bbox 5,55,15,65": {"bbox": "5,55,15,65"},
    "start/end 2 months": {"start": "2025-01-01T00:00:00Z", "end": "2025-03-01T00:00:00Z"},
    "sort=title": {"sort": "title"},
    "sort=-size": {"sort": "-size"},
    "bbox+platform+time, -acquired": {"bbox": "-20,30,40,70", "platform": "S2", "start": "2024-01-01T00:00:00Z",
                                      "sort": "-acquired"},
}


def _template(folder: Path) -> Path:
    path = folder / "template.tif"
    profile = {"driver": "GTiff", "width": 64, "height": 64, "count": 1, "dtype": "uint16", "nodata": 0,
               "crs": "EPSG:32633", "transform": from_origin(500000, 7000000, 10, 10)}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write((np.arange(64 * 64).reshape(1, 64, 64) % 250 + 1).astype("uint16"))
    return path


def _box(minx: float, miny: float, maxx: float, maxy: float) -> dict:
    if minx > maxx:
        return {"type": "MultiPolygon", "coordinates": [
            [[[minx, miny], [180.0, miny], [180.0, maxy], [minx, maxy], [minx, miny]]],
            [[[-180.0, miny], [maxx, miny], [maxx, maxy], [-180.0, maxy], [-180.0, miny]]]]}
    return {"type": "Polygon", "coordinates": [[[minx, miny], [maxx, miny], [maxx, maxy], [minx, maxy], [minx, miny]]]}


def _rows(start: int, count: int, dataset_id: int, template: dict, rng: np.random.Generator) -> tuple[list, list]:
    """Entry and raster rows ``start .. start+count`` (varied footprints, platforms, sources, times, titles)."""
    minx = rng.uniform(-180, 178, count)
    maxx = np.minimum(minx + rng.uniform(0.1, 2.0, count), 180.0)
    crossing = rng.random(count) < 0.01
    minx[crossing], maxx[crossing] = 179.5, -179.5
    miny = rng.uniform(-80, 78, count)
    maxy = miny + rng.uniform(0.1, 2.0, count)
    acquired = rng.integers(0, 3 * 365 * 86400, count)
    platforms = rng.integers(0, len(PLATFORMS), count)
    tiles = rng.integers(0, 2000, count)
    entries, rasters = [], []
    for k in range(count):
        i = start + k
        platform = PLATFORMS[platforms[k]]
        bounds = [float(minx[k]), float(miny[k]), float(maxx[k]), float(maxy[k])]
        public_id = uuid.uuid4().hex
        tile = "T33WXR" if tiles[k] == 0 else f"T{tiles[k]:02d}ABC"
        title = f"{platform or 'scene'}_MSIL2A_{(EPOCH + timedelta(seconds=int(acquired[k]))):%Y%m%dT%H%M%S}_{tile}"
        entries.append({"public_id": public_id, "dataset_id": dataset_id, "path": f"bench/{i:07d}/{title}.tif",
                        "type": "raster", "size": 1_000_000 + i, "sha256": format(i, "064x"),
                        "mtime": EPOCH, "properties": {"source": "upload"}, "footprint": _box(*bounds),
                        "crs": "EPSG:32633", "bounds": bounds})
        identifier = title if i % 4 == 2 else None
        search_text = "\n".join(p for p in (title, identifier, template["source_path"], public_id) if p).lower()
        rasters.append({**template, "public_id": public_id, "title": title, "source": SOURCES[i % len(SOURCES)],
                        "source_identifier": identifier, "platform": platform, "search_text": search_text,
                        "acquired_at": EPOCH + timedelta(seconds=int(acquired[k])), "sha256": format(i, "064x"),
                        "size": 1_000_000 + i, "minx": bounds[0], "miny": bounds[1], "maxx": bounds[2],
                        "maxy": bounds[3], "footprint": _box(*bounds), "created_at": EPOCH + timedelta(seconds=i)})
    return entries, rasters


def _bulk_insert(url: str, count: int) -> float:
    """Copies of the one real registration, ``count`` of them, inserted through SQL (``search_text`` as the ORM hook
    computes it); then statistics, and on PostgreSQL the visibility map (VACUUM, as autovacuum does after inserts)."""
    engine = make_engine(url)
    started = time.perf_counter()
    try:
        entries_t, rasters_t = Entry.__table__, Raster.__table__
        with engine.begin() as connection:
            real = connection.execute(select(rasters_t)).mappings().one()
            dataset_id = connection.execute(
                select(entries_t.c.dataset_id).where(entries_t.c.id == real["entry_id"])
            ).scalar_one()
            template = {k: v for k, v in real.items() if k not in ("id", "entry_id")}
            rng = np.random.default_rng(100)
            for start in range(0, count, BATCH):
                entries, rasters = _rows(start, min(BATCH, count - start), dataset_id, template, rng)
                ids = connection.execute(insert(entries_t).returning(entries_t.c.id, sort_by_parameter_order=True),
                                         entries).scalars().all()
                connection.execute(insert(rasters_t), [{**r, "entry_id": e} for r, e in zip(rasters, ids, strict=True)])
        with engine.connect() as connection:
            command = "VACUUM ANALYZE" if connection.dialect.name == "postgresql" else "ANALYZE"
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(text(command))
    finally:
        engine.dispose()
    return time.perf_counter() - started


def bench_listing(folder: Path, database_url: str | None, rows: int, requests: int, target_ms: float) -> dict:
    backend = "postgresql" if database_url else "sqlite"
    mount = folder / "mount"
    mount.mkdir(parents=True)
    with Api(folder, database_url=database_url, mount_roots=[mount]) as api:
        api.register_path(_template(mount))
        url = database_url or f"sqlite:///{folder / 'data' / 'georeg.db'}"
        inserted_s = _bulk_insert(url, rows)
        total = api.get("/datasets").json()["total"]
        print(f"listing  : {backend}: {total} rows ({rows} bulk-inserted in {inserted_s:.1f} s, then (VACUUM) ANALYZE)")
        results = {"rows": total, "variants": {}}
        for name, params in VARIANTS.items():
            for _ in range(3):
                api.get("/datasets", params=params)
            times = []
            for _ in range(requests):
                started = time.perf_counter()
                body = api.get("/datasets", params=params).json()
                times.append((time.perf_counter() - started) * 1000)
            p50, p95 = float(np.median(times)), float(np.percentile(times, 95))
            verdict = "ok" if p50 < target_ms else "MISSES TARGET"
            print(f"listing  : {backend:10} {name:32} p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  total {body['total']:6d}"
                  f"  (target p50 < {target_ms:.0f} ms)  {verdict}")
            results["variants"][name] = {"p50_ms": round(p50, 2), "p95_ms": round(p95, 2), "total": body["total"],
                                         "ok": p50 < target_ms}
        results["ok"] = all(v["ok"] for v in results["variants"].values())
    return results
