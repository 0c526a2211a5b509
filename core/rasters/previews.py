"""Pictures of registered rasters: thumbnails (disk + memory cache) and WebMercatorQuad tiles (disk cache),
looked up by ``dataset_id``."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, Field
from sqlmodel import Session

from georeg.core.config import Settings
from georeg.core.errors import GeoregError, InvalidInput
from georeg.core.progress import ProgressCallback, no_progress
from georeg.core.rasters import service as rasters
from georeg.core.rasters.thumbnails import DEFAULT_SIZE, MAX_SIZE, MIN_SIZE, ThumbnailCache
from georeg.core.rasters.tiles import cached_tile, check_tile, mapcache_config


@dataclass(frozen=True)
class Picture:
    """A PNG and where it came from (``memory``, ``disk``, ``rendered`` for thumbnails; ``hit``/``miss`` for tiles),
    with the validator clients may cache it by."""

    png: bytes
    origin: str
    etag: str | None = None


class ThumbnailRequest(BaseModel):
    """The body of ``POST /thumbnails/generate``."""

    dataset_ids: list[str] = Field(min_length=1, max_length=10_000)
    size: int = Field(default=DEFAULT_SIZE, ge=MIN_SIZE, le=MAX_SIZE)


class ThumbnailFailure(BaseModel):
    dataset_id: str
    error: str
    code: str


class ThumbnailBatch(BaseModel):
    generated: list[str]
    failed: list[ThumbnailFailure]
    size: int


def thumbnail(session: Session, *, settings: Settings, cache: ThumbnailCache, dataset_id: str, size: int) -> Picture:
    raster = rasters.get_raster(session, public_id=dataset_id)
    png, origin = cache.get(raster.sha256, size, rasters.raster_file(session, settings, raster))
    return Picture(png=png, origin=origin, etag=f'"{raster.sha256[:16]}-{size}"')


def generate_thumbnails(session: Session, *, settings: Settings, cache: ThumbnailCache, request: ThumbnailRequest,
                        report: ProgressCallback = no_progress) -> ThumbnailBatch:
    """Render (or find) the thumbnails of many rasters; one that fails is reported, the others go on."""
    generated, failed = [], []
    for index, dataset_id in enumerate(request.dataset_ids, start=1):
        try:
            thumbnail(session, settings=settings, cache=cache, dataset_id=dataset_id, size=request.size)
            generated.append(dataset_id)
        except GeoregError as exc:
            failed.append(ThumbnailFailure(dataset_id=dataset_id, error=exc.message, code=exc.code))
        report(100 * index / len(request.dataset_ids), "rendering", dataset_id)
    return ThumbnailBatch(generated=generated, failed=failed, size=request.size)


def generate_thumbnails_now(session: Session, *, settings: Settings, cache: ThumbnailCache,
                            request: ThumbnailRequest) -> ThumbnailBatch:
    """:func:`generate_thumbnails` for an answer right away: 400 when not one thumbnail could be made."""
    batch = generate_thumbnails(session, settings=settings, cache=cache, request=request)
    if not batch.generated and batch.failed:
        raise InvalidInput(f"no thumbnail could be generated: {batch.failed[0].error}", code="thumbnails_failed",
                           details={"failed": [failure.model_dump() for failure in batch.failed]})
    return batch


def tile(session: Session, *, settings: Settings, dataset_id: str, z: int, x: int, y: int) -> Picture:
    """A tile from the disk cache, rendered when missing."""
    check_tile(z, x, y)
    raster = rasters.get_raster(session, public_id=dataset_id)
    source = rasters.raster_file(session, settings, raster)
    png, hit = cached_tile(settings.cache_dir, settings.tmp_dir, raster.public_id, source, z, x, y, stats=raster.stats)
    return Picture(png=png, origin="hit" if hit else "miss")


def mapcache_xml(session: Session, *, settings: Settings, dataset_id: str) -> bytes:
    """A MapCache tileset configuration pointing at georeg's disk cache for this raster."""
    raster = rasters.get_raster(session, public_id=dataset_id)
    return mapcache_config(tileset=raster.public_id, cache_dir=settings.cache_dir, title=raster.title)
