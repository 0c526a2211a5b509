"""OGC services over the registry: WMS 1.3.0 (one layer per raster, its SLD styles) and WFS 2.0 (footprints).

Axis order: in WMS 1.3.0 ``EPSG:4326`` BBOX values are lat/lon; ``CRS:84`` is lon/lat.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from lxml import etree
from PIL import Image
from rasterio.crs import CRS
from rasterio.errors import CRSError, RasterioError
from rasterio.warp import transform as warp_transform

from georeg.core.errors import GeoregError, InvalidInput
from georeg.core.models import Raster
from georeg.core.rasters import styles as styles
from georeg.core.rasters.tiles import rio_tiler

WMS_NS = "http://www.opengis.net/wms"
XLINK = "http://www.w3.org/1999/xlink"
MAP_CRS = ("EPSG:4326", "CRS:84", "EPSG:3857")
FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG"}
MAX_MAP_PIXELS = 4096
FEATURE_TYPE = "georeg:footprints"


class OgcError(GeoregError):
    """An OGC service exception (answered as an XML exception report, not JSON)."""

    code = "InvalidParameterValue"


def parse_crs(name: str) -> CRS:
    if name.upper() == "CRS:84":
        return CRS.from_epsg(4326)
    try:
        return CRS.from_user_input(name)
    except CRSError as exc:
        raise OgcError(f"unsupported CRS {name!r}", code="InvalidCRS") from exc


def map_bbox(raw: str, crs_name: str) -> tuple[float, float, float, float]:
    """BBOX as minx,miny,maxx,maxy in the CRS's x/y order (lat/lon input swapped for EPSG:4326)."""
    try:
        values = [float(v) for v in raw.split(",")]
    except ValueError as exc:
        raise OgcError("BBOX must be four numbers") from exc
    if len(values) != 4 or values[0] >= values[2] or values[1] >= values[3]:
        raise OgcError("BBOX must be minx,miny,maxx,maxy with min < max")
    if crs_name.upper() == "EPSG:4326":
        lat_min, lon_min, lat_max, lon_max = values
        return lon_min, lat_min, lon_max, lat_max
    return tuple(values)  # type: ignore[return-value]


def _lut(raster: Raster, style_id: str, data: np.ndarray) -> np.ndarray:
    """RGB of a single band through the style's colour ramp (GeoServer semantics: linear, clamped)."""
    stops = [s for s in styles.color_map(raster, style_id) if s.opacity > 0]
    quantities = np.array([s.quantity for s in stops], dtype="float64")
    colors = np.array([styles._rgb(s.color) for s in stops], dtype="float64")
    return np.stack([np.interp(data, quantities, colors[:, i]) for i in range(3)]).astype("uint8")


def render_map(raster: Raster, source: Path, *, style_id: str, crs_name: str, bbox: tuple[float, float, float, float],
               width: int, height: int, image_format: str, transparent: bool) -> bytes:
    if not (1 <= width <= MAX_MAP_PIXELS and 1 <= height <= MAX_MAP_PIXELS):
        raise OgcError(f"WIDTH and HEIGHT must be within 1..{MAX_MAP_PIXELS}")
    if image_format not in FORMATS:
        raise OgcError(f"FORMAT must be one of {', '.join(FORMATS)}", code="InvalidFormat")
    style_id = style_id or styles.default_style(raster)
    if style_id not in {s.id for s in styles.available_styles(raster)}:
        raise OgcError(f"style {style_id!r} is not available for layer {raster.public_id}", code="StyleNotDefined")
    Reader, TileOutsideBounds = rio_tiler()  # noqa: N806 - classes

    crs = parse_crs(crs_name)
    rgb = np.zeros((3, height, width), dtype="uint8")
    alpha = np.zeros((height, width), dtype="uint8")
    try:
        with Reader(str(source)) as src:
            indexes = (1, 2, 3) if style_id == "rgb" else (1,)
            image = src.part(bbox, dst_crs=crs, bounds_crs=crs, width=width, height=height, indexes=indexes)
            data = image.array
            alpha = np.where(np.ma.getmaskarray(data).any(axis=0), 0, 255).astype("uint8")
            if style_id == "rgb":
                bands = []
                for band_index, band in enumerate(data, start=1):
                    low, high = styles.limits(raster, band_index)
                    scaled = (np.ma.filled(band.astype("float64"), low) - low) / max(high - low, 1e-12)
                    bands.append((np.clip(scaled, 0, 1) * 255).astype("uint8"))
                rgb = np.stack(bands)
            else:
                rgb = _lut(raster, style_id, np.ma.filled(data[0].astype("float64"), 0))
    except TileOutsideBounds:
        pass
    except RasterioError as exc:
        raise OgcError(f"cannot render layer {raster.public_id}: {exc}", code="NoApplicableCode") from exc
    pixels = np.dstack([*rgb, alpha])
    mode = "RGBA"
    if image_format == "image/jpeg" or not transparent:
        pixels, mode = pixels[..., :3], "RGB"
    from io import BytesIO

    buffer = BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels), mode=mode).save(buffer, format=FORMATS[image_format])
    return buffer.getvalue()


def pixel_to_lonlat(*, crs_name: str, bbox: tuple[float, float, float, float], width: int, height: int,
                    i: int, j: int) -> tuple[float, float]:
    if not (0 <= i < width and 0 <= j < height):
        raise OgcError("I and J must lie inside the map", code="InvalidPoint")
    minx, miny, maxx, maxy = bbox
    x = minx + (i + 0.5) * (maxx - minx) / width
    y = maxy - (j + 0.5) * (maxy - miny) / height
    lons, lats = warp_transform(parse_crs(crs_name), "EPSG:4326", [x], [y])
    return lons[0], lats[0]


def _text(parent: etree._Element, tag: str, text: str) -> etree._Element:
    element = etree.SubElement(parent, tag)
    element.text = text
    return element


def wms_capabilities(rasters: list[Raster], *, base_url: str) -> bytes:
    root = etree.Element(f"{{{WMS_NS}}}WMS_Capabilities", nsmap={None: WMS_NS, "xlink": XLINK}, version="1.3.0")
    service = etree.SubElement(root, "Service")
    _text(service, "Name", "WMS")
    _text(service, "Title", "georeg raster registry")
    etree.SubElement(service, "OnlineResource", {f"{{{XLINK}}}href": base_url})
    capability = etree.SubElement(root, "Capability")
    request = etree.SubElement(capability, "Request")
    for operation, formats in (("GetCapabilities", ["text/xml"]), ("GetMap", list(FORMATS)),
                               ("GetFeatureInfo", ["application/json", "text/plain"])):
        op = etree.SubElement(request, operation)
        for fmt in formats:
            _text(op, "Format", fmt)
        get = etree.SubElement(etree.SubElement(etree.SubElement(op, "DCPType"), "HTTP"), "Get")
        etree.SubElement(get, "OnlineResource", {f"{{{XLINK}}}href": f"{base_url}?"})
    exception = etree.SubElement(capability, "Exception")
    _text(exception, "Format", "XML")
    top = etree.SubElement(capability, "Layer")
    _text(top, "Title", "georeg")
    for crs in MAP_CRS:
        _text(top, "CRS", crs)
    for raster in rasters:
        if raster.minx is None:
            continue
        layer = etree.SubElement(top, "Layer", queryable="1")
        _text(layer, "Name", raster.public_id)
        _text(layer, "Title", raster.title or raster.public_id)
        if raster.epsg and f"EPSG:{raster.epsg}" not in MAP_CRS:
            _text(layer, "CRS", f"EPSG:{raster.epsg}")
        minx, maxx = (raster.minx, raster.maxx) if raster.minx <= raster.maxx else (-180.0, 180.0)
        box = etree.SubElement(layer, "EX_GeographicBoundingBox")
        for tag, value in (("westBoundLongitude", minx), ("eastBoundLongitude", maxx),
                           ("southBoundLatitude", raster.miny), ("northBoundLatitude", raster.maxy)):
            _text(box, tag, repr(float(value)))
        etree.SubElement(layer, "BoundingBox", CRS="EPSG:4326", minx=repr(raster.miny), miny=repr(minx),
                         maxx=repr(raster.maxy), maxy=repr(maxx))
        etree.SubElement(layer, "BoundingBox", CRS="CRS:84", minx=repr(minx), miny=repr(raster.miny),
                         maxx=repr(maxx), maxy=repr(raster.maxy))
        for style in sorted(styles.available_styles(raster), key=lambda s: not s.default):
            element = etree.SubElement(layer, "Style")
            _text(element, "Name", style.id)
            _text(element, "Title", style.title)
            legend = etree.SubElement(element, "StyleURL")
            _text(legend, "Format", "application/vnd.ogc.sld+xml")
            href = styles.style_url(raster.public_id, style.id)
            etree.SubElement(legend, "OnlineResource", {f"{{{XLINK}}}href": href})
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def exception_report(message: str, code: str, *, version: str = "1.3.0") -> bytes:
    root = etree.Element("ServiceExceptionReport", version=version, xmlns="http://www.opengis.net/ogc")
    _text(root, "ServiceException", message).set("code", code)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def wfs_capabilities(*, base_url: str, count: int) -> bytes:
    wfs, ows = "http://www.opengis.net/wfs/2.0", "http://www.opengis.net/ows/1.1"
    root = etree.Element(f"{{{wfs}}}WFS_Capabilities", nsmap={"wfs": wfs, "ows": ows, "xlink": XLINK,
                                                              "georeg": "https://georeg.example/ns"}, version="2.0.0")
    identification = etree.SubElement(root, f"{{{ows}}}ServiceIdentification")
    _text(identification, f"{{{ows}}}Title", "georeg raster footprints")
    _text(identification, f"{{{ows}}}ServiceType", "WFS")
    _text(identification, f"{{{ows}}}ServiceTypeVersion", "2.0.0")
    metadata = etree.SubElement(root, f"{{{ows}}}OperationsMetadata")
    for name in ("GetCapabilities", "DescribeFeatureType", "GetFeature"):
        operation = etree.SubElement(metadata, f"{{{ows}}}Operation", name=name)
        http = etree.SubElement(etree.SubElement(operation, f"{{{ows}}}DCP"), f"{{{ows}}}HTTP")
        etree.SubElement(http, f"{{{ows}}}Get", {f"{{{XLINK}}}href": base_url})
    types = etree.SubElement(root, f"{{{wfs}}}FeatureTypeList")
    feature_type = etree.SubElement(types, f"{{{wfs}}}FeatureType")
    _text(feature_type, f"{{{wfs}}}Name", FEATURE_TYPE)
    _text(feature_type, f"{{{wfs}}}Title", f"Raster footprints ({count})")
    _text(feature_type, f"{{{wfs}}}DefaultCRS", "urn:ogc:def:crs:EPSG::4326")
    _text(feature_type, f"{{{wfs}}}OtherCRS", "urn:ogc:def:crs:OGC:1.3:CRS84")
    formats = etree.SubElement(feature_type, f"{{{wfs}}}OutputFormats")
    _text(formats, f"{{{wfs}}}Format", "application/json")
    box = etree.SubElement(feature_type, f"{{{ows}}}WGS84BoundingBox")
    _text(box, f"{{{ows}}}LowerCorner", "-180 -90")
    _text(box, f"{{{ows}}}UpperCorner", "180 90")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def wfs_bbox(raw: str) -> str:
    """WFS 2.0 BBOX (lat/lon for EPSG:4326 unless a CRS84 URN follows) as a lon/lat 'minx,miny,maxx,maxy'."""
    parts = raw.split(",")
    crs = parts[4] if len(parts) == 5 else "urn:ogc:def:crs:EPSG::4326"
    try:
        values = [float(v) for v in parts[:4]]
    except ValueError as exc:
        raise InvalidInput("BBOX must be four numbers (and an optional CRS)", code="invalid_bbox") from exc
    if len(values) != 4:
        raise InvalidInput("BBOX must be four numbers (and an optional CRS)", code="invalid_bbox")
    if "4326" in crs and "CRS84" not in crs.upper():
        values = [values[1], values[0], values[3], values[2]]
    return ",".join(str(v) for v in values)
