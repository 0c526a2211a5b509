"""``seed-tiles``: render a dataset's WebMercatorQuad tiles into the MapCache-layout disk cache."""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator
from sqlmodel import Session

from georeg.core.errors import InvalidInput, NotFound
from georeg.core.models import Permission
from georeg.core.rasters import service as rasters
from georeg.core.rasters.search import check_bbox
from georeg.core.rasters.tiles import MAX_ZOOM, cached_tile, count_tiles, tiles_for
from georeg.core.tasks.model import Tool, ToolContext, ToolOutcome

MAX_SEED_TILES = 200_000


class SeedParams(BaseModel):
    dataset_id: str = Field(min_length=1, max_length=64)
    min_zoom: int = Field(default=0, ge=0, le=MAX_ZOOM)
    max_zoom: int = Field(default=8, ge=0, le=MAX_ZOOM)
    bbox: list[float] | None = Field(default=None, min_length=4, max_length=4,
                                     description="WGS84 minx,miny,maxx,maxy; default: the dataset's extent")

    @model_validator(mode="after")
    def _zooms(self) -> SeedParams:
        if self.min_zoom > self.max_zoom:
            raise ValueError("min_zoom must not exceed max_zoom")
        if self.bbox is not None:
            check_bbox(*self.bbox)
        return self


def seed(context: ToolContext, params: SeedParams) -> ToolOutcome:
    settings = context.settings
    with Session(context.engine, expire_on_commit=False) as session:
        raster = rasters.get_raster(session, public_id=params.dataset_id)
        source = rasters.raster_file(session, settings, raster)
    bounds = tuple(params.bbox) if params.bbox else (raster.minx, raster.miny, raster.maxx, raster.maxy)
    zooms = range(params.min_zoom, params.max_zoom + 1)
    plan = {z: count_tiles(bounds, z) for z in zooms}
    total = sum(plan.values())
    if total > MAX_SEED_TILES:
        raise InvalidInput(f"{total} tiles requested, more than {MAX_SEED_TILES}; lower max_zoom or give a bbox",
                           code="too_many_tiles")
    rendered = cached = empty = done = 0
    per_zoom = {}
    for z, count in plan.items():
        for tile in tiles_for(bounds, z):
            try:
                _, hit = cached_tile(settings.cache_dir, settings.tmp_dir, raster.public_id, source, z, tile.x, tile.y,
                                     stats=raster.stats)
                cached += hit
                rendered += not hit
            except NotFound:
                empty += 1
            done += 1
        per_zoom[z] = count
        context.logger.info("zoom %d: %d tiles", z, count)
        context.progress(100 * done / max(total, 1), f"zoom {z}", f"{done}/{total} tiles")
    return ToolOutcome(result={"dataset_id": raster.public_id, "tiles": total, "rendered": rendered,
                               "already_cached": cached, "outside": empty, "per_zoom": per_zoom})


SEED_TILES = Tool(id="seed-tiles", version="1.0.0", title="Seed tile cache",
                  description="Render WebMercatorQuad PNG tiles of a raster into the MapCache-layout disk cache.",
                  parameters=SeedParams, run=seed, required_access=Permission.write, scope="registry")
