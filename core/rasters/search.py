"""Searching the raster registry: ``GET /datasets`` filters (``q``, platform, source, bbox, acquisition time),
sorting and offset pages, each page's ids and its total read from narrow indexes (see ``Raster``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, and_, func, literal_column, or_, table
from sqlmodel import Session, select

from georeg.core.db import SEARCH_INDEX_TABLE
from georeg.core.errors import InvalidInput
from georeg.core.models import Raster
from georeg.core.paging import MAX_OFFSET
from georeg.core.rasters.schemas import RasterListing
from georeg.core.rasters.service import raster_record

SORTS = {"created": Raster.created_at, "title": Raster.title, "acquired": Raster.acquired_at, "size": Raster.size}
SortKey = Literal["created", "-created", "title", "-title", "acquired", "-acquired", "size", "-size"]
MAX_PAGE = 100
BBOX_PATTERN = r"^-?[0-9]+(\.[0-9]+)?(,-?[0-9]+(\.[0-9]+)?){3}$"


class RasterQuery(BaseModel):
    """The filters, order and page of a raster search (every filter optional, AND-combined)."""

    q: str | None = Field(default=None, max_length=256,
                          description="case-insensitive substring of title, identifier, source path or id")
    platform: str | None = Field(default=None, max_length=16, description="platform prefix, e.g. S1 or S2A")
    source: str | None = Field(default=None, max_length=16, description="upload, path, csw or task")
    bbox: str | None = Field(default=None, max_length=200, json_schema_extra={"pattern": BBOX_PATTERN},
                             description="minx,miny,maxx,maxy in WGS84 degrees; minx > maxx crosses the antimeridian "
                                         "(400 invalid_bbox otherwise)")
    start: datetime | None = Field(default=None, description="acquired at or after")
    end: datetime | None = Field(default=None, description="acquired at or before")
    sort: SortKey = Field(default="-created", description="order; '-' for descending")
    limit: int = Field(default=25, ge=1, le=MAX_PAGE)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)


def parse_bbox(raw: str) -> tuple[float, float, float, float]:
    """``minx,miny,maxx,maxy`` as four checked WGS84 numbers (400 ``invalid_bbox`` otherwise)."""
    try:
        minx, miny, maxx, maxy = (float(v) for v in raw.split(","))
    except ValueError as exc:
        raise InvalidInput("bbox must be 'minx,miny,maxx,maxy' in WGS84 degrees", code="invalid_bbox") from exc
    return check_bbox(minx, miny, maxx, maxy)


def check_bbox(minx: float, miny: float, maxx: float, maxy: float) -> tuple[float, float, float, float]:
    """The box itself when it lies within WGS84 bounds with miny <= maxy (minx > maxx crosses the antimeridian)."""
    if not (-180 <= minx <= 180 and -180 <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise InvalidInput("bbox out of range: longitudes within ±180, latitudes within ±90, miny <= maxy",
                           code="invalid_bbox")
    return minx, miny, maxx, maxy


def bbox_filter(minx: float, miny: float, maxx: float, maxy: float) -> ColumnElement[bool]:
    """Intersection with a WGS84 box; rasters and boxes with minx > maxx cross the antimeridian."""
    y_overlap = and_(Raster.miny <= maxy, Raster.maxy >= miny)
    raster_normal, raster_crossing = Raster.minx <= Raster.maxx, Raster.minx > Raster.maxx
    if minx <= maxx:
        x_overlap = or_(
            and_(raster_normal, Raster.minx <= maxx, Raster.maxx >= minx),
            and_(raster_crossing, or_(Raster.minx <= maxx, Raster.maxx >= minx)),
        )
    else:
        x_overlap = or_(and_(raster_normal, or_(Raster.maxx >= minx, Raster.minx <= maxx)), raster_crossing)
    return and_(y_overlap, x_overlap)


FTS_MIN_CHARS = 3  # the trigram tokenizer matches substrings of at least one trigram


def _text_match(session: Session, q: str) -> ColumnElement[bool]:
    """``q`` as a case-insensitive substring of ``search_text``: the trigram GIN index on PostgreSQL, the FTS5
    trigram table ``SEARCH_INDEX_TABLE`` on SQLite (as ``+id IN (...)``, so that SQLite still walks the listing index
    in the requested order and stops after the page instead of sorting every hit); queries shorter than a
    trigram scan the narrow ``search_text`` index."""
    needle = q.lower()
    if session.get_bind().dialect.name != "sqlite":
        return Raster.search_text.contains(needle, autoescape=True)
    if len(needle) < FTS_MIN_CHARS:
        return Raster.id.in_(select(Raster.id).where(Raster.search_text.contains(needle, autoescape=True)))
    phrase = '"' + needle.replace('"', '""') + '"'
    hits = select(literal_column("rowid")).select_from(table(SEARCH_INDEX_TABLE)).where(
        literal_column(SEARCH_INDEX_TABLE).op("MATCH")(phrase))
    return literal_column(f"+{Raster.__tablename__}.id").in_(hits)


def search_rasters(session: Session, query: RasterQuery) -> tuple[list[Raster], int]:
    """One page of raster rows and the total, in one statement: the page's ids and the count come from narrow
    indexes (see ``Raster``), only the page's rows are read whole."""
    q, platform, source, bbox, start, end = query.q, query.platform, query.source, query.bbox, query.start, query.end
    sort, limit, offset = query.sort, query.limit, query.offset
    field = sort.lstrip("-")
    filters = []
    if q:
        filters.append(_text_match(session, q))
    if platform:
        prefix = platform.upper()  # platforms are stored upper-case; a range keeps the prefix test on an index
        filters.append(and_(Raster.platform >= prefix, Raster.platform < prefix[:-1] + chr(ord(prefix[-1]) + 1)))
    if source:
        filters.append(Raster.source == source)
    if bbox:
        filters.append(bbox_filter(*parse_bbox(bbox)))
    if start:
        filters.append(Raster.acquired_at >= start)
    if end:
        filters.append(Raster.acquired_at <= end)
    descending = sort.startswith("-")
    order = [column.desc() if descending else column.asc() for column in (SORTS[field], Raster.id)]
    count = select(func.count()).select_from(Raster).where(*filters)
    page = select(Raster.id, count.scalar_subquery().label("total"))
    page = page.where(*filters).order_by(*order).offset(offset).limit(limit).subquery()
    hits = session.exec(select(Raster, page.c.total).join(page, Raster.id == page.c.id).order_by(*order)).all()
    if hits:
        return [raster for raster, _ in hits], hits[0][1]
    return [], session.exec(count).one() if offset else 0


def list_rasters(session: Session, query: RasterQuery) -> RasterListing:
    """The page of records ``query`` asks for, with its total."""
    rows, total = search_rasters(session, query)
    return RasterListing.of([raster_record(raster) for raster in rows], total=total, limit=query.limit,
                            offset=query.offset)
