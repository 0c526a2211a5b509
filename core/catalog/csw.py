"""CSW 2.0.2 client: structured search with AND-combined FES filters, record lookup by identifier,
ISO 19139 records normalized into :class:`CswRecord`, and reference classification.

Only configured endpoints (``GEOREG_CSW_ENDPOINTS``) are ever contacted; upstream failures become
:class:`UpstreamError` (502) or :class:`UpstreamTimeout` (504), never a crash.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from lxml import etree
from pydantic import BaseModel, Field, field_validator, model_validator

from georeg.core.config import Settings
from georeg.core.errors import InvalidInput, NotFound, PermissionDenied, UpstreamError, UpstreamTimeout
from georeg.core.paging import OffsetPage
from georeg.core.rasters.profiles import detect_platform

if TYPE_CHECKING:
    import httpx

GMD = "http://www.isotc211.org/2005/gmd"
CSW_NS = "http://www.opengis.net/cat/csw/2.0.2"
OGC_NS = "http://www.opengis.net/ogc"
CRS84 = "urn:ogc:def:crs:OGC:1.3:CRS84"
SORT_PROPERTY = "dc:identifier"
MAX_LIMIT = 100
ReferenceKind = Literal["download", "opendap", "wms", "other"]
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


class BBox(BaseModel):
    """A WGS84 lon/lat box; ``minx > maxx`` means it crosses the antimeridian."""

    minx: float = Field(ge=-180, le=180)
    miny: float = Field(ge=-90, le=90)
    maxx: float = Field(ge=-180, le=180)
    maxy: float = Field(ge=-90, le=90)

    @model_validator(mode="after")
    def _ordered(self) -> BBox:
        if self.miny > self.maxy:
            raise ValueError("miny must not be greater than maxy")
        return self

    @property
    def crosses_antimeridian(self) -> bool:
        return self.minx > self.maxx


class CswQuery(BaseModel):
    """The body of ``POST /datasets/csw-search`` (every field optional, AND-combined)."""

    endpoint: str | None = None
    keywords: list[str] = Field(default_factory=list, max_length=20)
    start_datetime: datetime | None = None
    end_datetime: datetime | None = None
    bbox: BBox | None = None
    anytext: str | None = Field(default=None, max_length=500)
    limit: int = Field(default=25, ge=1, le=MAX_LIMIT)
    offset: int = Field(default=0, ge=0, le=1_000_000)

    @field_validator("keywords")
    @classmethod
    def _keywords(cls, value: list[str]) -> list[str]:
        cleaned = [keyword.strip() for keyword in value]
        if any(not keyword or len(keyword) > 200 for keyword in cleaned):
            raise ValueError("keywords must be non-empty strings of at most 200 characters")
        return cleaned

    @model_validator(mode="after")
    def _window(self) -> CswQuery:
        if self.start_datetime and self.end_datetime and as_utc(self.start_datetime) > as_utc(self.end_datetime):
            raise ValueError("start_datetime must not be after end_datetime")
        return self


class Reference(BaseModel):
    scheme: str | None = None
    url: str
    kind: ReferenceKind = "other"
    name: str | None = None


class TemporalExtent(BaseModel):
    start: str | None = None
    end: str | None = None


class CswRecord(BaseModel):
    """One catalogue record, normalized."""

    identifier: str
    title: str | None = None
    abstract: str | None = None
    subjects: list[str] = Field(default_factory=list)
    bbox: list[float] | None = None
    references: list[Reference] = Field(default_factory=list)
    temporal_extent: TemporalExtent = Field(default_factory=TemporalExtent)
    parent_identifier: str | None = None
    platform: str | None = None

    def references_of(self, kind: ReferenceKind) -> list[Reference]:
        return [reference for reference in self.references if reference.kind == kind]

    @property
    def acquired_at(self) -> str | None:
        return self.temporal_extent.start or self.temporal_extent.end

    def registration_metadata(self, *, profile: str | None) -> dict:
        """What a raster registered from this record keeps (``source`` csw)."""
        return {
            "identifier": self.identifier, "title": self.title, "platform": self.platform, "profile": profile,
            "acquired_at": self.acquired_at, "parent_identifier": self.parent_identifier,
            "references": [reference.model_dump() for reference in self.references],
        }


class CswPage(OffsetPage[CswRecord]):
    """A page of CSW records, with how many filter constraints the catalogue was sent."""

    constraints_applied: int


_KIND_PATTERNS: tuple[tuple[ReferenceKind, re.Pattern], ...] = (
    ("opendap", re.compile(r"opendap|dods", re.IGNORECASE)),
    ("wms", re.compile(r"\bwms\b|ogc:wms", re.IGNORECASE)),
    ("download", re.compile(r"download|fileserver|\bhttp(s)?\b$", re.IGNORECASE)),
)


def classify_reference(scheme: str | None, url: str | None = None) -> ReferenceKind:
    """download / opendap / wms / other from a reference scheme (protocol), case-insensitively; the URL
    decides only when the scheme says nothing (``dodsC`` paths are OPeNDAP, ``fileServer`` downloads)."""
    for text in (scheme, url if not scheme else None):
        if not text:
            continue
        for kind, pattern in _KIND_PATTERNS:
            if pattern.search(text):
                return kind
    return "other"


def as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso_utc(value: datetime) -> str:
    """Full ISO-8601 UTC (``2026-01-01T00:00:00Z``): pycsw compares times as strings."""
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def normalize_time(raw: str | None) -> str | None:
    """A record's time as full ISO-8601 UTC; dates get midnight; unparsable text is kept as it is."""
    if not raw:
        return None
    text = raw.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    return iso_utc(parsed)


def allowed_endpoint(settings: Settings, endpoint: str | None) -> str:
    """``endpoint`` if it is one of ``GEOREG_CSW_ENDPOINTS`` (default: the first), else 400."""
    configured = [item.rstrip("/") for item in settings.csw_endpoints]
    if not configured:
        raise PermissionDenied("no CSW endpoint is configured (GEOREG_CSW_ENDPOINTS)", code="csw_not_configured")
    if endpoint is None:
        return configured[0]
    if endpoint.rstrip("/") not in configured:
        raise InvalidInput(f"endpoint {endpoint!r} is not an allowed CSW endpoint", code="endpoint_not_allowed",
                           details={"allowed": configured})
    return endpoint.rstrip("/")


def build_constraints(query: CswQuery) -> list:
    """The top-level FES constraints of a query (AND-combined by :func:`search`)."""
    from owslib import fes

    constraints: list = [fes.PropertyIsLike("dc:subject", f"%{keyword}%", wildCard="%") for keyword in query.keywords]
    if query.start_datetime:
        constraints.append(fes.PropertyIsGreaterThanOrEqualTo("apiso:TempExtent_begin", iso_utc(query.start_datetime)))
    if query.end_datetime:
        constraints.append(fes.PropertyIsLessThanOrEqualTo("apiso:TempExtent_end", iso_utc(query.end_datetime)))
    if query.bbox:
        box = query.bbox
        if box.crosses_antimeridian:
            constraints.append(fes.Or([fes.BBox([box.minx, box.miny, 180.0, box.maxy], crs=CRS84),
                                       fes.BBox([-180.0, box.miny, box.maxx, box.maxy], crs=CRS84)]))
        else:
            constraints.append(fes.BBox([box.minx, box.miny, box.maxx, box.maxy], crs=CRS84))
    if query.anytext:
        constraints.append(fes.PropertyIsLike("csw:AnyText", f"%{query.anytext}%", wildCard="%"))
    return constraints


def _text(value: object) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


_ISO = {"gmd": GMD, "gco": "http://www.isotc211.org/2005/gco", "gmx": "http://www.isotc211.org/2005/gmx",
        "srv": "http://www.isotc211.org/2005/srv"}
_STRING = "*[self::gco:CharacterString or self::gmx:Anchor]"


def _xpath(expression: str) -> etree.XPath:
    return etree.XPath(expression, namespaces=_ISO)


_FIELDS = {
    "identifier": _xpath(f"string(gmd:fileIdentifier/{_STRING})"),
    "parent": _xpath(f"string(gmd:parentIdentifier/{_STRING})"),
    "identification": _xpath("gmd:identificationInfo/*[1]"),
    "title": _xpath(f"string(gmd:citation/gmd:CI_Citation/gmd:title/{_STRING})"),
    "abstract": _xpath(f"string(gmd:abstract/{_STRING})"),
    "keywords": _xpath(f"gmd:descriptiveKeywords/gmd:MD_Keywords/gmd:keyword/{_STRING}/text()"),
    "box": _xpath("(*[self::gmd:extent or self::srv:extent]/gmd:EX_Extent/gmd:geographicElement"
                  "/gmd:EX_GeographicBoundingBox)[1]"),
    "begin": _xpath("string((*[self::gmd:extent or self::srv:extent]/gmd:EX_Extent/gmd:temporalElement"
                    "/gmd:EX_TemporalExtent/gmd:extent/*[local-name()='TimePeriod']"
                    "/*[local-name()='beginPosition'])[1])"),
    "end": _xpath("string((*[self::gmd:extent or self::srv:extent]/gmd:EX_Extent/gmd:temporalElement"
                  "/gmd:EX_TemporalExtent/gmd:extent/*[local-name()='TimePeriod']"
                  "/*[local-name()='endPosition'])[1])"),
    "online": _xpath("gmd:distributionInfo/gmd:MD_Distribution//gmd:onLine/gmd:CI_OnlineResource"),
    "url": _xpath("string(gmd:linkage/gmd:URL)"),
    "protocol": _xpath(f"string(gmd:protocol/{_STRING})"),
    "name": _xpath(f"string(gmd:name/{_STRING})"),
}
_CORNERS = {side: _xpath(f"string(gmd:{side}/gco:Decimal)") for side in
            ("westBoundLongitude", "southBoundLatitude", "eastBoundLongitude", "northBoundLatitude")}


def _bbox(box: etree._Element | None) -> list[float] | None:
    if box is None:
        return None
    try:
        return [float(_CORNERS[side](box)) for side in _CORNERS]
    except ValueError:
        return None


def record_from_iso(element: etree._Element) -> CswRecord:
    """Normalize one ISO 19139 ``gmd:MD_Metadata`` element (only the fields georeg keeps are read)."""
    identifications = _FIELDS["identification"](element)
    subjects: list[str] = []
    title = abstract = bbox = None
    temporal = TemporalExtent()
    if identifications:
        identification = identifications[0]
        title, abstract = _text(_FIELDS["title"](identification)), _text(_FIELDS["abstract"](identification))
        for keyword in _FIELDS["keywords"](identification):
            name = _text(keyword)
            if name and name not in subjects:
                subjects.append(name)
        boxes = _FIELDS["box"](identification)
        bbox = _bbox(boxes[0] if boxes else None)
        temporal = TemporalExtent(start=normalize_time(_text(_FIELDS["begin"](identification))),
                                  end=normalize_time(_text(_FIELDS["end"](identification))))
    references = []
    for online in _FIELDS["online"](element):
        url, protocol = _text(_FIELDS["url"](online)), _text(_FIELDS["protocol"](online))
        if url:
            references.append(Reference(scheme=protocol, url=url, kind=classify_reference(protocol, url),
                                        name=_text(_FIELDS["name"](online))))
    identifier = _text(_FIELDS["identifier"](element)) or ""
    return CswRecord(
        identifier=identifier, title=title, abstract=abstract, subjects=subjects, bbox=bbox, references=references,
        temporal_extent=temporal, parent_identifier=_text(_FIELDS["parent"](element)),
        platform=detect_platform(identifier, title, *(reference.url for reference in references)),
    )


class CswClient:
    """A connection to one allowed CSW endpoint. Filters are built with OWSLib's FES classes; requests go over
    httpx so that the timeout, HTTP errors and OWS exception reports surface as
    :class:`UpstreamError`/:class:`UpstreamTimeout` with the service's own message. ``http`` is a shared
    client (the API's, owned by its lifespan); without one the client makes and closes its own."""

    def __init__(self, endpoint: str, *, timeout: float, http: httpx.Client | None = None) -> None:
        import httpx

        self.endpoint = endpoint
        self.timeout = timeout
        self._own = http is None
        self._http = http or httpx.Client(headers={"User-Agent": "georeg CSW client"})

    @classmethod
    def for_settings(cls, settings: Settings, endpoint: str | None = None, *,
                     http: httpx.Client | None = None) -> CswClient:
        return cls(allowed_endpoint(settings, endpoint), timeout=settings.csw_timeout_seconds, http=http)

    def __enter__(self) -> CswClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self._own:
            self._http.close()

    def _exchange(self, send) -> etree._Element:  # noqa: ANN001
        """Run one request; the parsed answer, or the upstream failure as a domain error."""
        import httpx

        try:
            response = send()
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(f"the CSW at {self.endpoint} did not answer in time", code="csw_timeout") from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(f"the CSW at {self.endpoint} is unreachable: {_reason(exc)}",
                                code="csw_unavailable") from exc
        try:
            root = etree.fromstring(response.content, parser=_PARSER)
        except etree.XMLSyntaxError:
            root = None
        if root is not None and etree.QName(root).localname == "ExceptionReport":
            texts = [text.strip() for text in root.itertext() if text.strip()]
            raise UpstreamError(f"the CSW at {self.endpoint} answered with an exception: {'; '.join(texts)}",
                                code="csw_exception")
        if response.status_code >= 400:
            raise UpstreamError(f"the CSW at {self.endpoint} answered HTTP {response.status_code}",
                                code="csw_unavailable", details={"status": response.status_code})
        if root is None:
            raise UpstreamError(f"the CSW at {self.endpoint} sent a response that is not XML", code="csw_bad_response")
        return root

    def _records(self, root: etree._Element) -> list[CswRecord]:
        try:
            return [record_from_iso(element) for element in root.iter(f"{{{GMD}}}MD_Metadata")]
        except ValueError as exc:
            raise UpstreamError(f"the CSW at {self.endpoint} sent a record georeg cannot read: {exc}",
                                code="csw_bad_response") from exc

    def _get_records(self, constraints: list, *, start: int, limit: int) -> tuple[int, list[CswRecord]]:
        body = get_records_request(constraints, start=start, limit=limit)
        root = self._exchange(lambda: self._http.post(self.endpoint, content=body, timeout=self.timeout,
                                                      headers={"Content-Type": "application/xml"}))
        results = root.find(f"{{{CSW_NS}}}SearchResults")
        if results is None:
            raise UpstreamError(f"the CSW at {self.endpoint} sent no SearchResults", code="csw_bad_response")
        return int(results.get("numberOfRecordsMatched") or 0), self._records(results)

    def search(self, query: CswQuery) -> CswPage:
        """One page of records matching every present field of ``query``, in a stable order."""
        constraints = build_constraints(query)
        total, items = self._get_records(constraints, start=query.offset + 1, limit=query.limit)
        end = query.offset + len(items)
        return CswPage(
            total=total, returned=len(items), limit=query.limit, offset=query.offset,
            next_offset=end if end < total and items else None,
            prev_offset=max(0, query.offset - query.limit) if query.offset > 0 else None,
            constraints_applied=len(constraints), items=items,
        )

    def get_record(self, identifier: str) -> CswRecord:
        """The record with this identifier (404 ``record_not_found`` when the catalogue has none)."""
        if not identifier or len(identifier) > 256 or any(ch in identifier for ch in "\x00\r\n,"):
            raise InvalidInput("identifier must be 1-256 characters without commas or control characters",
                               code="invalid_identifier")
        params = {"service": "CSW", "version": "2.0.2", "request": "GetRecordById", "id": identifier,
                  "outputSchema": GMD, "elementSetName": "full"}
        root = self._exchange(lambda: self._http.get(self.endpoint, params=params, timeout=self.timeout))
        for record in self._records(root):
            if record.identifier == identifier:
                return record
        raise NotFound(f"no record {identifier!r} in the CSW at {self.endpoint}", code="record_not_found")

    def children(self, parent_identifier: str, *, limit: int = MAX_LIMIT) -> list[CswRecord]:
        """Every child record (``apiso:ParentIdentifier``) of a parent, paging through the catalogue."""
        from owslib import fes

        constraints = [fes.PropertyIsEqualTo("apiso:ParentIdentifier", parent_identifier)]
        records: list[CswRecord] = []
        while True:
            total, page = self._get_records(constraints, start=len(records) + 1, limit=limit)
            records.extend(page)
            if not page or len(records) >= total:
                return records


def get_records_request(constraints: list, *, start: int, limit: int) -> bytes:
    """A CSW 2.0.2 GetRecords POST body for ISO 19139 records, AND-combining ``constraints``, sorted by
    identifier so that pages never overlap."""
    from owslib import fes

    root = etree.Element(f"{{{CSW_NS}}}GetRecords", nsmap={"csw": CSW_NS, "ogc": OGC_NS, "gmd": GMD},
                         service="CSW", version="2.0.2", resultType="results", outputSchema=GMD,
                         startPosition=str(start), maxRecords=str(limit))
    query = etree.SubElement(root, f"{{{CSW_NS}}}Query", typeNames="gmd:MD_Metadata")
    etree.SubElement(query, f"{{{CSW_NS}}}ElementSetName").text = "full"
    if constraints:
        constraint = etree.SubElement(query, f"{{{CSW_NS}}}Constraint", version="1.1.0")
        combined = fes.And(constraints) if len(constraints) > 1 else constraints[0]
        constraint.append(fes.FilterRequest().setConstraint(combined))
    query.append(fes.SortBy([fes.SortProperty(SORT_PROPERTY, "ASC")]).toXML())
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _reason(exc: BaseException) -> str:
    text = str(exc)
    match = re.search(r"\[Errno [-\d]+\] [^')\"]+|Connection refused|Name or service not known", text)
    return match.group(0) if match else text.splitlines()[0][:200] if text else type(exc).__name__
