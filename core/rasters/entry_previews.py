"""Pictures of files in a Registry dataset (DroneDB's ``thumb`` and ``tiles``), drawn by the same code as the
Datasets API's: thumbnails of image and raster entries cached by content hash, and WebMercatorQuad tiles (256 px,
or 512 px for ``@2x``) of raster entries cached per content hash. A dataset's own thumbnail is the first of
``THUMBNAIL_CANDIDATES`` it holds."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image
from sqlmodel import Session

from georeg.core.config import Settings
from georeg.core.errors import InvalidParameters, InvalidRaster, NotFound
from georeg.core.models import Dataset, Entry, EntryType, Organization
from georeg.core.rasters.previews import Picture
from georeg.core.rasters.thumbnails import ThumbnailCache
from georeg.core.rasters.tiles import TILE_SIZE, cached_tile, check_tile
from georeg.core.registry import entries as entry_repo
from georeg.core.registry.objects import entry_files, storage_root

THUMBNAIL_CANDIDATES = ["thumbnail.png", "thumbnail.jpg", "cover.png", "cover.jpg"]
DEFAULT_ENTRY_THUMBNAIL_SIZE = 512
MAX_ENTRY_THUMBNAIL_SIZE = 2048
PREVIEWABLE = (EntryType.image.value, EntryType.raster.value)


class NotPreviewable(InvalidParameters):
    code = "not_previewable"


def _entry_file(session: Session, settings: Settings, org: Organization, dataset: Dataset, entry: Entry) -> Path:
    return entry_files(session, settings, storage_root(settings, org, dataset), [entry])[entry.path]


def _thumbnail_entry(session: Session, dataset: Dataset, path: str | None) -> Entry:
    if path:
        entry = entry_repo.get_entry(session, dataset=dataset, path=path)
        if entry.type not in PREVIEWABLE or not entry.sha256:
            raise NotPreviewable(f"{path!r} is a {entry.type} entry: only images and rasters have thumbnails")
        return entry
    for candidate in THUMBNAIL_CANDIDATES:
        entry = entry_repo.find_entry(session, dataset=dataset, path=candidate)
        if entry is not None and entry.sha256:
            return entry
    raise NotFound(f"the dataset has none of {', '.join(THUMBNAIL_CANDIDATES)}", code="thumbnail_not_found")


def entry_thumbnail(session: Session, *, settings: Settings, cache: ThumbnailCache, org: Organization,
                    dataset: Dataset, path: str | None, size: int, webp: bool) -> tuple[Picture, str]:
    """The thumbnail of the entry ``path`` (or the dataset's own) and its media type: PNG, or WebP when ``webp``.
    An entry that is not an image or raster, or whose content cannot be read, is ``422 not_previewable``."""
    entry = _thumbnail_entry(session, dataset, path)
    try:
        png, origin = cache.get(entry.sha256, size, _entry_file(session, settings, org, dataset, entry))
    except InvalidRaster as exc:
        raise NotPreviewable(f"{entry.path!r} cannot be previewed: {exc.message}") from exc
    etag = f'"{entry.sha256[:16]}-{size}{"-webp" if webp else ""}"'
    if not webp:
        return Picture(png=png, origin=origin, etag=etag), "image/png"
    buffer = io.BytesIO()
    Image.open(io.BytesIO(png)).save(buffer, format="WEBP", lossless=True)
    return Picture(png=buffer.getvalue(), origin=origin, etag=etag), "image/webp"


def entry_tile(session: Session, *, settings: Settings, org: Organization, dataset: Dataset, path: str, z: int,
               x: int, y: int, scale: int = 1) -> Picture:
    """A tile of the raster entry ``path`` (``scale`` 2: 512 px), from the disk cache or drawn; outside the
    raster ``404 tile_outside_bounds``; an entry that is not a raster ``422 not_previewable``."""
    check_tile(z, x, y)
    entry = entry_repo.get_entry(session, dataset=dataset, path=path)
    if entry.type != EntryType.raster.value or not entry.sha256:
        raise NotPreviewable(f"{path!r} is a {entry.type} entry: only rasters have tiles")
    if not (entry.properties or {}).get("wgs84_bounds") and entry.footprint is None:
        raise NotPreviewable(f"{path!r} is not georeferenced: it has no tiles")
    tileset = f"entry-{entry.sha256}" + ("@2x" if scale == 2 else "")
    try:
        png, hit = cached_tile(settings.cache_dir, settings.tmp_dir, tileset,
                               _entry_file(session, settings, org, dataset, entry), z, x, y, stats=None,
                               tilesize=TILE_SIZE * scale, content=entry.sha256)
    except InvalidRaster as exc:
        raise NotPreviewable(f"{path!r} cannot be drawn: {exc.message}") from exc
    return Picture(png=png, origin="hit" if hit else "miss")
