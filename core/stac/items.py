"""What a STAC caller may see: collections (readable Registry datasets, and the Datasets API's rasters for signed-in
users) and their items (georeferenced raster entries; registered rasters), filtered and paged.

Listings follow the Registry's visibility rules without the reference's leak: public datasets for everybody,
private and unlisted ones only for callers with permission on their organization. An unlisted dataset's collection
can still be opened by its id, as its other routes can. Item pages are keyset pages: ``token`` names the last item
of the previous page (``e<entry id>`` or ``r<raster id>``), so a walk through ``next`` links sees every item once.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from urllib.parse import quote

from shapely.geometry import box, shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Select, and_, case, func, or_
from sqlmodel import Session, select

from georeg.core.errors import InvalidInput, NotFound
from georeg.core.models import Dataset, Entry, EntryType, Organization, OrgMember, Permission, Raster, Visibility
from georeg.core.rasters.search import bbox_filter
from georeg.core.registry.access import load_dataset
from georeg.core.registry.actor import Actor, require_user
from georeg.core.timeutil import as_utc

RASTERS_COLLECTION = "rasters"
MAX_LIMIT = 1000
DEFAULT_LIMIT = 10
MAX_BATCH = 1000
EXTENT_TTL_SECONDS = 60.0
EXTENT_CACHE_SIZE = 10_000
_extent_cache: dict[tuple, tuple[float, tuple[list[list[float]], list[datetime]]]] = {}
_TOKEN = re.compile(r"^([er])([0-9]{1,18})$")


@dataclass(frozen=True)
class CollectionRef:
    """A collection the caller may read: a Registry dataset (``org/ds``) or the rasters collection."""

    id: str
    org: Organization | None = None
    dataset: Dataset | None = None


@dataclass(frozen=True)
class ItemRecord:
    """What an item document is made of (hrefs are relative to the API root)."""

    id: str
    collection: str
    title: str
    geometry: dict
    bbox: list[float]
    datetime: datetime
    updated: datetime
    epsg: int | None
    wkt: str | None
    shape: list[int] | None
    transform: list[float] | None
    data_href: str
    media_type: str
    size: int
    thumbnail_href: str | None
    token: str


@dataclass(frozen=True)
class ItemFilter:
    """Search filters, all optional and AND-combined. ``bbox`` minx > maxx crosses the antimeridian."""

    bbox: tuple[float, float, float, float] | None = None
    start: datetime | None = None
    end: datetime | None = None
    ids: frozenset[str] | None = None
    intersects: BaseGeometry | None = None
    areas: list[BaseGeometry] = field(default_factory=list)

    def __post_init__(self) -> None:
        areas = list(_boxes(self.bbox)) if self.bbox else []
        if self.intersects is not None:
            areas = [self.intersects] if not areas else [a.intersection(self.intersects) for a in areas]
        object.__setattr__(self, "areas", areas)

    @property
    def spatial(self) -> bool:
        return self.bbox is not None or self.intersects is not None

    def accepts_geometry(self, geometry: dict) -> bool:
        if not self.spatial:
            return True
        footprint = shape(geometry)
        return any(not area.is_empty and area.intersects(footprint) for area in self.areas)


def _boxes(bbox: tuple[float, float, float, float]) -> Iterator[BaseGeometry]:
    minx, miny, maxx, maxy = bbox
    if minx > maxx:
        yield box(minx, miny, 180.0, maxy)
        yield box(-180.0, miny, maxx, maxy)
    else:
        yield box(minx, miny, maxx, maxy)


# --- parameters ------------------------------------------------------------------------------------------------


def parse_datetime_interval(raw: str | None) -> tuple[datetime | None, datetime | None]:
    """STAC's ``datetime``: one instant, or ``start/end`` with ``..`` (or nothing) for an open end (400
    ``invalid_datetime`` otherwise)."""
    if raw is None or raw == "":
        return None, None
    parts = raw.split("/")
    if len(parts) > 2:
        raise InvalidInput("datetime is an RFC 3339 instant or 'start/end' ('..' for an open end)",
                           code="invalid_datetime")
    values = [_instant(part) for part in parts]
    if len(values) == 1:
        if values[0] is None:
            raise InvalidInput("datetime '..' needs the other end of an interval", code="invalid_datetime")
        return values[0], values[0]
    start, end = values
    if start is None and end is None:
        raise InvalidInput("datetime '../..' names no time at all", code="invalid_datetime")
    if start and end and start > end:
        raise InvalidInput("datetime interval ends before it starts", code="invalid_datetime")
    return start, end


def _instant(text: str) -> datetime | None:
    if text in ("", ".."):
        return None
    try:
        value = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError as exc:
        raise InvalidInput(f"datetime {text[:64]!r} is not RFC 3339", code="invalid_datetime") from exc
    if value.tzinfo is None:
        raise InvalidInput(f"datetime {text[:64]!r} has no time zone (RFC 3339 needs one, e.g. 'Z')",
                           code="invalid_datetime")
    return as_utc(value)


def parse_intersects(geometry: dict | None) -> BaseGeometry | None:
    """A GeoJSON geometry as a shapely one (400 ``invalid_intersects`` when it is not a valid geometry)."""
    if geometry is None:
        return None
    try:
        parsed = shape(geometry)
    except Exception as exc:  # shapely raises several types for malformed GeoJSON
        raise InvalidInput("intersects is not a GeoJSON geometry", code="invalid_intersects") from exc
    if parsed.is_empty or not parsed.is_valid:
        raise InvalidInput("intersects is an empty or invalid geometry", code="invalid_intersects")
    return parsed


def parse_token(token: str | None) -> tuple[str, int] | None:
    if not token:
        return None
    match = _TOKEN.fullmatch(token)
    if match is None:
        raise InvalidInput("token is not one this API gave out", code="invalid_token")
    return match.group(1), int(match.group(2))


# --- collections -----------------------------------------------------------------------------------------------


def listed_collections(session: Session, *, actor: Actor) -> list[CollectionRef]:
    """The collections listed to ``actor``, by id: public datasets, every dataset of its organizations (all for
    admins), and ``rasters`` for a signed-in caller."""
    statement = select(Organization, Dataset).join(Dataset, Dataset.org_id == Organization.id)
    if not actor.is_admin:
        listed = Dataset.visibility == Visibility.public.value
        if actor.user is not None:
            member_orgs = select(OrgMember.org_id).where(OrgMember.user_id == actor.user.id)
            listed = or_(listed, Organization.owner_id == actor.user.id, Organization.id.in_(member_orgs))
        statement = statement.where(listed)
    refs = [CollectionRef(id=f"{org.slug}/{dataset.slug}", org=org, dataset=dataset)
            for org, dataset in session.exec(statement)]
    if actor.user is not None:
        refs.append(CollectionRef(id=RASTERS_COLLECTION))
    return sorted(refs, key=lambda ref: ref.id)


def get_collection(session: Session, *, actor: Actor, collection_id: str) -> CollectionRef:
    """The collection ``collection_id`` if ``actor`` may read it (401/404 as the Registry's other routes)."""
    if collection_id == RASTERS_COLLECTION:
        require_user(actor)
        return CollectionRef(id=RASTERS_COLLECTION)
    org_slug, _, ds_slug = collection_id.partition("/")
    if not org_slug or not ds_slug or "/" in ds_slug:
        raise NotFound(f"no collection {collection_id[:300]!r}", code="collection_not_found")
    access = load_dataset(session, actor=actor, org_slug=org_slug, ds_slug=ds_slug, need=Permission.read)
    return CollectionRef(id=collection_id, org=access.org, dataset=access.dataset)


# --- items -----------------------------------------------------------------------------------------------------


def _download_href(org: Organization, dataset: Dataset, path: str) -> str:
    return f"/orgs/{org.slug}/ds/{dataset.slug}/download?path={quote(path, safe='/')}"


def _transform(native: list[float] | None, width: int | None, height: int | None) -> list[float] | None:
    if not native or not width or not height:
        return None
    minx, miny, maxx, maxy = native
    return [(maxx - minx) / width, 0.0, minx, 0.0, -(maxy - miny) / height, maxy]


def _entry_record(collection: CollectionRef, entry: Entry, raster: Raster | None) -> ItemRecord | None:
    """An entry's item; a raster registered through the Datasets API describes its own entry."""
    href = _download_href(collection.org, collection.dataset, entry.path)
    if raster is not None:
        record = _raster_record(raster, entry, href)
        return record and replace(record, id=entry.public_id, collection=collection.id, title=entry.path,
                                  token=f"e{entry.id}")
    props = entry.properties or {}
    bbox = props.get("wgs84_bounds")
    if not entry.footprint or not bbox:
        return None
    return ItemRecord(
        id=entry.public_id, collection=collection.id, title=entry.path, geometry=entry.footprint, bbox=list(bbox),
        datetime=as_utc(entry.mtime), updated=as_utc(entry.mtime), epsg=props.get("epsg"), wkt=props.get("crs_wkt"),
        shape=[props["height"], props["width"]] if props.get("width") else None,
        transform=None if props.get("has_gcps") else _transform(entry.bounds, props.get("width"),
                                                                props.get("height")),
        data_href=href, media_type="image/tiff; application=geotiff", size=entry.size, thumbnail_href=None,
        token=f"e{entry.id}")


def _raster_record(raster: Raster, entry: Entry, data_href: str) -> ItemRecord | None:
    if raster.footprint is None or raster.minx is None:
        return None
    bbox = [raster.minx, raster.miny, raster.maxx, raster.maxy]
    return ItemRecord(
        id=raster.public_id, collection=RASTERS_COLLECTION, title=raster.title or entry.path,
        geometry=raster.footprint, bbox=bbox, datetime=as_utc(raster.acquired_at or raster.created_at),
        updated=as_utc(entry.mtime), epsg=raster.epsg, wkt=raster.crs_wkt, shape=[raster.height, raster.width],
        transform=_transform(raster.native_bounds, raster.width, raster.height) if raster.epsg or raster.crs_wkt
        else None,
        data_href=data_href, media_type="image/tiff; application=geotiff",
        size=raster.size, thumbnail_href=f"/datasets/{raster.public_id}/thumbnail.png", token=f"r{raster.id}")


def _growing(first: int) -> Iterator[int]:
    """Batch sizes: a page's worth first (most pages fill from it), then doubling up to ``MAX_BATCH``."""
    size = max(first, 16)
    while True:
        yield size
        size = min(size * 2, MAX_BATCH)


def _spatial_prefilter(filters: ItemFilter) -> tuple[float, float, float, float] | None:
    """The box the indexed columns are filtered by: ``bbox``, or the envelope of ``intersects``."""
    if filters.bbox is not None:
        return filters.bbox
    if filters.intersects is not None:
        minx, miny, maxx, maxy = filters.intersects.bounds
        return max(minx, -180.0), max(miny, -90.0), min(maxx, 180.0), min(maxy, 90.0)
    return None


def _filtered(statement, filters: ItemFilter, public_id, when):  # noqa: ANN001, ANN202
    """``statement`` narrowed by the filters the database can apply: ids, the time interval."""
    if filters.ids is not None:
        statement = statement.where(public_id.in_(list(filters.ids)))
    if filters.start is not None:
        statement = statement.where(when >= filters.start)
    if filters.end is not None:
        statement = statement.where(when <= filters.end)
    return statement


def _keyset_rows(session: Session, rows_after: Callable[[int], Select], after: int,
                 first: int) -> Iterator[tuple]:
    """The rows ``rows_after(position)`` selects (those past ``position``, ordered by the id of their first
    column), from ``after`` on, read in batches growing from ``first``."""
    for size in _growing(first):
        rows = session.exec(rows_after(after).limit(size)).all()
        yield from rows
        if len(rows) < size:
            return
        after = rows[-1][0].id


def _entry_batches(session: Session, collections: list[CollectionRef], filters: ItemFilter,
                   after: int, first: int = MAX_BATCH) -> Iterator[ItemRecord]:
    by_dataset = {ref.dataset.id: ref for ref in collections if ref.dataset is not None}
    if not by_dataset:
        return
    prefilter = _spatial_prefilter(filters)

    def rows_after(position: int) -> Select:
        # the join also bounds the rasters' side by the position: PostgreSQL's merge join would otherwise read
        # the rasters' entry_id index from its start (a deep page: 87 ms for 10 items past 90,000)
        statement = (select(Entry, Raster)
                     .outerjoin(Raster, and_(Raster.entry_id == Entry.id, Raster.entry_id > position))
                     .where(Entry.id > position, Entry.dataset_id.in_(list(by_dataset)),
                            Entry.type == EntryType.raster.value)
                     .order_by(Entry.id))
        statement = _filtered(statement, filters, Entry.public_id, func.coalesce(Raster.acquired_at, Entry.mtime))
        if prefilter is not None:  # entries of registered rasters are filtered by the raster's indexed box
            statement = statement.where(or_(Raster.id.is_(None), bbox_filter(*prefilter)))
        return statement

    for entry, raster in _keyset_rows(session, rows_after, after, first):
        record = _entry_record(by_dataset[entry.dataset_id], entry, raster)
        if record is not None and filters.accepts_geometry(record.geometry):
            yield record


def _raster_batches(session: Session, filters: ItemFilter, after: int, first: int) -> Iterator[ItemRecord]:
    statement = (select(Raster, Entry, Dataset, Organization).join(Entry, Entry.id == Raster.entry_id)
                 .join(Dataset, Dataset.id == Entry.dataset_id).join(Organization, Organization.id == Dataset.org_id)
                 .where(Raster.minx.is_not(None)).order_by(Raster.id))
    statement = _filtered(statement, filters, Raster.public_id, func.coalesce(Raster.acquired_at, Raster.created_at))
    prefilter = _spatial_prefilter(filters)
    if prefilter is not None:
        statement = statement.where(bbox_filter(*prefilter))
    for raster, entry, dataset, org in _keyset_rows(session, lambda position: statement.where(Raster.id > position),
                                                    after, first):
        record = _raster_record(raster, entry, _download_href(org, dataset, entry.path))
        if record is not None and filters.accepts_geometry(record.geometry):
            yield record


def find_items(session: Session, *, collections: list[CollectionRef], filters: ItemFilter, limit: int,
               token: str | None) -> tuple[list[ItemRecord], str | None]:
    """One page of the items of ``collections`` matching ``filters`` (entries by id, then rasters by id) and the
    token of the next page (``None`` on the last)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be within 1..{MAX_LIMIT}", code="invalid_limit")
    position = parse_token(token)
    sources = []
    if position is None or position[0] == "e":
        sources.append(_entry_batches(session, collections, filters, position[1] if position else 0, limit + 1))
    if any(ref.id == RASTERS_COLLECTION for ref in collections):
        sources.append(_raster_batches(session, filters, position[1] if position and position[0] == "r" else 0,
                                       limit + 1))
    page: list[ItemRecord] = []
    for source in sources:
        for record in source:
            if len(page) == limit:
                return page, page[-1].token
            page.append(record)
    return page, None


def get_item(session: Session, *, collection: CollectionRef, item_id: str) -> ItemRecord:
    """The item ``item_id`` of ``collection`` (404 ``item_not_found``)."""
    found, _ = find_items(session, collections=[collection], filters=ItemFilter(ids=frozenset([item_id[:64]])),
                          limit=1, token=None)
    if not found:
        raise NotFound(f"no item {item_id[:64]!r} in collection {collection.id!r}", code="item_not_found")
    return found[0]


def collection_extent(session: Session, *, collection: CollectionRef) -> tuple[list[list[float]], list[datetime]]:
    """The bboxes and datetimes a collection's extent is made from: registered rasters contribute their aggregate,
    other georeferenced entries of a dataset their own boxes and times. Kept for ``EXTENT_TTL_SECONDS`` per version
    of the collection (the dataset's ``updated_at``; the rasters' count, newest id and registration time), since it
    reads every item."""
    if collection.dataset is not None:
        version: tuple = (collection.dataset.id, as_utc(collection.dataset.updated_at))
    else:
        version = tuple(session.exec(select(func.count(), func.max(Raster.id), func.max(Raster.created_at))
                                     .select_from(Raster)).one())
    key = (collection.id, version)
    cached = _extent_cache.get(key)
    if cached is not None and time.monotonic() - cached[0] < EXTENT_TTL_SECONDS:
        return cached[1]
    extent = _collection_extent(session, collection)
    if len(_extent_cache) >= EXTENT_CACHE_SIZE:
        _extent_cache.clear()
    _extent_cache[key] = (time.monotonic(), extent)
    return extent


def _collection_extent(session: Session, collection: CollectionRef) -> tuple[list[list[float]], list[datetime]]:
    when = func.coalesce(Raster.acquired_at, Raster.created_at)
    aggregate = (select(func.min(Raster.minx), func.min(Raster.miny), func.max(Raster.maxx), func.max(Raster.maxy),
                        func.min(when), func.max(when), func.max(case((Raster.minx > Raster.maxx, 1), else_=0)))
                 .where(Raster.minx.is_not(None)))
    boxes: list[list[float]] = []
    times: list[datetime] = []
    if collection.dataset is not None:
        aggregate = aggregate.join(Entry, Entry.id == Raster.entry_id).where(
            Entry.dataset_id == collection.dataset.id)
        plain = (select(Entry).outerjoin(Raster, Raster.entry_id == Entry.id)
                 .where(Entry.dataset_id == collection.dataset.id, Entry.type == EntryType.raster.value,
                        Raster.id.is_(None)))
        for entry in session.exec(plain):
            record = _entry_record(collection, entry, None)
            if record is not None:
                boxes.append(record.bbox)
                times.append(record.datetime)
    minx, miny, maxx, maxy, first, last, crossing = session.exec(aggregate).one()
    if minx is not None:
        boxes.append([180.0, miny, -180.0, maxy] if crossing else [minx, miny, maxx, maxy])
        times += [as_utc(first), as_utc(last)]
    return boxes, times
