"""STAC 1.1.0 documents: the landing page (a Catalog), conformance, collections, items and item collections.

Every function takes ``root``, the absolute URL of the API (no trailing slash), and answers plain JSON-ready
dicts; hrefs are absolute, as STAC clients resolve them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from georeg.core.stac.items import RASTERS_COLLECTION, CollectionRef, ItemRecord

STAC_VERSION = "1.1.0"
PROJECTION_EXTENSION = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
CATALOG_ID = "georeg"
GEOJSON = "application/geo+json"
JSON = "application/json"
CONFORMANCE = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
]
WORLD = [-180.0, -90.0, 180.0, 90.0]


def _link(rel: str, href: str, media_type: str = JSON, **extra: Any) -> dict:
    return {"rel": rel, "href": href, "type": media_type, **extra}


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def collection_href(root: str, collection_id: str) -> str:
    return f"{root}/stac/collections/{quote(collection_id, safe='/')}"


def landing_page(root: str, collections: list[CollectionRef]) -> dict:
    """``GET /stac``: a Catalog and STAC API landing page, one ``child`` link per listed collection."""
    links = [
        _link("self", f"{root}/stac"), _link("root", f"{root}/stac"),
        _link("conformance", f"{root}/stac/conformance"), _link("data", f"{root}/stac/collections"),
        _link("search", f"{root}/stac/search", GEOJSON, method="GET"),
        _link("search", f"{root}/stac/search", GEOJSON, method="POST"),
        _link("service-desc", f"{root}/openapi.json", "application/vnd.oai.openapi+json;version=3.0"),
        *(_link("child", collection_href(root, ref.id)) for ref in collections),
    ]
    return {"type": "Catalog", "stac_version": STAC_VERSION, "id": CATALOG_ID, "title": "georeg",
            "description": "Registry datasets and registered rasters as STAC collections", "conformsTo": CONFORMANCE,
            "links": links}


def conformance() -> dict:
    return {"conformsTo": CONFORMANCE}


def collection(root: str, ref: CollectionRef, *, meta: dict[str, Any], extent: tuple[list[float], datetime | None,
               datetime | None]) -> dict:
    """A collection: a Registry dataset (title from its ``name`` metadata, ``license`` metadata or ``other``) or the
    rasters collection; ``extent`` is (bbox, first, last) of its items."""
    if ref.id == RASTERS_COLLECTION:
        title, description, license_ = "Registered rasters", "Rasters registered through the Datasets API", "other"
    else:
        title = _text(meta.get("name")) or ref.dataset.name or ref.id
        description = _text(meta.get("description")) or ref.dataset.description or f"Registry dataset {ref.id}"
        license_ = _text(meta.get("license")) or "other"
    bbox, first, last = extent
    href = collection_href(root, ref.id)
    links = [_link("self", href), _link("root", f"{root}/stac"), _link("parent", f"{root}/stac"),
             _link("items", f"{href}/items", GEOJSON)]
    return {"type": "Collection", "stac_version": STAC_VERSION, "stac_extensions": [], "id": ref.id, "title": title,
            "description": description, "license": license_,
            "extent": {"spatial": {"bbox": [bbox]},
                       "temporal": {"interval": [[_iso(first) if first else None, _iso(last) if last else None]]}},
            "links": links}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def item(root: str, record: ItemRecord) -> dict:
    """An item: flat ``bbox``, GeoJSON geometry, ``datetime`` always set, projection fields, ``data`` and
    ``thumbnail`` assets, and ``self``/``parent``/``collection``/``root`` links."""
    collection_url = collection_href(root, record.collection)
    properties: dict[str, Any] = {"datetime": _iso(record.datetime), "updated": _iso(record.updated),
                                  "title": record.title,
                                  "proj:code": f"EPSG:{record.epsg}" if record.epsg else None}
    if not record.epsg and record.wkt:
        properties["proj:wkt2"] = record.wkt
    if record.shape:
        properties["proj:shape"] = record.shape
    if record.transform:
        properties["proj:transform"] = record.transform
    assets = {"data": {"href": f"{root}{record.data_href}", "type": record.media_type, "title": record.title,
                       "roles": ["data"]}}
    if record.thumbnail_href:
        assets["thumbnail"] = {"href": f"{root}{record.thumbnail_href}", "type": "image/png", "title": "thumbnail",
                               "roles": ["thumbnail"]}
    links = [_link("self", f"{collection_url}/items/{quote(record.id)}", GEOJSON),
             _link("parent", collection_url), _link("collection", collection_url), _link("root", f"{root}/stac")]
    return {"type": "Feature", "stac_version": STAC_VERSION, "stac_extensions": [PROJECTION_EXTENSION],
            "id": record.id, "collection": record.collection, "bbox": record.bbox, "geometry": record.geometry,
            "properties": properties, "assets": assets, "links": links}


def item_collection(root: str, records: list[ItemRecord], *, self_href: str, next_href: str | None,
                    next_body: dict | None = None) -> dict:
    """A page of items: a GeoJSON FeatureCollection with ``self``/``root`` and, unless last, a ``next`` link (for a
    POST search, the ``next`` link is a POST with ``next_body``)."""
    links = [_link("self", self_href, GEOJSON), _link("root", f"{root}/stac")]
    if next_href is not None:
        extra = {"method": "POST", "body": next_body} if next_body is not None else {}
        links.append(_link("next", next_href, GEOJSON, **extra))
    return {"type": "FeatureCollection", "features": [item(root, record) for record in records],
            "numberReturned": len(records), "links": links}


def extent_of(records_bbox: list[list[float]], times: list[datetime]) -> tuple[list[float], datetime | None,
                                                                                datetime | None]:
    """The spatial and temporal extent of items (the world when there are none; a crossing box when items span
    the antimeridian)."""
    if not records_bbox:
        return list(WORLD), None, None
    crossing = any(b[0] > b[2] for b in records_bbox)
    miny, maxy = min(b[1] for b in records_bbox), max(b[3] for b in records_bbox)
    if crossing:
        return [-180.0, miny, 180.0, maxy], min(times), max(times)
    return [min(b[0] for b in records_bbox), miny, max(b[2] for b in records_bbox), maxy], min(times), max(times)
