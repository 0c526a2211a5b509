"""The OGC operations over the raster registry, from a request's parameters to the answer: WMS 1.3.0
(GetCapabilities, GetMap, GetFeatureInfo) and WFS 2.0 (GetCapabilities, GetFeature as GeoJSON). Errors are
:class:`~georeg.core.rasters.ogc.OgcError`, which the routes answer as OGC exception reports."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import func
from sqlmodel import Session, select

from georeg.core.config import Settings
from georeg.core.errors import GeoregError, NotFound
from georeg.core.models import Raster
from georeg.core.rasters import ogc
from georeg.core.rasters import service as rasters
from georeg.core.rasters.search import RasterQuery, search_rasters

MAX_FEATURES = 10_000


@dataclass(frozen=True)
class OgcAnswer:
    content: bytes
    media_type: str


def _required(params: dict[str, str], name: str) -> str:
    value = params.get(name.lower())
    if value in (None, ""):
        raise ogc.OgcError(f"missing parameter {name}", code="MissingParameterValue")
    return value


def _int(params: dict[str, str], name: str, default: int | None = None) -> int:
    raw = params.get(name.lower())
    if raw in (None, "") and default is not None:
        return default
    try:
        return int(_required(params, name))
    except ValueError as exc:
        raise ogc.OgcError(f"{name} must be an integer") from exc


def _layers(session: Session, names: str) -> list[Raster]:
    try:
        return [rasters.get_raster(session, public_id=name) for name in names.split(",") if name]
    except NotFound as exc:
        raise ogc.OgcError(exc.message, code="LayerNotDefined") from exc


def wms(session: Session, *, settings: Settings, params: dict[str, str], base_url: str) -> OgcAnswer:
    """One WMS request; ``params`` have lower-case names."""
    operation = _required(params, "REQUEST").lower()
    if params.get("service", "WMS").upper() != "WMS":
        raise ogc.OgcError("SERVICE must be WMS")
    if operation == "getcapabilities":
        records = session.exec(select(Raster).order_by(Raster.id)).all()
        return OgcAnswer(ogc.wms_capabilities(list(records), base_url=base_url), "text/xml")
    if operation not in ("getmap", "getfeatureinfo"):
        raise ogc.OgcError(f"unsupported REQUEST {operation!r}", code="OperationNotSupported")
    crs_name = _required(params, "CRS")
    bbox = ogc.map_bbox(_required(params, "BBOX"), crs_name)
    width, height = _int(params, "WIDTH"), _int(params, "HEIGHT")
    if operation == "getmap":
        layers = _layers(session, _required(params, "LAYERS"))
        if len(layers) != 1:
            raise ogc.OgcError("exactly one layer per GetMap request is supported", code="LayerNotDefined")
        image_format = params.get("format", "image/png")
        picture = ogc.render_map(
            layers[0], rasters.raster_file(session, settings, layers[0]), style_id=(params.get("styles") or "")
            .split(",")[0], crs_name=crs_name, bbox=bbox, width=width, height=height, image_format=image_format,
            transparent=params.get("transparent", "FALSE").upper() == "TRUE")
        return OgcAnswer(picture, image_format)
    lon, lat = ogc.pixel_to_lonlat(crs_name=crs_name, bbox=bbox, width=width, height=height, i=_int(params, "I"),
                                   j=_int(params, "J"))
    features = []
    for layer in _layers(session, _required(params, "QUERY_LAYERS")):
        try:
            hit = rasters.sample(session, settings, layer, lon=lon, lat=lat)
            features.append({"layer": layer.public_id, "values": [value.model_dump() for value in hit.values]})
        except NotFound:
            features.append({"layer": layer.public_id, "values": []})
    if params.get("info_format", "application/json") == "text/plain":
        lines = [f"{f['layer']}: " + ", ".join(str(v["value"]) for v in f["values"]) for f in features]
        return OgcAnswer("\n".join(lines).encode(), "text/plain")
    return OgcAnswer(json.dumps({"lon": lon, "lat": lat, "features": features}).encode(), "application/json")


def wfs(session: Session, *, params: dict[str, str], base_url: str) -> OgcAnswer:
    """One WFS request (the footprints feature type); ``params`` have lower-case names."""
    operation = _required(params, "REQUEST").lower()
    if operation == "getcapabilities":
        total = session.exec(select(func.count()).select_from(Raster)).one()
        return OgcAnswer(ogc.wfs_capabilities(base_url=base_url, count=total), "text/xml")
    if operation != "getfeature":
        raise ogc.OgcError(f"unsupported REQUEST {operation!r}", code="OperationNotSupported")
    type_name = params.get("typenames") or params.get("typename") or ""
    if type_name.split(":")[-1] != ogc.FEATURE_TYPE.split(":")[-1]:
        raise ogc.OgcError(f"unknown feature type {type_name!r}; use {ogc.FEATURE_TYPE}")
    count = min(_int(params, "COUNT", default=_int(params, "MAXFEATURES", default=1000)), MAX_FEATURES)
    start = _int(params, "STARTINDEX", default=0)
    if count < 0 or start < 0:
        raise ogc.OgcError("COUNT and STARTINDEX must not be negative")
    try:
        bbox = ogc.wfs_bbox(params["bbox"]) if params.get("bbox") else None
        query = RasterQuery.model_construct(q=None, platform=None, source=None, bbox=bbox, start=None, end=None,
                                            sort="created", limit=max(count, 1), offset=min(start, 2**31 - 1))
        rows, total = search_rasters(session, query)
    except GeoregError as exc:
        raise ogc.OgcError(exc.message) from exc
    features = [rasters.extent_feature(raster).model_dump() for raster in rows]
    body = {"type": "FeatureCollection", "features": features, "numberMatched": total, "numberReturned": len(features)}
    return OgcAnswer(json.dumps(body).encode(), "application/geo+json")
