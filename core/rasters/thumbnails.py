"""Thumbnails: decimated reads (overviews when present), a contrast stretch, PNG with transparent nodata.

Cached on disk under ``cache/thumbnails/<sha[:2]>/<sha>/<size>.png`` (content hash: a changed file gets
new thumbnails) and in a small in-memory LRU in front of it.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image
from pydantic import BaseModel
from rasterio.enums import Resampling
from rasterio.errors import RasterioError

from georeg.core.errors import InvalidInput, InvalidRaster
from georeg.core.rasters.png_cache import read_cached_png, write_cached_png
from georeg.core.rasters.reader import decimated_reads
from georeg.core.storage import remove_tree

MIN_SIZE, MAX_SIZE, DEFAULT_SIZE = 16, 1024, 256
MAX_RENDER_SIZE = 2048  # the Registry's thumb route goes up to 2048


def _stretch(band: np.ma.MaskedArray) -> np.ndarray:
    """2-98 % percentile stretch of the valid values to 0..255."""
    valid = band.compressed().astype("float64")
    valid = valid[np.isfinite(valid)]
    if valid.size == 0:
        return np.zeros(band.shape, dtype="uint8")
    low, high = np.percentile(valid, [2, 98])
    if high <= low:
        high = low + 1
    scaled = (np.ma.filled(band.astype("float64"), low) - low) / (high - low)
    return (np.clip(np.nan_to_num(scaled), 0, 1) * 255).astype("uint8")


def render_thumbnail(path: Path, *, size: int = DEFAULT_SIZE) -> bytes:
    """PNG of at most ``size`` pixels on the long side: gray for 1-2 bands, RGB for 3+, alpha for nodata."""
    if not MIN_SIZE <= size <= MAX_RENDER_SIZE:
        raise InvalidInput(f"size must be between {MIN_SIZE} and {MAX_RENDER_SIZE}", code="invalid_size")
    try:
        with decimated_reads(), rasterio.open(path) as src:
            scale = max(src.width, src.height) / size
            shape = (max(1, round(src.height / scale)), max(1, round(src.width / scale)))
            indexes = [1, 2, 3] if src.count >= 3 else [1]
            data = src.read(indexes, out_shape=(len(indexes), *shape), masked=True, resampling=Resampling.nearest)
            alpha_mask = src.dataset_mask(out_shape=shape) if src.nodata is None else None
    except RasterioError as exc:
        raise InvalidRaster(f"cannot read the raster for a thumbnail: {exc}") from exc
    if data.dtype == np.uint8 and len(indexes) == 3:
        channels = [np.ma.filled(band, 0) for band in data]
    else:
        channels = [_stretch(band) for band in data]
    mask = np.ma.getmaskarray(data).any(axis=0)
    alpha = np.where(mask, 0, 255).astype("uint8")
    if alpha_mask is not None:
        alpha = np.minimum(alpha, alpha_mask.astype("uint8"))
    pixels = np.dstack([*channels, alpha]) if len(channels) == 3 else np.dstack([channels[0], alpha])
    image = Image.fromarray(pixels, mode="RGBA" if len(channels) == 3 else "LA")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


class ClearedThumbnails(BaseModel):
    memory_entries: int
    files: int


class ThumbnailCache:
    """Disk cache keyed by content hash and size, with an in-memory LRU of recent PNGs."""

    def __init__(self, cache_dir: Path, *, tmp_dir: Path, memory_items: int = 256) -> None:
        self.root = cache_dir / "thumbnails"
        self.tmp_dir = tmp_dir
        self.memory_items = memory_items
        self._memory: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def folder(self, sha256: str) -> Path:
        """Where every size of one content hash's thumbnails lives."""
        return self.root / sha256[:2] / sha256

    def path(self, sha256: str, size: int) -> Path:
        return self.folder(sha256) / f"{size}.png"

    def get(self, sha256: str, size: int, source: Path) -> tuple[bytes, str]:
        """(png, where it came from: memory, disk or rendered)."""
        key = (sha256, size)
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
                return self._memory[key], "memory"
        png, origin = read_cached_png(self.path(sha256, size)), "disk"
        if png is None:
            png, origin = render_thumbnail(source, size=size), "rendered"
            write_cached_png(png, self.path(sha256, size), tmp_dir=self.tmp_dir)
        self._remember(key, png)
        return png, origin

    def _remember(self, key: tuple[str, int], png: bytes) -> None:
        with self._lock:
            self._memory[key] = png
            self._memory.move_to_end(key)
            while len(self._memory) > self.memory_items:
                self._memory.popitem(last=False)

    def clear(self) -> ClearedThumbnails:
        """Empty both caches; returns what was removed."""
        with self._lock:
            memory = len(self._memory)
            self._memory.clear()
        files = list(self.root.rglob("*.png")) if self.root.exists() else []
        for file in files:
            file.unlink(missing_ok=True)
        return ClearedThumbnails(memory_entries=memory, files=len(files))

    def forget(self, sha256: str) -> int:
        """Drop one content hash's thumbnails from memory and disk; returns how many files went."""
        with self._lock:
            for key in [k for k in self._memory if k[0] == sha256]:
                del self._memory[key]
        folder = self.folder(sha256)
        files = len(list(folder.glob("*.png"))) if folder.is_dir() else 0
        remove_tree(folder)
        return files
