"""``/wms`` (WMS 1.3.0) and ``/wfs`` (WFS 2.0) for standard GIS clients; errors are OGC exception reports."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from sqlmodel import Session, select

from georeg.api.deps import SessionDep, SettingsDep
from georeg.core.errors import GeoregError, NotFound
from georeg.core.models import Raster
from georeg.core.rasters import ogc as ogc
from georeg.core.rasters import service as rasters

router = APIRouter(tags=["ogc"])
EXCEPTION_TYPE = "application/vnd.ogc.se_xml"


def _params(request: Request) -> dict[str, str]:
    return {key.lower(): value for key, value in request.query_params.items()}


def _required(params: dict[str, str], name: str) -> str:
    value = params.get(name.lower())
    if value in (None, ""):
        raise ogc.OgcError(f"missing parameter {name}", code="MissingParameterValue")
    return value


def _int(params: dict[str, str], name: str) -> int:
    try:
        return int(_required(params, name))
    except ValueError as exc:
        raise ogc.OgcError(f"{name} must be an integer") from exc


def _exception(exc: GeoregError, status: int = 400) -> Response:
    code = exc.code if isinstance(exc, ogc.OgcError) else ("LayerNotDefined" if isinstance(exc, NotFound) else
                                                            "InvalidParameterValue")
    return Response(ogc.exception_report(exc.message, code), status_code=status, media_type=EXCEPTION_TYPE)


def _layers(session: Session, names: str) -> list[Raster]:
    return [rasters.get_raster(session, public_id=name) for name in names.split(",") if name]


@router.get("/wms")
async def wms(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """GetCapabilities, GetMap (PNG/JPEG in EPSG:4326, CRS:84, EPSG:3857 or a native CRS), GetFeatureInfo."""
    params = _params(request)
    try:
        operation = _required(params, "REQUEST").lower()
        if params.get("service", "WMS").upper() != "WMS":
            raise ogc.OgcError("SERVICE must be WMS")
        if operation == "getcapabilities":
            records = session.exec(select(Raster).order_by(Raster.id)).all()
            return Response(ogc.wms_capabilities(list(records), base_url=str(request.url_for("wms"))),
                            media_type="text/xml")
        crs_name = _required(params, "CRS")
        bbox = ogc.map_bbox(_required(params, "BBOX"), crs_name)
        width, height = _int(params, "WIDTH"), _int(params, "HEIGHT")
        if operation == "getmap":
            layers = _layers(session, _required(params, "LAYERS"))
            if len(layers) != 1:
                raise ogc.OgcError("exactly one layer per GetMap request is supported", code="LayerNotDefined")
            style = (params.get("styles") or "").split(",")[0]
            image_format = params.get("format", "image/png")
            png = await run_in_threadpool(
                ogc.render_map, layers[0], rasters.raster_file(session, settings, layers[0]), style_id=style,
                crs_name=crs_name, bbox=bbox, width=width, height=height, image_format=image_format,
                transparent=params.get("transparent", "FALSE").upper() == "TRUE",
            )
            return Response(png, media_type=image_format)
        if operation == "getfeatureinfo":
            lon, lat = ogc.pixel_to_lonlat(crs_name=crs_name, bbox=bbox, width=width, height=height,
                                           i=_int(params, "I"), j=_int(params, "J"))
            features = []
            for layer in _layers(session, _required(params, "QUERY_LAYERS")):
                try:
                    hit = rasters.sample(session, settings, layer, lon=lon, lat=lat)
                    features.append({"layer": layer.public_id, "values": hit["values"]})
                except NotFound:
                    features.append({"layer": layer.public_id, "values": []})
            if params.get("info_format", "application/json") == "text/plain":
                lines = [f"{f['layer']}: " + ", ".join(str(v["value"]) for v in f["values"]) for f in features]
                return Response("\n".join(lines), media_type="text/plain")
            return JSONResponse({"lon": lon, "lat": lat, "features": features})
        raise ogc.OgcError(f"unsupported REQUEST {operation!r}", code="OperationNotSupported")
    except GeoregError as exc:
        return _exception(exc)


@router.get("/wfs")
def wfs(request: Request, session: SessionDep) -> Response:
    """GetCapabilities and GetFeature (GeoJSON) of the raster footprints, with BBOX, COUNT and STARTINDEX."""
    params = _params(request)
    try:
        operation = _required(params, "REQUEST").lower()
        if operation == "getcapabilities":
            total = len(session.exec(select(Raster.id)).all())
            return Response(ogc.wfs_capabilities(base_url=str(request.url_for("wfs")), count=total),
                            media_type="text/xml")
        if operation == "getfeature":
            type_name = params.get("typenames") or params.get("typename") or ""
            if type_name.split(":")[-1] != ogc.FEATURE_TYPE.split(":")[-1]:
                raise ogc.OgcError(f"unknown feature type {type_name!r}; use {ogc.FEATURE_TYPE}", code="InvalidParameterValue")
            count = min(int(params.get("count") or params.get("maxfeatures") or 1000), 10_000)
            start = int(params.get("startindex") or 0)
            bbox = ogc.wfs_bbox(params["bbox"]) if params.get("bbox") else None
            rows, total = rasters.search_rasters(session, bbox=bbox, sort="created", limit=max(count, 1), offset=start)
            features = [rasters.extent_feature(r) for r in rows]
            return JSONResponse({"type": "FeatureCollection", "features": features, "numberMatched": total,
                                 "numberReturned": len(features)}, media_type="application/geo+json")
        raise ogc.OgcError(f"unsupported REQUEST {operation!r}", code="OperationNotSupported")
    except ValueError as exc:
        return _exception(ogc.OgcError(f"invalid number: {exc}"))
    except GeoregError as exc:
        return _exception(exc)
