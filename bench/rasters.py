"""The raster registry (Datasets API) through the real API, each part against a reference measured in the same run.

* sample: ``GET /datasets/{id}/sample`` latency vs a direct rasterio sample of the same file (open, reproject the
  point, index, one-pixel window read), point by point, interleaved; ratio of the medians. A one-pixel read costs
  about as much as any HTTP round trip, so the target is on what the route adds beyond the API's floor
  (``GET /version``, measured interleaved on the same connection): at most 3 x the direct sample.
* thumbnail: a cold ``thumbnail.png`` (caches cleared before each, untimed) of a 10k x 10k uint16 raster without
  overviews vs a direct rasterio decimated read + 2-98 % stretch + Pillow PNG encode; ratio of the medians. georeg
  opens the file with GTIFF_DIRECT_IO (subsampling an uncompressed file without the block cache), the reference
  with rasterio's defaults, so the ratio can drop below 1. The reference's time depends on glibc's malloc state in
  the bench process: its 512 KiB blocks come either from the reused heap (~35 ms) or from fresh mmap'ed pages that
  must be faulted in (~140 ms on the development VM), for whole runs at a time, hence its printed min-max; the
  API's direct subsampling allocates no block cache and stays at ~64 ms (ratio 0.4-1.8 against the two modes).
* tile: ``tiles/{z}/{x}/{y}.png`` cache misses (distinct tiles at the raster's native zoom) vs rio-tiler directly
  (Reader.tile + rescale + PNG render, the same tiles); ratio of the medians.
* entry tile: the Registry API's per-file tiles of an uploaded 4000 x 4000 uint16 GeoTIFF vs the Datasets API's tile
  route on the same content (registered by path), alternating over the same distinct tiles, both cache misses;
  ratio of the medians, target ~1 (<= 1.2): both routes draw through the same tiling code.
* listing: ``GET /datasets`` p50/p95 with ``BENCH_LIST_ROWS`` (100 000) registered rows on SQLite and on PostgreSQL (a
  scratch database created on ``BENCH_POSTGRES_URL`` and dropped afterwards), rows bulk-inserted through SQL after
  one real registration (the template), then ANALYZE; several filter/sort/page variants; target p50 < 50 ms.
* register: a ``BENCH_BIG_MB`` (1024) GeoTIFF registered by upload and by mounted path while psutil samples the
  API process's RSS every 20 ms; target peak < 300 MB (streamed hashing, bounded GDAL cache).

The API runs as a uvicorn subprocess (as in production), its data under ``<project>/.bench/`` (git-ignored),
removed at the end. Settings: ``BENCH_SAMPLES`` (200), ``BENCH_THUMB_PIXELS`` (10000), ``BENCH_THUMB_RUNS`` (5),
``BENCH_TILES`` (30), ``BENCH_LIST_ROWS`` (100000), ``BENCH_LIST_REQUESTS`` (100 per variant), ``BENCH_BIG_MB``
(1024), ``BENCH_POSTGRES_URL`` (``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``) and
``BENCH_RASTER_PARTS`` (``sample,thumbnail,tile,entry_tile,listing,register``).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import morecantile
import numpy as np
import rasterio
from PIL import Image
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.warp import transform as warp_transform
from rasterio.windows import Window
from rio_tiler.errors import NoOverviewWarning
from rio_tiler.io import Reader

from bench._common import check, env_int, scratch_dir, upload_file
from bench._raster_api import Api, postgres_scratch
from bench._raster_listing import bench_listing
from georeg.core.storage import sha256_file

MB = 1024 * 1024
TARGETS = {"sample_beyond_floor_ratio": 3.0, "thumbnail_ratio": 1.5, "tile_ratio": 1.5, "entry_tile_ratio": 1.2,
           "list_p50_ms": 50.0, "rss_mb": 300.0}
PARTS = ("sample", "thumbnail", "tile", "entry_tile", "listing", "register")


def _median_ms(values: list[float]) -> float:
    return float(np.median(values)) * 1000


def _timed(action: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def _write_raster(path: Path, *, side: int, dtype: str, count: int = 1, nodata: float | None = None,
                  pixel: float = 10.0, block: int = 512) -> Path:
    """A tiled, uncompressed UTM 33N GeoTIFF of ``side`` x ``side`` written strip by strip (a ramp with a nodata
    corner), so even a 1 GB file never sits in memory."""
    profile = {"driver": "GTiff", "width": side, "height": side, "count": count, "dtype": dtype, "nodata": nodata,
               "crs": "EPSG:32633", "transform": from_origin(500000, 7100000, pixel, pixel), "tiled": True,
               "blockxsize": block, "blockysize": block, "BIGTIFF": "IF_SAFER"}
    limit = np.iinfo(dtype).max if np.issubdtype(np.dtype(dtype), np.integer) else 1000
    cols = np.arange(side, dtype="int64")
    with rasterio.open(path, "w", **profile) as dst:
        for top in range(0, side, block):
            rows = np.arange(top, min(top + block, side), dtype="int64")[:, None]
            strip = ((rows * 7 + cols[None, :] * 3) % (limit - 1) + 1).astype(dtype)
            if nodata is not None and top < side // 8:
                strip[:, : side // 8] = nodata
            dst.write(np.broadcast_to(strip, (count, *strip.shape)), window=Window(0, top, side, strip.shape[0]))
    return path


def _ratio_report(name: str, api_times: list[float], ref_times: list[float], target: float, what: str) -> dict:
    api_ms, ref_ms = _median_ms(api_times), _median_ms(ref_times)
    ratio = api_ms / ref_ms
    verdict = "" if math.isinf(target) else f"(target <= {target})  {'ok' if ratio <= target else 'MISSES TARGET'}"
    api_p95_ms = float(np.percentile(api_times, 95)) * 1000
    ref_low, ref_high = min(ref_times) * 1000, max(ref_times) * 1000
    print(f"{name:9}: API p50 {api_ms:8.2f} ms (p95 {api_p95_ms:8.2f})   {what} p50 "
          f"{ref_ms:8.2f} ms ({ref_low:.1f}-{ref_high:.1f})   ratio {ratio:5.2f} {verdict}")
    return {"api_p50_ms": round(api_ms, 3), "api_p95_ms": round(api_p95_ms, 3),
            "reference_p50_ms": round(ref_ms, 3), "reference_min_ms": round(ref_low, 3),
            "reference_max_ms": round(ref_high, 3), "ratio": round(ratio, 3), "target": target, "ok": ratio <= target,
            "runs": len(api_times)}


# --------------------------------------------------------------------------- sample


def _direct_sample(path: Path, lon: float, lat: float) -> list:
    with rasterio.open(path) as src:
        xs, ys = warp_transform("EPSG:4326", src.crs, [lon], [lat])
        row, col = src.index(xs[0], ys[0])
        data = src.read(window=Window(col, row, 1, 1), masked=True)
    return [None if data.mask[i, 0, 0] else data[i, 0, 0].item() for i in range(data.shape[0])]


def bench_sample(api: Api, folder: Path, count: int) -> dict:
    path = _write_raster(folder / "sample.tif", side=2048, dtype="float32", nodata=-9999.0, block=256)
    dataset_id = api.register_path(path)["dataset_id"]
    rng = np.random.default_rng(5)
    with rasterio.open(path) as src:
        xs, ys = src.xy(rng.integers(0, src.height, count), rng.integers(0, src.width, count))
        lons, lats = warp_transform(src.crs, "EPSG:4326", list(xs), list(ys))
    url = f"/datasets/{dataset_id}/sample"
    for lon, lat in list(zip(lons, lats, strict=True))[:5]:  # warm-up: first request of the route, GDAL drivers
        api.get(url, params={"lon": lon, "lat": lat})
        _direct_sample(path, lon, lat)
    api_times, ref_times, floor_times, record_times = [], [], [], []
    for lon, lat in zip(lons, lats, strict=True):
        floor_times.append(_timed(lambda: api.get("/version"))[0])
        record_times.append(_timed(lambda: api.get(f"/datasets/{dataset_id}"))[0])
        elapsed, response = _timed(lambda lon=lon, lat=lat: api.get(url, params={"lon": lon, "lat": lat}))
        api_times.append(elapsed)
        elapsed, truth = _timed(lambda lon=lon, lat=lat: _direct_sample(path, lon, lat))
        ref_times.append(elapsed)
        if [v["value"] for v in response.json()["values"]] != truth:
            raise RuntimeError(f"sample at {lon}, {lat}: API {response.json()['values']} != rasterio {truth}")
    report = _ratio_report("sample", api_times, ref_times, math.inf, "rasterio")
    floor_ms, record_ms = _median_ms(floor_times), _median_ms(record_times)
    beyond = (report["api_p50_ms"] - floor_ms) / report["reference_p50_ms"]
    ok = beyond <= TARGETS["sample_beyond_floor_ratio"]
    print(f"sample   : HTTP floor (GET /version) p50 {floor_ms:.2f} ms, GET /datasets/{{id}} p50 {record_ms:.2f} ms; "
          f"beyond the floor the sample costs {report['api_p50_ms'] - floor_ms:.2f} ms = {beyond:.2f} x the direct "
          f"sample (target <= {TARGETS['sample_beyond_floor_ratio']})  {'ok' if ok else 'MISSES TARGET'}")
    return {**report, "version_p50_ms": round(floor_ms, 3), "record_p50_ms": round(record_ms, 3),
            "beyond_floor_ratio": round(beyond, 3), "target": TARGETS["sample_beyond_floor_ratio"], "ok": ok}


# --------------------------------------------------------------------------- thumbnail and tiles


def _direct_thumbnail(path: Path, size: int) -> bytes:
    with rasterio.open(path) as src:
        scale = max(src.width, src.height) / size
        shape = (max(1, round(src.height / scale)), max(1, round(src.width / scale)))
        data = src.read(1, out_shape=shape, masked=True, resampling=Resampling.nearest)
    low, high = np.percentile(data.compressed(), [2, 98])
    gray = (np.clip((np.ma.filled(data, low).astype("float64") - low) / max(high - low, 1), 0, 1) * 255).astype("uint8")
    alpha = np.where(np.ma.getmaskarray(data), 0, 255).astype("uint8")
    buffer = io.BytesIO()
    Image.fromarray(np.dstack([gray, alpha]), mode="LA").save(buffer, format="PNG")
    return buffer.getvalue()


def bench_thumbnail(api: Api, path: Path, dataset_id: str, runs: int, size: int = 256) -> dict:
    url = f"/datasets/{dataset_id}/thumbnail.png"
    api_times, ref_times = [], []
    for run in range(runs + 1):  # the first pair is an untimed warm-up
        api.delete("/thumbnails")
        elapsed, response = _timed(lambda: api.get(url, params={"size": size}))
        if response.headers.get("x-thumbnail-cache") != "rendered":
            raise RuntimeError("thumbnail came from a cache; the benchmark needs cold renders")
        ref_elapsed, png = _timed(lambda: _direct_thumbnail(path, size))
        if run:
            api_times.append(elapsed)
            ref_times.append(ref_elapsed)
    if Image.open(io.BytesIO(response.content)).size != Image.open(io.BytesIO(png)).size:
        raise RuntimeError("API and reference thumbnails differ in size")
    return _ratio_report("thumbnail", api_times, ref_times, TARGETS["thumbnail_ratio"], "rasterio+Pillow")


@contextlib.contextmanager
def _tile_reader(path: Path) -> Iterator[Reader]:
    """rio-tiler's Reader, without its NoOverviewWarning: the bench raster has no overviews on purpose."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoOverviewWarning)
        with Reader(str(path)) as src:
            yield src


def _direct_tile(path: Path, tile: morecantile.Tile, low: float, high: float) -> bytes:
    with _tile_reader(path) as src:
        image = src.tile(tile.x, tile.y, tile.z, tilesize=256, indexes=(1,))
    image.rescale(in_range=[(low, high)])
    return image.render(img_format="PNG", add_mask=True)


def bench_tiles(api: Api, path: Path, record: dict, count: int) -> dict:
    tiles = _distinct_tiles(path, count + 1)
    zoom = tiles[0].z
    stats = record["statistics"][0]
    api_times, ref_times = [], []
    for index, tile in enumerate(tiles):  # the first pair is an untimed warm-up
        url = f"/datasets/{record['dataset_id']}/tiles/{tile.z}/{tile.x}/{tile.y}.png"
        elapsed, response = _timed(lambda url=url: api.get(url))
        if response.headers.get("x-tile-cache") != "miss":
            raise RuntimeError(f"tile {tile} came from the cache")
        ref_elapsed, _ = _timed(lambda tile=tile: _direct_tile(path, tile, stats["p2"], stats["p98"]))
        if index:
            api_times.append(elapsed)
            ref_times.append(ref_elapsed)
    print(f"tiles    : {count} distinct tiles at zoom {zoom} (the raster's native zoom), cache misses")
    return _ratio_report("tile", api_times, ref_times, TARGETS["tile_ratio"], "rio-tiler")


def _distinct_tiles(path: Path, count: int) -> list[morecantile.Tile]:
    """``count`` distinct tiles around the raster's centre at its native zoom."""
    tms = morecantile.tms.get("WebMercatorQuad")
    with _tile_reader(path) as src:
        zoom = src.maxzoom
        west, south, east, north = src.get_geographic_bounds(tms.rasterio_geographic_crs)
    middle = tms.tile((west + east) / 2, (south + north) / 2, zoom)
    side = math.ceil(math.sqrt(count))
    return [morecantile.Tile(middle.x + dx, middle.y + dy, zoom) for dx in range(side) for dy in range(side)][:count]


def bench_entry_tiles(api: Api, path: Path, record: dict, count: int) -> dict:
    """The Registry API's per-file tiles (``/orgs/{org}/ds/{ds}/tiles/...?path=``) of an uploaded copy of ``path``
    vs the Datasets API's tile route on the same content, alternating, distinct tiles (cache misses both)."""
    check(api.client.post("/orgs/admin/ds", json={"slug": "bench-tiles"}), "create dataset")
    upload_file(api.base_url, api.token, "/orgs/admin/ds/bench-tiles/obj", path, fields={"path": "tiles.tif"})
    api_times, ref_times = [], []
    for index, tile in enumerate(_distinct_tiles(path, count + 1)):  # the first pair is an untimed warm-up
        entry_url = f"/orgs/admin/ds/bench-tiles/tiles/{tile.z}/{tile.x}/{tile.y}.png"
        raster_url = f"/datasets/{record['dataset_id']}/tiles/{tile.z}/{tile.x}/{tile.y}.png"
        elapsed, response = _timed(lambda url=entry_url: api.get(url, params={"path": "tiles.tif"}))
        ref_elapsed, ref_response = _timed(lambda url=raster_url: api.get(url))
        if "miss" not in (response.headers.get("x-tile-cache"), ref_response.headers.get("x-tile-cache")) or \
                response.headers.get("x-tile-cache") != ref_response.headers.get("x-tile-cache"):
            raise RuntimeError(f"tile {tile}: not a cache miss on both routes")
        if index:
            api_times.append(elapsed)
            ref_times.append(ref_elapsed)
    print(f"entry tiles: {count} distinct tiles of the same file, Registry route vs Datasets API route")
    return _ratio_report("entrytile", api_times, ref_times, TARGETS["entry_tile_ratio"], "Datasets API")


# --------------------------------------------------------------------------- registration of a big file


class RssSampler:
    """Peak RSS of a process (with its children) sampled every ``interval`` seconds while the block runs."""

    def __init__(self, api: Api, interval: float = 0.02):
        self.api, self.interval, self.peak = api, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.api.rss())
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self.peak = self.api.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.api.rss())


def bench_register(api: Api, folder: Path, size_mb: int) -> dict:
    side = max(512, int(math.sqrt(size_mb * MB)) // 512 * 512)
    started = time.perf_counter()
    path = _write_raster(folder / "big.tif", side=side, dtype="uint8", nodata=0)
    size = path.stat().st_size
    print(f"register : {size / MB:.0f} MB GeoTIFF ({side} x {side} uint8, tiled, no overviews) written in "
          f"{time.perf_counter() - started:.1f} s")
    hash_s, _ = _timed(lambda: sha256_file(path))
    idle = api.rss()
    result = {"file_mb": round(size / MB, 1), "idle_rss_mb": round(idle / MB, 1), "hash_reference_s": round(hash_s, 2)}
    with RssSampler(api) as upload_rss:
        upload_s, record = _timed(lambda: api.upload_raster(path))
    api.delete(f"/datasets/{record['dataset_id']}")
    with RssSampler(api) as path_rss:
        path_s, _ = _timed(lambda: api.register_path(path))
    for name, seconds, sampler in (("upload", upload_s, upload_rss), ("mounted path", path_s, path_rss)):
        peak_mb = sampler.peak / MB
        verdict = "ok" if peak_mb < TARGETS["rss_mb"] else "MISSES TARGET"
        print(f"register : by {name:12}: {seconds:6.1f} s ({size / MB / seconds:6.1f} MB/s; sha256 alone "
              f"{hash_s:.1f} s)  peak RSS {peak_mb:6.1f} MB (idle {idle / MB:.1f}; target < {TARGETS['rss_mb']:.0f})"
              f"  {verdict}")
        key = name.split()[0]
        result.update({f"{key}_s": round(seconds, 2), f"{key}_peak_rss_mb": round(peak_mb, 1),
                       f"{key}_ok": peak_mb < TARGETS["rss_mb"]})
    return result


# --------------------------------------------------------------------------- run


def _load(results: dict, label: str) -> None:
    """The machine's 1-minute load average before a part (the reference shares the machine, the ratio less so)."""
    load = os.getloadavg()[0]
    results.setdefault("load_average", {})[label] = round(load, 2)
    print(f"load     : {load:.2f} (1-min load average, {os.cpu_count()} CPUs) before {label}")


def _api_parts(results: dict, parts: list[str], tmp: Path, mount: Path) -> None:
    with Api(tmp / "api", mount_roots=[mount]) as api:
        print(f"API      : {api.base_url} (pid {api.pid}), data in {tmp}")
        if "sample" in parts:
            _load(results, "sample")
            results["sample"] = bench_sample(api, mount, env_int("BENCH_SAMPLES", 200))
        if {"thumbnail", "tile"} & set(parts):
            side = env_int("BENCH_THUMB_PIXELS", 10000)
            big = _write_raster(mount / "thumb.tif", side=side, dtype="uint16", nodata=0)
            record = api.register_path(big)
            print(f"raster   : {side} x {side} uint16, tiled 512, no overviews, {big.stat().st_size / MB:.0f} MB")
            if "thumbnail" in parts:
                _load(results, "thumbnail")
                results["thumbnail"] = bench_thumbnail(api, big, record["dataset_id"], env_int("BENCH_THUMB_RUNS", 5))
            if "tile" in parts:
                _load(results, "tile")
                results["tile"] = bench_tiles(api, big, record, env_int("BENCH_TILES", 30))
            big.unlink()
        if "entry_tile" in parts:
            _load(results, "entry_tile")
            raster = _write_raster(mount / "entry-tiles.tif", side=4000, dtype="uint16", nodata=0)
            results["entry_tile"] = bench_entry_tiles(api, raster, api.register_path(raster),
                                                      env_int("BENCH_TILES", 30))
            raster.unlink()
        if "register" in parts:
            _load(results, "register")
            results["register"] = bench_register(api, mount, env_int("BENCH_BIG_MB", 1024))


def _listing_parts(results: dict, tmp: Path) -> None:
    rows, requests = env_int("BENCH_LIST_ROWS", 100_000), env_int("BENCH_LIST_REQUESTS", 100)
    _load(results, "listing on SQLite")
    results["listing"] = {"sqlite": bench_listing(tmp / "list-sqlite", None, rows, requests, TARGETS["list_p50_ms"])}
    admin_url = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    with postgres_scratch(admin_url) as url:
        _load(results, "listing on PostgreSQL")
        results["listing"]["postgresql"] = (
            bench_listing(tmp / "list-pg", url, rows, requests, TARGETS["list_p50_ms"]) if url
            else {"skipped": f"PostgreSQL not reachable at {admin_url}"})


def run() -> dict:
    parts = [p.strip() for p in os.environ.get("BENCH_RASTER_PARTS", ",".join(PARTS)).split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown BENCH_RASTER_PARTS {sorted(unknown)}; use {', '.join(PARTS)}")
    results: dict = {"targets": TARGETS}
    with scratch_dir("rasters-") as tmp:
        mount = tmp / "mount"
        mount.mkdir()
        if {"sample", "thumbnail", "tile", "entry_tile", "register"} & set(parts):
            _api_parts(results, parts, tmp, mount)
        if "listing" in parts:
            _listing_parts(results, tmp)
    return results
