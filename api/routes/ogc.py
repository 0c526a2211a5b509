"""``/wms`` (WMS 1.3.0) and ``/wfs`` (WFS 2.0) for standard GIS clients; errors are OGC exception reports (XML)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from georeg.api.deps import SessionDep, SettingsDep
from georeg.core.errors import GeoregError, NotFound
from georeg.core.rasters import ogc, ogc_service

router = APIRouter(tags=["ogc"])
EXCEPTION_TYPE = "application/vnd.ogc.se_xml"
OGC_RESPONSES = {200: {"content": {"text/xml": {}, "image/png": {}, "image/jpeg": {}, "application/json": {},
                                   "application/geo+json": {}, "text/plain": {}},
                       "description": "the operation's answer"},
                 400: {"content": {EXCEPTION_TYPE: {}}, "description": "an OGC exception report"}}


def _params(request: Request) -> dict[str, str]:
    return {key.lower(): value for key, value in request.query_params.items()}


def _exception(exc: GeoregError) -> Response:
    code = exc.code if isinstance(exc, ogc.OgcError) else ("LayerNotDefined" if isinstance(exc, NotFound) else
                                                            "InvalidParameterValue")
    return Response(ogc.exception_report(exc.message, code), status_code=400, media_type=EXCEPTION_TYPE)


@router.get("/wms", response_class=Response, responses=OGC_RESPONSES)
def wms(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """GetCapabilities, GetMap (PNG/JPEG in EPSG:4326, CRS:84, EPSG:3857 or a native CRS), GetFeatureInfo."""
    try:
        answer = ogc_service.wms(session, settings=settings, params=_params(request),
                                 base_url=str(request.url_for("wms")))
    except GeoregError as exc:
        return _exception(exc)
    return Response(answer.content, media_type=answer.media_type)


@router.get("/wfs", response_class=Response, responses=OGC_RESPONSES)
def wfs(request: Request, session: SessionDep) -> Response:
    """GetCapabilities and GetFeature (GeoJSON) of the raster footprints, with BBOX, COUNT and STARTINDEX."""
    try:
        answer = ogc_service.wfs(session, params=_params(request), base_url=str(request.url_for("wfs")))
    except GeoregError as exc:
        return _exception(exc)
    return Response(answer.content, media_type=answer.media_type)
