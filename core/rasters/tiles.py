"""WebMercatorQuad PNG tiles (rio-tiler) with a disk cache laid out like MapCache's ``default`` disk cache.

Layout: ``cache/tiles/<tileset>/<grid>/<zz>/<xxx>/<xxx>/<xxx>/<yyy>/<yyy>/<yyy>.png`` where the x and y
triplets are ``n // 1000000``, ``n // 1000 % 1000`` and ``n % 1000`` zero-padded to three digits, the
grid is MapCache's ``GoogleMapsCompatible`` and the tileset is the dataset id (XYZ, origin top-left).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import morecantile
import numpy as np
from lxml import etree

from georeg.core.errors import InsufficientStorage, InvalidInput, NotFound
from georeg.core.rasters.png_cache import read_cached_png, write_cached_png
from georeg.core.storage import write_atomically

_RIO_TILER_IMPORT = threading.Lock()
GRID = "GoogleMapsCompatible"
TMS = morecantile.tms.get("WebMercatorQuad")
MAX_ZOOM = 22
TILE_SIZE = 256


def rio_tiler() -> tuple[type, type]:
    """rio-tiler's ``Reader`` and ``TileOutsideBounds``, imported on first use (rio-tiler loads xarray and pandas:
    only processes that draw import it) under a lock: threads importing it at once may see it half-initialised."""
    with _RIO_TILER_IMPORT:
        from rio_tiler.errors import TileOutsideBounds
        from rio_tiler.io import Reader
    return Reader, TileOutsideBounds


def check_tile(z: int, x: int, y: int) -> None:
    if not 0 <= z <= MAX_ZOOM:
        raise InvalidInput(f"zoom must be within 0..{MAX_ZOOM}", code="invalid_tile")
    if not (0 <= x < 2**z and 0 <= y < 2**z):
        raise InvalidInput(f"tile {z}/{x}/{y} does not exist in WebMercatorQuad", code="invalid_tile")


def tileset_dir(cache_dir: Path, tileset: str) -> Path:
    """The disk cache of one tileset (a dataset id): everything seeded or rendered for it."""
    return cache_dir / "tiles" / tileset


def tile_path(cache_dir: Path, tileset: str, z: int, x: int, y: int) -> Path:
    def triplet(n: int) -> list[str]:
        return [f"{n // 1000000:03d}", f"{n // 1000 % 1000:03d}", f"{n % 1000:03d}"]

    *xs, = triplet(x)
    *ys, = triplet(y)
    return tileset_dir(cache_dir, tileset) / GRID / f"{z:02d}" / xs[0] / xs[1] / xs[2] / ys[0] / ys[1] / f"{ys[2]}.png"


def _percentiles(src, indexes: tuple[int, ...]) -> list[dict]:  # noqa: ANN001
    """p2/p98 of each band from a read of at most 1024 px on the long side (for rasters without stored stats)."""
    scale = max(1.0, max(src.dataset.width, src.dataset.height) / 1024)
    shape = (max(1, round(src.dataset.height / scale)), max(1, round(src.dataset.width / scale)))
    data = src.dataset.read(list(indexes), out_shape=(len(indexes), *shape), masked=True)
    found = []
    for band in data:
        values = band.compressed()
        low, high = (np.percentile(values, [2, 98]) if values.size else (0.0, 255.0))
        found.append({"p2": float(low), "p98": float(high)})
    return [found[indexes.index(b)] if b in indexes else {} for b in range(1, max(indexes) + 1)]


def _stored_percentiles(src, indexes: tuple[int, ...], stats_file: Path | None, tmp_dir: Path | None) -> list[dict]:  # noqa: ANN001
    """:func:`_percentiles`, kept in ``stats_file`` (JSON, written atomically) so they are measured once per
    content rather than once per tile."""
    if stats_file is not None:
        try:
            stored = json.loads(stats_file.read_text())
            if isinstance(stored, list) and len(stored) >= max(indexes):
                return stored
        except (OSError, ValueError):
            pass
    measured = _percentiles(src, indexes)
    if stats_file is not None and tmp_dir is not None:
        with contextlib.suppress(InsufficientStorage):  # a full disk: measured again next time
            write_atomically([json.dumps(measured).encode()], stats_file, tmp_dir=tmp_dir, max_bytes=None)
    return measured


def render_tile(path: Path, z: int, x: int, y: int, *, stats: list[dict] | None, tilesize: int = TILE_SIZE,
                stats_file: Path | None = None, tmp_dir: Path | None = None) -> bytes:
    """One ``tilesize`` PNG; 1-band and non-8-bit rasters are stretched between the 2nd and 98th percentiles (of
    ``stats``, else measured on a reduced read of the raster and kept in ``stats_file`` when given)."""
    Reader, TileOutsideBounds = rio_tiler()  # noqa: N806 - classes
    check_tile(z, x, y)
    with Reader(str(path), tms=TMS) as src:
        try:
            indexes = (1, 2, 3) if src.dataset.count >= 3 else (1,)
            image = src.tile(x, y, z, tilesize=tilesize, indexes=indexes)
        except TileOutsideBounds as exc:
            raise NotFound(f"tile {z}/{x}/{y} is outside the dataset", code="tile_outside_bounds") from exc
        if image.data.dtype != np.uint8 or len(indexes) == 1:
            stats = stats if stats is not None else _stored_percentiles(src, indexes, stats_file, tmp_dir)
            ranges = []
            for band in indexes:
                band_stats = (stats or [])[band - 1] if stats and len(stats) >= band else {}
                low, high = band_stats.get("p2", 0.0), band_stats.get("p98", 255.0)
                ranges.append((low, high if high > low else low + 1))
            image.rescale(in_range=ranges)
        return image.render(img_format="PNG", add_mask=True)


def cached_tile(cache_dir: Path, tmp_dir: Path, tileset: str, source: Path, z: int, x: int, y: int,
                *, stats: list[dict] | None, tilesize: int = TILE_SIZE,
                content: str | None = None) -> tuple[bytes, bool]:
    """(png, came from cache). Without ``stats``, the percentiles measured for ``content`` (a content hash) are
    kept next to the tiles and measured once."""
    check_tile(z, x, y)
    target = tile_path(cache_dir, tileset, z, x, y)
    cached = read_cached_png(target)
    if cached is not None:
        return cached, True
    stats_file = cache_dir / "stats" / f"{content}.json" if content and stats is None else None
    png = render_tile(source, z, x, y, stats=stats, tilesize=tilesize, stats_file=stats_file, tmp_dir=tmp_dir)
    write_cached_png(png, target, tmp_dir=tmp_dir)
    return png, False


def _boxes(bounds: tuple[float, float, float, float]) -> list[tuple[float, float, float, float]]:
    minx, miny, maxx, maxy = bounds
    return [(minx, miny, 180.0, maxy), (-180.0, miny, maxx, maxy)] if minx > maxx else [bounds]


def count_tiles(bounds: tuple[float, float, float, float], zoom: int) -> int:
    """How many tiles cover WGS84 ``bounds`` at ``zoom``, without listing them."""
    total = 0
    for minx, miny, maxx, maxy in _boxes(bounds):
        upper_left = TMS.tile(minx, min(maxy, 85.0511), zoom)
        lower_right = TMS.tile(min(maxx, 179.9999999), max(miny, -85.0511), zoom)
        total += (lower_right.x - upper_left.x + 1) * (lower_right.y - upper_left.y + 1)
    return total


def tiles_for(bounds: tuple[float, float, float, float], zoom: int) -> Iterator[morecantile.Tile]:
    """Tiles of WGS84 ``bounds`` at ``zoom`` (antimeridian-crossing bounds split in two), lazily."""
    for box in _boxes(bounds):
        yield from TMS.tiles(*box, zooms=[zoom])


def mapcache_config(*, tileset: str, cache_dir: Path, title: str) -> bytes:
    """A MapCache configuration whose disk cache is georeg's tile cache for this dataset."""
    root = etree.Element("mapcache")
    cache = etree.SubElement(root, "cache", name="georeg_disk", type="disk", layout="default")
    etree.SubElement(cache, "base").text = str(cache_dir / "tiles")
    etree.SubElement(cache, "symlink_blank")
    source = etree.SubElement(root, "source", name=f"{tileset}_source", type="wms")
    params = etree.SubElement(etree.SubElement(source, "getmap"), "params")
    etree.SubElement(params, "LAYERS").text = tileset
    etree.SubElement(params, "FORMAT").text = "image/png"
    etree.SubElement(etree.SubElement(source, "http"), "url").text = "http://127.0.0.1:8000/wms"
    tileset_el = etree.SubElement(root, "tileset", name=tileset)
    etree.SubElement(tileset_el, "source").text = f"{tileset}_source"
    etree.SubElement(tileset_el, "cache").text = "georeg_disk"
    etree.SubElement(tileset_el, "grid").text = GRID
    etree.SubElement(tileset_el, "format").text = "PNG"
    etree.SubElement(tileset_el, "metatile").text = "1 1"
    metadata = etree.SubElement(tileset_el, "metadata")
    etree.SubElement(metadata, "title").text = title
    etree.SubElement(root, "service", type="wmts", enabled="true")
    etree.SubElement(root, "service", type="tms", enabled="true")
    return etree.tostring(root, pretty_print=True, xml_declaration=True, encoding="UTF-8")
