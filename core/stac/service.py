"""The STAC API's operations, one function a route: find what the caller may see (``items``), shape it
(``documents``). ``root`` is the API's absolute URL; ``query`` carries a page's own query string for its links."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, select

from georeg.core.errors import InvalidInput
from georeg.core.models import DatasetMeta
from georeg.core.rasters.search import check_bbox
from georeg.core.registry.actor import Actor
from georeg.core.stac import documents
from georeg.core.stac import items as stac_items
from georeg.core.stac.items import CollectionRef, ItemFilter

COLLECTION_META_KEYS = ("name", "description", "license")


class SearchRequest(BaseModel):
    """Item search parameters (``GET /stac/search`` query or ``POST /stac/search`` body)."""

    model_config = ConfigDict(extra="forbid")

    bbox: list[float] | None = Field(default=None, min_length=4, max_length=4,
                                     description="minx, miny, maxx, maxy in WGS84 degrees; minx > maxx crosses the "
                                                 "antimeridian")
    datetime: str | None = Field(default=None, max_length=100,
                                 description="an RFC 3339 instant, or 'start/end' with '..' for an open end")
    collections: list[str] | None = Field(default=None, max_length=1000)
    ids: list[str] | None = Field(default=None, max_length=10_000)
    intersects: dict[str, Any] | None = Field(default=None, description="a GeoJSON geometry")
    limit: int = Field(default=stac_items.DEFAULT_LIMIT, ge=1, le=stac_items.MAX_LIMIT)
    token: str | None = Field(default=None, max_length=32, description="the page after this item (from 'next')")

    def filters(self) -> ItemFilter:
        if self.bbox is not None and self.intersects is not None:
            raise InvalidInput("bbox and intersects cannot be combined in one search", code="invalid_search")
        start, end = stac_items.parse_datetime_interval(self.datetime)
        return ItemFilter(bbox=check_bbox(*self.bbox) if self.bbox else None, start=start, end=end,
                          ids=frozenset(self.ids) if self.ids is not None else None,
                          intersects=stac_items.parse_intersects(self.intersects))

    def as_query(self, token: str | None) -> dict[str, str]:
        """The GET query string of this search at page ``token``."""
        query = {"limit": str(self.limit)}
        if self.bbox is not None:
            query["bbox"] = ",".join(repr(v) for v in self.bbox)
        if self.datetime:
            query["datetime"] = self.datetime
        if self.collections is not None:
            query["collections"] = ",".join(self.collections)
        if self.ids is not None:
            query["ids"] = ",".join(self.ids)
        if token:
            query["token"] = token
        return query


def _collection_meta(session: Session, ref: CollectionRef) -> dict[str, Any]:
    if ref.dataset is None:
        return {}
    rows = session.exec(select(DatasetMeta).where(DatasetMeta.dataset_id == ref.dataset.id, DatasetMeta.path == "",
                                                  DatasetMeta.key.in_(COLLECTION_META_KEYS))
                        .order_by(DatasetMeta.mtime)).all()
    return {row.key: row.data for row in rows}


def landing(session: Session, *, actor: Actor, root: str) -> dict:
    return documents.landing_page(root, stac_items.listed_collections(session, actor=actor))


def collection(session: Session, *, actor: Actor, root: str, collection_id: str) -> dict:
    ref = stac_items.get_collection(session, actor=actor, collection_id=collection_id)
    return _collection_document(session, root, ref)


def _collection_document(session: Session, root: str, ref: CollectionRef) -> dict:
    boxes, times = stac_items.collection_extent(session, collection=ref)
    return documents.collection(root, ref, meta=_collection_meta(session, ref),
                                extent=documents.extent_of(boxes, times))


def collections(session: Session, *, actor: Actor, root: str) -> dict:
    refs = stac_items.listed_collections(session, actor=actor)
    return {"collections": [_collection_document(session, root, ref) for ref in refs],
            "links": [{"rel": "self", "href": f"{root}/stac/collections", "type": documents.JSON},
                      {"rel": "root", "href": f"{root}/stac", "type": documents.JSON},
                      {"rel": "parent", "href": f"{root}/stac", "type": documents.JSON}]}


def collection_items(session: Session, *, actor: Actor, root: str, collection_id: str,
                     search: SearchRequest) -> dict:
    """A page of one collection's items (bbox, datetime, limit, token)."""
    ref = stac_items.get_collection(session, actor=actor, collection_id=collection_id)
    records, token = stac_items.find_items(session, collections=[ref], filters=search.filters(), limit=search.limit,
                                           token=search.token)
    base = f"{documents.collection_href(root, ref.id)}/items"
    query = search.as_query(None)
    query.pop("collections", None)
    next_href = f"{base}?{urlencode({**query, 'token': token})}" if token else None
    page = documents.item_collection(root, records, self_href=f"{base}?{urlencode(search.as_query(search.token))}",
                                     next_href=next_href)
    page["links"] += [{"rel": "collection", "href": documents.collection_href(root, ref.id),
                       "type": documents.JSON}]
    return page


def collection_item(session: Session, *, actor: Actor, root: str, collection_id: str, item_id: str) -> dict:
    ref = stac_items.get_collection(session, actor=actor, collection_id=collection_id)
    return documents.item(root, stac_items.get_item(session, collection=ref, item_id=item_id))


def search(session: Session, *, actor: Actor, root: str, search: SearchRequest, post: bool) -> dict:
    """Item search over the listed collections (or those named, each of which must be readable)."""
    filters = search.filters()
    if search.collections is None:
        refs = stac_items.listed_collections(session, actor=actor)
    else:
        refs = [stac_items.get_collection(session, actor=actor, collection_id=cid) for cid in search.collections]
    records, token = stac_items.find_items(session, collections=refs, filters=filters, limit=search.limit,
                                           token=search.token)
    href = f"{root}/stac/search"
    if post:
        body = search.model_dump(exclude_none=True)
        next_body = {**body, "token": token} if token else None
        return documents.item_collection(root, records, self_href=href, next_href=href if token else None,
                                         next_body=next_body)
    next_href = f"{href}?{urlencode(search.as_query(token))}" if token else None
    return documents.item_collection(root, records, self_href=f"{href}?{urlencode(search.as_query(search.token))}",
                                     next_href=next_href)


def conformance_classes() -> dict:
    return documents.conformance()
