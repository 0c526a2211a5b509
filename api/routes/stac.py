"""``/stac``: STAC 1.1.0 API (landing Catalog, conformance, collections, items, item search) and the Registry's
``/orgs/{org}/ds/{ds}/stac``. Collections of Registry datasets are ``{org}/{ds}``; the Datasets API's rasters are
the collection ``rasters``."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, ValidationError

from georeg.api.deps import ActorDep, DsSlug, OrgSlug, ReadableDataset, SessionDep
from georeg.api.schemas import AUTH_ERRORS, COMMON_ERRORS, errors
from georeg.core.errors import InvalidInput
from georeg.core.stac import items as stac_items
from georeg.core.stac import service as stac
from georeg.core.stac.items import RASTERS_COLLECTION
from georeg.core.stac.service import SearchRequest

router = APIRouter(tags=["stac"], responses={**COMMON_ERRORS, **AUTH_ERRORS})


class StacDocument(BaseModel):
    """A STAC document (Catalog, Collection, Feature, FeatureCollection or a list of collections): the fields the
    STAC specification defines, passed through as built."""

    model_config = ConfigDict(extra="allow")


ItemId = Annotated[str, Path(alias="itemId", max_length=64, description="item id")]
Limit = Annotated[int, Query(ge=1, le=stac_items.MAX_LIMIT)]
Token = Annotated[str | None, Query(max_length=32, description="the page after this item (from 'next' links)")]
BboxQuery = Annotated[str | None, Query(max_length=200, description="minx,miny,maxx,maxy (WGS84)")]
DatetimeQuery = Annotated[str | None, Query(max_length=100, description="instant or 'start/end' ('..' open)")]


def _root(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _bbox(raw: str | None) -> list[float] | None:
    if raw is None:
        return None
    try:
        values = [float(v) for v in raw.split(",")]
    except ValueError as exc:
        raise InvalidInput("bbox must be 'minx,miny,maxx,maxy' in WGS84 degrees", code="invalid_bbox") from exc
    if len(values) != 4:
        raise InvalidInput("bbox must have 4 numbers: minx,miny,maxx,maxy", code="invalid_bbox")
    return values


def _search_request(**fields: Any) -> SearchRequest:
    try:
        return SearchRequest(**{key: value for key, value in fields.items() if value is not None})
    except ValidationError as exc:
        raise InvalidInput(f"invalid search: {exc.errors()[0]['msg']}", code="invalid_search") from exc


@router.get("/stac", response_model=StacDocument)
def landing_page(request: Request, session: SessionDep, actor: ActorDep) -> dict:
    """A STAC Catalog that is also the API landing page: one ``child`` link per collection the caller may see."""
    return stac.landing(session, actor=actor, root=_root(request))


@router.get("/stac/conformance", response_model=StacDocument)
def conformance() -> dict:
    return stac.conformance_classes()


@router.get("/stac/collections", response_model=StacDocument)
def collections(request: Request, session: SessionDep, actor: ActorDep) -> dict:
    return stac.collections(session, actor=actor, root=_root(request))


@router.get(f"/stac/collections/{RASTERS_COLLECTION}", response_model=StacDocument, responses=errors(401))
def rasters_collection(request: Request, session: SessionDep, actor: ActorDep) -> dict:
    """The Datasets API's registered rasters (signed-in callers)."""
    return stac.collection(session, actor=actor, root=_root(request), collection_id=RASTERS_COLLECTION)


@router.get(f"/stac/collections/{RASTERS_COLLECTION}/items", response_model=StacDocument, responses=errors(400, 401))
def rasters_items(request: Request, session: SessionDep, actor: ActorDep, bbox: BboxQuery = None,
                  datetime: DatetimeQuery = None, limit: Limit = stac_items.DEFAULT_LIMIT,
                  token: Token = None) -> dict:
    search = _search_request(bbox=_bbox(bbox), datetime=datetime, limit=limit, token=token)
    return stac.collection_items(session, actor=actor, root=_root(request), collection_id=RASTERS_COLLECTION,
                                 search=search)


@router.get(f"/stac/collections/{RASTERS_COLLECTION}/items/{{itemId}}", response_model=StacDocument,
            responses=errors(401))
def rasters_item(request: Request, session: SessionDep, actor: ActorDep, item_id: ItemId) -> dict:
    return stac.collection_item(session, actor=actor, root=_root(request), collection_id=RASTERS_COLLECTION,
                                item_id=item_id)


@router.get("/stac/collections/{orgSlug}/{dsSlug}", response_model=StacDocument)
def dataset_collection(request: Request, session: SessionDep, actor: ActorDep, org_slug: OrgSlug,
                       ds_slug: DsSlug) -> dict:
    """A Registry dataset's collection (id ``{org}/{ds}``)."""
    return stac.collection(session, actor=actor, root=_root(request), collection_id=f"{org_slug}/{ds_slug}")


@router.get("/stac/collections/{orgSlug}/{dsSlug}/items", response_model=StacDocument, responses=errors(400))
def dataset_items(request: Request, session: SessionDep, actor: ActorDep, org_slug: OrgSlug,
                  ds_slug: DsSlug, bbox: BboxQuery = None,
                  datetime: DatetimeQuery = None, limit: Limit = stac_items.DEFAULT_LIMIT,
                  token: Token = None) -> dict:
    search = _search_request(bbox=_bbox(bbox), datetime=datetime, limit=limit, token=token)
    return stac.collection_items(session, actor=actor, root=_root(request), collection_id=f"{org_slug}/{ds_slug}",
                                 search=search)


@router.get("/stac/collections/{orgSlug}/{dsSlug}/items/{itemId}", response_model=StacDocument)
def dataset_item(request: Request, session: SessionDep, actor: ActorDep, org_slug: OrgSlug,
                 ds_slug: DsSlug,
                 item_id: ItemId) -> dict:
    return stac.collection_item(session, actor=actor, root=_root(request), collection_id=f"{org_slug}/{ds_slug}",
                                item_id=item_id)


@router.get("/stac/search", response_model=StacDocument, responses=errors(400))
def search_get(request: Request, session: SessionDep, actor: ActorDep, bbox: BboxQuery = None,
               datetime: DatetimeQuery = None,
               collections: Annotated[str | None, Query(max_length=20_000, description="comma-separated ids")] = None,
               ids: Annotated[str | None, Query(max_length=100_000, description="comma-separated item ids")] = None,
               intersects: Annotated[str | None, Query(max_length=100_000, description="GeoJSON geometry")] = None,
               limit: Limit = stac_items.DEFAULT_LIMIT, token: Token = None) -> dict:
    """Items of every collection the caller may see (or of ``collections``) matching every filter given."""
    geometry = None
    if intersects is not None:
        try:
            geometry = json.loads(intersects)
        except ValueError as exc:
            raise InvalidInput("intersects is not JSON", code="invalid_intersects") from exc
        if not isinstance(geometry, dict):
            raise InvalidInput("intersects is not a GeoJSON geometry", code="invalid_intersects")
    search = _search_request(bbox=_bbox(bbox), datetime=datetime, limit=limit, token=token, intersects=geometry,
                             collections=collections.split(",") if collections else None,
                             ids=ids.split(",") if ids else None)
    return stac.search(session, actor=actor, root=_root(request), search=search, post=False)


@router.post("/stac/search", response_model=StacDocument, responses=errors(400))
def search_post(request: Request, session: SessionDep, actor: ActorDep, body: SearchRequest) -> dict:
    """The same search with a JSON body; ``next`` links are POSTs carrying the body with the next ``token``."""
    return stac.search(session, actor=actor, root=_root(request), search=body, post=True)


@router.get("/orgs/{orgSlug}/ds/{dsSlug}/stac", response_model=StacDocument)
def dataset_stac(request: Request, session: SessionDep, actor: ActorDep, access: ReadableDataset) -> dict:
    """The dataset's STAC collection (the Registry API's route)."""
    return stac.collection(session, actor=actor, root=_root(request),
                           collection_id=f"{access.org.slug}/{access.dataset.slug}")
