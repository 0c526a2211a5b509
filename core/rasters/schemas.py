"""What the raster registry answers: the Datasets API's snake_case records, pages, samples and extents."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from georeg.core.models import UtcDateTime
from georeg.core.paging import OffsetPage
from georeg.core.rasters.reader import BandInfo, BandStatistics


class CrsInfo(BaseModel):
    epsg: int | None = None
    wkt: str | None = None


class RasterBounds(BaseModel):
    native: list[float] | None = Field(default=None, description="minx, miny, maxx, maxy in the raster's own CRS")
    wgs84: list[float | None] = Field(description="minx, miny, maxx, maxy in degrees; minx > maxx crosses 180°")


class RasterLinks(BaseModel):
    self: str
    extent: str
    sample: str


class RasterRecord(BaseModel):
    """A registered raster as the Datasets API shows it; ``dataset_id`` is the raster entry's public id."""

    dataset_id: str
    title: str
    source: str = Field(description="upload, path, csw or task")
    source_identifier: str | None = Field(default=None, description="the CSW record's identifier")
    source_path: str | None = Field(default=None, description="the file under a mounted root (source path)")
    platform: str | None = None
    profile: str | None = None
    acquired_at: UtcDateTime | None = None
    sha256: str
    size: int
    width: int
    height: int
    bands: int
    dtype: str
    nodata: float | None = None
    crs: CrsInfo
    bounds: RasterBounds
    footprint: dict[str, Any] | None = Field(default=None, description="GeoJSON geometry (MultiPolygon across 180°)")
    statistics: list[BandStatistics] | None = None
    band_info: list[BandInfo] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: UtcDateTime | None = None
    links: RasterLinks


class RegisteredRaster(RasterRecord):
    """A registration's answer: the record, and the earlier raster with the same bytes when it is a duplicate."""

    duplicate_of: str | None = None

    @property
    def created(self) -> bool:
        """Whether this registration added a raster (else the bytes were registered already)."""
        return self.duplicate_of is None

    def as_result(self, **extra: object) -> dict:
        """The JSON a task result keeps of this registration, with ``created`` and ``extra`` fields."""
        return {**self.model_dump(mode="json"), "created": self.created, **extra}


class RasterListing(OffsetPage[RasterRecord]):
    """One page of ``GET /datasets`` with its total and the offsets of the neighbouring pages."""


class DuplicateGroup(BaseModel):
    key: str
    by: str
    dataset_ids: list[str]
    count: int


class Duplicates(BaseModel):
    by: Literal["hash", "identifier", "source"]
    total: int
    groups: list[DuplicateGroup]


class BandValue(BaseModel):
    band: int
    value: float | int | None = Field(description="null where the band is nodata")
    description: str | None = None
    units: str | None = None


class PointSample(BaseModel):
    """Every band's value at a WGS84 point, with where that point falls in the raster."""

    dataset_id: str
    lon: float
    lat: float
    x: float = Field(description="the point in the raster's CRS")
    y: float
    row: int
    col: int
    crs: str | None
    values: list[BandValue]


class ExtentProperties(BaseModel):
    dataset_id: str
    title: str
    platform: str | None = None
    source: str
    crs: str | None = None


class ExtentFeature(BaseModel):
    """A raster's footprint as an RFC 7946 GeoJSON Feature."""

    type: Literal["Feature"] = "Feature"
    id: str
    geometry: dict[str, Any] | None
    bbox: list[float | None]
    properties: ExtentProperties

