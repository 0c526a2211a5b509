"""Pictures of registered rasters: thumbnails, WebMercatorQuad tiles and the MapCache configuration of the tile
cache. Rendering is blocking work: these are plain functions, run in the thread pool."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel

from georeg.api.deps import CurrentUser, RasterId, SessionDep, SettingsDep, ThumbnailsDep
from georeg.api.schemas import COMMON_ERRORS, errors
from georeg.core.rasters import previews
from georeg.core.rasters.thumbnails import DEFAULT_SIZE, MAX_SIZE, MIN_SIZE, ClearedThumbnails
from georeg.core.rasters.tiles import MAX_ZOOM

router = APIRouter(tags=["datasets (rasters)"], responses={**COMMON_ERRORS, **errors(404)})
PNG = {200: {"content": {"image/png": {}}, "description": "a PNG image"}}
TileIndex = Annotated[int, Path(ge=0, le=2**MAX_ZOOM - 1)]


@router.get("/datasets/{dataset_id}/thumbnail.png", response_class=Response, responses=PNG)
def thumbnail(dataset_id: RasterId, session: SessionDep, settings: SettingsDep, cache: ThumbnailsDep,
              size: Annotated[int, Query(ge=MIN_SIZE, le=MAX_SIZE)] = DEFAULT_SIZE) -> Response:
    """PNG thumbnail (2-98 % stretch, nodata transparent), cached on disk by content hash and in memory."""
    picture = previews.thumbnail(session, settings=settings, cache=cache, dataset_id=dataset_id, size=size)
    return Response(picture.png, media_type="image/png", headers={
        "X-Thumbnail-Cache": picture.origin, "ETag": picture.etag, "Cache-Control": "public, max-age=3600",
    })


class ThumbnailsCleared(BaseModel):
    cleared: ClearedThumbnails


@router.delete("/thumbnails", responses=errors(401))
def clear_thumbnails(_: CurrentUser, cache: ThumbnailsDep) -> ThumbnailsCleared:
    """Clear the thumbnail caches (disk and memory)."""
    return ThumbnailsCleared(cleared=cache.clear())


@router.get("/datasets/{dataset_id}/tiles/{z}/{x}/{y}.png", response_class=Response, responses=PNG)
def tile(dataset_id: RasterId, z: Annotated[int, Path(ge=0, le=MAX_ZOOM)], x: TileIndex, y: TileIndex,
         session: SessionDep, settings: SettingsDep) -> Response:
    """A WebMercatorQuad tile from the disk cache, rendered when missing; 404 outside the raster."""
    picture = previews.tile(session, settings=settings, dataset_id=dataset_id, z=z, x=x, y=y)
    return Response(picture.png, media_type="image/png", headers={"X-Tile-Cache": picture.origin})


@router.get("/datasets/{dataset_id}/mapcache.xml", response_class=Response,
            responses={200: {"content": {"application/xml": {}}, "description": "a MapCache configuration"}})
def mapcache_xml(dataset_id: RasterId, session: SessionDep, settings: SettingsDep) -> Response:
    """A MapCache tileset configuration pointing at georeg's disk cache for this dataset."""
    return Response(previews.mapcache_xml(session, settings=settings, dataset_id=dataset_id),
                    media_type="application/xml")
