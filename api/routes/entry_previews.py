"""``/orgs/{orgSlug}/ds/{dsSlug}/thumb`` and ``/tiles``: pictures of files in a Registry dataset (DroneDB's routes),
drawn by the Datasets API's thumbnail and tile code. Rendering is blocking work: plain functions, run in the thread
pool."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Response

from georeg.api.deps import ReadableDataset, SessionDep, SettingsDep, ThumbnailsDep
from georeg.api.schemas import AUTH_ERRORS, COMMON_ERRORS, errors
from georeg.core.rasters import entry_previews
from georeg.core.rasters.thumbnails import MIN_SIZE
from georeg.core.rasters.tiles import MAX_ZOOM
from georeg.core.registry.schemas import ENTRY_PATH_PATTERN, ENTRY_PATH_RULES
from georeg.core.storage import MAX_PATH_LENGTH, normalize_entry_path

router = APIRouter(prefix="/orgs/{orgSlug}/ds/{dsSlug}", tags=["objects"],
                   responses={**COMMON_ERRORS, **AUTH_ERRORS, **errors(404, 422)})
IMAGE = {200: {"content": {"image/png": {}, "image/webp": {}}, "description": "a PNG (or WebP) image"}}
PNG = {200: {"content": {"image/png": {}}, "description": "a PNG tile"}}
Zoom = Annotated[int, Path(ge=0, le=MAX_ZOOM)]
TileIndex = Annotated[int, Path(ge=0, le=2**MAX_ZOOM - 1)]
EntryPath = Annotated[str, Query(max_length=MAX_PATH_LENGTH, description=ENTRY_PATH_RULES,
                                 json_schema_extra={"pattern": ENTRY_PATH_PATTERN})]


@router.get("/thumb", response_class=Response, responses=IMAGE)
def thumbnail(access: ReadableDataset, session: SessionDep, settings: SettingsDep, cache: ThumbnailsDep,
              path: Annotated[str | None, Query(max_length=MAX_PATH_LENGTH,
                                                description=f"an image or raster entry ({ENTRY_PATH_RULES}); none: "
                                                            "the dataset's thumbnail.*/cover.* file")] = None,
              size: Annotated[int, Query(ge=MIN_SIZE, le=entry_previews.MAX_ENTRY_THUMBNAIL_SIZE)] =
              entry_previews.DEFAULT_ENTRY_THUMBNAIL_SIZE,
              accept: Annotated[str | None, Header(include_in_schema=False)] = None) -> Response:
    """Thumbnail of an image or raster entry (PNG, or WebP when the client accepts ``image/webp``), cached by the
    entry's content hash; other entries ``422 not_previewable``."""
    picture, media_type = entry_previews.entry_thumbnail(
        session, settings=settings, cache=cache, org=access.org, dataset=access.dataset,
        path=normalize_entry_path(path) if path else None, size=size, webp="image/webp" in (accept or ""))
    return Response(picture.png, media_type=media_type, headers={
        "X-Thumbnail-Cache": picture.origin, "ETag": picture.etag, "Vary": "Accept",
        "Cache-Control": "private, max-age=3600"})


def _tile(access: ReadableDataset, session: SessionDep, settings: SettingsDep, path: str, z: int, x: int, y: int,
          scale: int) -> Response:
    picture = entry_previews.entry_tile(session, settings=settings, org=access.org, dataset=access.dataset,
                                        path=normalize_entry_path(path), z=z, x=x, y=y, scale=scale)
    return Response(picture.png, media_type="image/png", headers={"X-Tile-Cache": picture.origin})


@router.get("/tiles/{z}/{x}/{y}@2x.png", response_class=Response, responses=PNG)
def tile_2x(access: ReadableDataset, session: SessionDep, settings: SettingsDep, z: Zoom, x: TileIndex,
            y: TileIndex, path: EntryPath) -> Response:
    """A 512 px WebMercatorQuad tile of a raster entry; outside the raster ``404 tile_outside_bounds``."""
    return _tile(access, session, settings, path, z, x, y, 2)


@router.get("/tiles/{z}/{x}/{y}.png", response_class=Response, responses=PNG)
def tile(access: ReadableDataset, session: SessionDep, settings: SettingsDep, z: Zoom, x: TileIndex, y: TileIndex,
         path: EntryPath) -> Response:
    """A 256 px WebMercatorQuad tile of a raster entry (the Datasets API's tiling); outside the raster ``404
    tile_outside_bounds``."""
    return _tile(access, session, settings, path, z, x, y, 1)
