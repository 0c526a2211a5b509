"""Pages of the raster registry (the Datasets API): ``/rasters`` (a searchable list with thumbnails; signed-in
users, as ``GET /datasets``) and ``/rasters/{id}`` (the raster on a map from georeg's own XYZ tiles, its footprint,
a click samples every band; its SLD styles and the WMS/WFS addresses to paste into QGIS)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from georeg.api.deps import SessionDep
from georeg.api.web.render import PageRoute, render
from georeg.api.web.session import PageActor
from georeg.core.rasters import service as rasters
from georeg.core.rasters import styles
from georeg.core.rasters.search import RasterQuery, list_rasters
from georeg.core.registry.actor import require_user

router = APIRouter(prefix="/rasters", route_class=PageRoute, include_in_schema=False)

RASTERS_PER_PAGE = 24


def _origin(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@router.get("")
def raster_list(request: Request, session: SessionDep, actor: PageActor,
                q: Annotated[str, Query(max_length=256)] = "", offset: Annotated[int, Query(ge=0)] = 0) -> Response:
    require_user(actor)
    listing = list_rasters(session, RasterQuery(q=q.strip() or None, limit=RASTERS_PER_PAGE, offset=offset))
    return render(request, "rasters.html", {"listing": listing, "q": q, "offset": offset})


@router.get("/{dataset_id}")
def raster_page(request: Request, dataset_id: str, session: SessionDep, actor: PageActor) -> Response:
    require_user(actor)
    raster = rasters.get_raster(session, public_id=dataset_id[:64])
    record = rasters.raster_record(raster)
    origin = _origin(request)
    services = {
        "wms": f"{origin}/wms?SERVICE=WMS&VERSION=1.3.0&REQUEST=GetCapabilities",
        "wfs": f"{origin}/wfs?SERVICE=WFS&VERSION=2.0.0&REQUEST=GetCapabilities",
        "xyz": f"{origin}/datasets/{record.dataset_id}/tiles/{{z}}/{{x}}/{{y}}.png",
    }
    listing = styles.style_listing(raster)
    return render(request, "raster.html", {"raster": record, "styles": listing.styles, "services": services,
                                           "origin": origin})
