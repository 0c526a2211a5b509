"""A synthetic catalogue in the shapes of the NBS (Norwegian Ground Segment) Sentinel CSW, as Python data.

:func:`build_catalogue` returns the same 40 records every time (only the URLs depend on ``base_url``, the
root of the local HTTP file server). Each :class:`NbsRecord` renders itself as ISO 19139 (``iso19139()``)
the way NBS's pycsw stores it, and the quicklook GeoTIFFs its references point at are written by
:func:`write_archive` in the NBS THREDDS layout::

    <base_url>/thredds/fileServer/nbsArchive/<PLATFORM>/<YYYY>/<MM>/<DD>/[IW|EW/]<PRODUCT>.zip
    <base_url>/thredds/fileServer/nbsArchive/<PLATFORM>/<YYYY>/<MM>/<DD>/[IW|EW/]ql/<PRODUCT>/<PRODUCT>_<X>.tif

:meth:`NbsCatalogue.select` computes what pycsw answers for the csw-search filters (same string and
``LIKE`` semantics as pycsw 2.6 on SQLite), so tests derive expected results from the data instead of
hard-coding them.
"""

from __future__ import annotations

import re
import uuid
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from lxml import etree
from rasterio.enums import ColorInterp
from rasterio.warp import transform as warp_points

ARCHIVE_PREFIX = "thredds/fileServer/nbsArchive"
OPENDAP_PREFIX = "thredds/dodsC/NBS"
WMS_PREFIX = "thredds/wms/NBS"
DISALLOWED_REDIRECT = "http://169.254.0.1/latest/meta-data/"
SLOW_SECONDS = 30.0
OVERSIZED_BYTES = 16 * 1024 * 1024

NS = {
    "gmd": "http://www.isotc211.org/2005/gmd",
    "gco": "http://www.isotc211.org/2005/gco",
    "gml32": "http://www.opengis.net/gml/3.2",
    "gml": "http://www.opengis.net/gml",
    "xlink": "http://www.w3.org/1999/xlink",
}
GCMD_THESAURUS = "GCMDSK:GCMD Science Keywords"
CODELISTS = "http://standards.iso.org/iso/19139/resources/gmxCodelists.xml"


@dataclass(frozen=True)
class NbsReference:
    """One ``gmd:CI_OnlineResource``: ``scheme`` is its protocol as written, ``category`` the classification
    georeg is expected to give it (download / opendap / wms / other)."""

    scheme: str
    url: str
    name: str
    category: str


@dataclass(frozen=True)
class Behaviour:
    """How the file server answers one hostile URL path: redirect, oversized stream, stall, or nothing (404)."""

    kind: str
    redirect_to: str | None = None
    size: int = 0
    delay: float = 0.0


@dataclass(frozen=True)
class NbsRecord:
    """One catalogue record, exactly as written into its ISO 19139 document.

    ``begin``/``end`` are the ``gml:beginPosition``/``endPosition`` strings (``YYYY-MM-DDTHH:MM:SSZ``);
    ``bbox`` is (west, south, east, north) in degrees as written (west > east crosses the antimeridian);
    ``platform`` is ``S1A``..``S1D``, ``S2A``..``S2C``, ``S3A``, ``S5P`` or None (HySpex); ``kind`` is
    ``s1``/``s2``/``s3``/``s5p``/``hyspex-parent``/``hyspex-child`` or, for records whose references
    misbehave, ``redirect``/``oversized``/``missing``/``slow``. ``archive_relpath`` (product zip) and
    ``quicklooks`` (GeoTIFFs actually written by :func:`write_archive`) are relative to the archive root.
    ``geotiffs`` lists every ``.tif`` reference URL in record order, including the hostile ones.
    """

    identifier: str
    title: str
    abstract: str
    subjects: tuple[str, ...]
    begin: str | None
    end: str | None
    bbox: tuple[float, float, float, float] | None
    parent_identifier: str | None
    platform: str | None
    kind: str
    hierarchy_level: str
    references: tuple[NbsReference, ...]
    archive_relpath: str | None = None
    quicklooks: tuple[str, ...] = ()
    quicklook_crs: str | None = None
    gml_namespace: str = "gml32"
    behaviours: dict[str, Behaviour] = field(default_factory=dict, compare=False, hash=False)

    @property
    def product(self) -> str | None:
        """The Sentinel product name (the title) or None for non-Sentinel records."""
        return self.title if self.platform else None

    @property
    def geotiffs(self) -> tuple[str, ...]:
        """Every GeoTIFF reference URL (quicklooks, including a hostile one), in record order."""
        return tuple(ref.url for ref in self.references if ref.url.endswith(".tif"))

    def iso19139(self) -> bytes:
        """The record as an ISO 19139 ``gmd:MD_Metadata`` document (UTF-8 bytes)."""
        return etree.tostring(_iso_tree(self), xml_declaration=True, encoding="UTF-8")

    def anytext(self) -> str:
        """What pycsw indexes as ``csw:AnyText``: every text node of the document, stripped, space-joined."""
        return " ".join(value.strip() for value in _iso_tree(self).xpath("//text()"))


def _like(pattern: str, value: str) -> bool:
    """SQL ``LIKE`` as SQLite evaluates it (``%``, ``_``, ASCII case-insensitive)."""
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, flags=re.IGNORECASE | re.DOTALL) is not None


def _pycsw_round(value: float) -> float:
    return float(f"{value:.2f}")


def _box(bbox: Sequence[float]) -> tuple[float, float, float, float]:
    """The rectangle pycsw indexes for a bbox: corners rounded to 2 decimals, west/east as given, so a box
    with west > east covers the longitudes between them (pycsw does not split at the antimeridian)."""
    west, south, east, north = (_pycsw_round(v) for v in bbox)
    return min(west, east), min(south, north), max(west, east), max(south, north)


def _intersects(a: Sequence[float], b: Sequence[float]) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def iso_utc(value: datetime | str) -> str:
    """A datetime (naive = UTC) as ``YYYY-MM-DDTHH:MM:SSZ``; strings pass through unchanged."""
    if isinstance(value, str):
        return value
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class NbsCatalogue:
    """The records plus the file-server behaviours their hostile references need."""

    base_url: str
    records: tuple[NbsRecord, ...]

    def __iter__(self):
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def get(self, identifier: str) -> NbsRecord:
        """The record with that identifier (KeyError if none)."""
        for record in self.records:
            if record.identifier == identifier:
                return record
        raise KeyError(identifier)

    def of_kind(self, *kinds: str) -> list[NbsRecord]:
        """Records of these kinds (``s1``, ``s2``, ``hyspex-child``, ``redirect``, ...), in catalogue order."""
        return [r for r in self.records if r.kind in kinds]

    def children_of(self, parent_identifier: str) -> list[NbsRecord]:
        """Records whose ``parentIdentifier`` is that identifier."""
        return [r for r in self.records if r.parent_identifier == parent_identifier]

    @property
    def behaviours(self) -> dict[str, Behaviour]:
        """URL path (``/thredds/...``) -> behaviour, for the file server."""
        return {path: b for record in self.records for path, b in record.behaviours.items()}

    def select(
        self,
        *,
        keywords: Iterable[str] = (),
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        bbox: Sequence[float] | None = None,
        anytext: str | None = None,
        parent_identifier: str | None = None,
    ) -> list[NbsRecord]:
        """Records pycsw returns for the AND of these filters, in catalogue order.

        ``keywords``: ``dc:subject LIKE '%kw%'`` each (on the comma-joined keywords); ``start``:
        ``apiso:TempExtent_begin >= start``; ``end``: ``apiso:TempExtent_end <= end`` (string comparisons of
        ``YYYY-MM-DDTHH:MM:SSZ``, records without a time never match); ``bbox``: (west, south, east, north)
        as a CRS84 ``BBox`` (intersection, touching counts; west > east means the ``Or`` of the two boxes split
        at ±180, as georeg sends it); ``anytext``: ``csw:AnyText LIKE '%text%'``; ``parent_identifier``:
        ``apiso:ParentIdentifier = value``. Records are indexed as pycsw does: corners rounded to 2 decimals
        and a record bbox with west > east taken as the box *between* east and west (pycsw does not split it).
        """
        keywords = list(keywords)
        start_s = iso_utc(start) if start is not None else None
        end_s = iso_utc(end) if end is not None else None
        if bbox is None:
            boxes = None
        elif bbox[0] > bbox[2]:
            boxes = [_box((bbox[0], bbox[1], 180.0, bbox[3])), _box((-180.0, bbox[1], bbox[2], bbox[3]))]
        else:
            boxes = [_box(bbox)]
        result = []
        for record in self.records:
            joined = ",".join(record.subjects)
            if not all(_like(f"%{kw}%", joined) for kw in keywords):
                continue
            if start_s is not None and (record.begin is None or record.begin < start_s):
                continue
            if end_s is not None and (record.end is None or record.end > end_s):
                continue
            if boxes is not None and (record.bbox is None or not any(_intersects(_box(record.bbox), b) for b in boxes)):
                continue
            if anytext is not None and not _like(f"%{anytext}%", record.anytext()):
                continue
            if parent_identifier is not None and record.parent_identifier != parent_identifier:
                continue
            result.append(record)
        return result

    @staticmethod
    def sorted_by(records: Iterable[NbsRecord], field_name: str = "identifier",
                  descending: bool = False) -> list[NbsRecord]:
        """Records in pycsw's ``sortby`` order on ``identifier``, ``title`` or ``begin`` (SQLite: byte order,
        missing values first when ascending)."""
        def key(record: NbsRecord):
            value = getattr(record, field_name)
            return (value is not None, value or "")
        return sorted(records, key=key, reverse=descending)


# --- the records ------------------------------------------------------------------------------------------

_S1 = [  # unit, mode, polarisation, start, (west, south, east, north), quicklooks
    ("S1A", "IW", "1SDV", "2026-01-02T05:23:00", (11.7, 67.1, 17.3, 69.3), True),
    ("S1A", "IW", "1SDV", "2026-01-05T16:41:12", (8.0, 59.0, 13.5, 61.2), True),
    ("S1A", "IW", "1SDV", "2026-01-09T05:07:45", (16.1, 68.5, 21.7, 70.7), True),
    ("S1A", "IW", "1SDH", "2026-01-14T15:52:30", (22.2, 69.4, 27.8, 71.6), True),
    ("S1A", "EW", "1SDH", "2026-01-18T07:12:05", (8.6, 76.2, 22.6, 80.2), True),
    ("S1A", "EW", "1SDH", "2026-01-21T19:48:33", (170.5, 68.0, -172.3, 73.0), True),  # crosses 180
    ("S1A", "IW", "1SDV", "2026-01-28T05:36:14", (11.6, 66.2, 17.2, 68.4), True),
    ("S1B", "IW", "1SDV", "2021-12-20T05:15:10", (6.2, 61.4, 11.8, 63.6), False),
    ("S1B", "IW", "1SDV", "2021-12-22T16:30:55", (3.2, 57.9, 8.8, 60.1), False),
    ("S1C", "IW", "1SDV", "2026-01-03T05:31:20", (13.4, 67.9, 19.0, 70.1), True),
    ("S1C", "IW", "1SDV", "2026-01-07T16:20:40", (9.6, 64.7, 15.2, 66.9), True),
    ("S1C", "IW", "1SDV", "2026-01-11T05:44:02", (26.7, 69.0, 32.3, 71.2), False),
    ("S1C", "IW", "1SDV", "2026-01-16T17:02:18", (5.6, 57.2, 11.2, 59.4), True),
    ("S1C", "EW", "1SDH", "2026-01-19T06:55:47", (23.0, 74.5, 37.0, 78.5), True),
    ("S1C", "EW", "1SDH", "2026-01-24T08:10:09", (-30.0, 80.0, 60.0, 89.9), True),  # polar
    ("S1C", "EW", "1SDH", "2026-01-27T07:33:51", (38.0, 78.5, 52.0, 82.5), False),
    ("S1D", "IW", "1SDV", "2026-01-25T05:19:26", (8.2, 62.3, 13.8, 64.5), True),
    ("S1D", "EW", "1SDH", "2026-01-29T07:01:37", (-12.0, 73.0, 2.0, 77.0), True),
]
_S2 = [  # unit, level, sensing, relative orbit, tile, (west, south, east, north), quicklooks
    ("S2A", "MSIL2A", "2025-06-12T10:40:31", 94, "32VNM", (9.0, 59.4, 10.96, 60.4), True),
    ("S2A", "MSIL2A", "2025-07-03T10:50:41", 51, "33WXR", (15.0, 68.4, 17.8, 69.4), True),
    ("S2A", "MSIL1C", "2025-07-19T11:00:21", 137, "34WDA", (18.3, 69.3, 21.2, 70.3), True),
    ("S2B", "MSIL1C", "2025-06-20T10:30:29", 8, "32VMP", (7.5, 60.3, 9.5, 61.3), False),
    ("S2B", "MSIL1C", "2025-08-02T10:20:39", 65, "35WMT", (24.0, 70.2, 27.0, 71.2), True),
    ("S2B", "MSIL1C", "2025-08-15T12:10:49", 80, "33XVH", (13.0, 77.8, 18.2, 78.8), True),
    ("S2C", "MSIL2A", "2025-07-08T10:56:29", 94, "32VNM", (9.0, 59.4, 10.96, 60.4), True),
    ("S2C", "MSIL2A", "2025-07-25T10:44:31", 51, "33WWS", (12.9, 67.5, 15.5, 68.5), True),
    ("S2C", "MSIL2A", "2025-08-09T11:30:41", 123, "33XWG", (15.0, 76.9, 20.0, 77.9), False),
    ("S2C", "MSIL1C", "2025-08-21T10:36:21", 8, "32VLP", (5.0, 60.3, 7.0, 61.3), True),
    ("S2C", "MSIL1C", "2025-09-02T10:50:31", 51, "34WER", (21.0, 69.3, 23.9, 70.3), True),
    ("S2B", "MSIL2A", "2025-09-10T10:40:19", 94, "32VPM", (10.8, 59.4, 12.8, 60.4), True),
]
_HOSTILE = [  # kind, start, bbox: S1-shaped records whose second quicklook misbehaves on the file server
    ("redirect", "2025-11-03T05:12:40", (12.0, 66.0, 17.6, 68.2)),
    ("oversized", "2025-11-06T16:33:05", (7.1, 58.4, 12.7, 60.6)),
    ("missing", "2025-11-09T05:27:51", (17.0, 68.9, 22.6, 71.1)),
    ("slow", "2025-11-12T16:48:22", (9.0, 63.0, 14.6, 65.2)),
]
_POLARISATIONS = {"1SDV": ("VV", "VH"), "1SDH": ("HH", "HV")}
_MODES = {"IW": "Interferometric Wide swath", "EW": "Extra Wide swath"}
_S2_COMBINATIONS = ("true_color_vegetation", "false_color_glacier")
_NBS_NS = uuid.UUID("6f1a52c4-2b9e-5c1e-9f0e-3d5a6b7c8d9e")


def _identifier(index: int, name: str) -> str:
    """Plain UUIDs for most records, ``no.met.nbs:`` + uuid5 for every third."""
    if index % 3 == 2:
        return f"no.met.nbs:{uuid.uuid5(_NBS_NS, name)}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://nbs.example/{name}"))


def _t(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S")


def _ql_crs(tile: str | None) -> str:
    """NBS quicklook grids: UPS North (EPSG:32661) for S1, the tile's UTM zone for S2."""
    return f"EPSG:326{tile[:2]}" if tile else "EPSG:32661"


class _Builder:
    """Assembles records one by one, cycling the reference schemes NBS uses."""

    def __init__(self, base_url: str):
        self.base = base_url.rstrip("/")
        self.records: list[NbsRecord] = []

    def archive_url(self, relpath: str) -> str:
        return f"{self.base}/{ARCHIVE_PREFIX}/{relpath}"

    def sentinel(self, *, platform: str, title: str, mode_dir: str | None, begin: datetime, end: datetime,
                 bbox, subjects, abstract: str, ql_names: Sequence[str], ql_crs: str, kind: str,
                 netcdf: bool = True, hostile: Behaviour | None = None) -> NbsRecord:
        i = len(self.records)
        folder = f"{platform}/{begin:%Y/%m/%d}" + (f"/{mode_dir}" if mode_dir else "")
        archive = f"{folder}/{title}.zip"
        refs = [NbsReference(("download", "WWW:DOWNLOAD-1.0-http--download")[i % 2], self.archive_url(archive),
                             "Dataset download", "download")]
        if netcdf and i % 3 != 1:
            refs.append(NbsReference(("OPeNDAP:OPeNDAP", "OPENDAP:OPENDAP")[i % 2],
                                     f"{self.base}/{OPENDAP_PREFIX}/{folder}/{title}.nc", "OPeNDAP access", "opendap"))
        if netcdf and i % 4 == 0:
            refs.append(NbsReference(
                "OGC:WMS",
                f"{self.base}/{WMS_PREFIX}/{folder}/{title}.nc?service=WMS&version=1.3.0&request=GetCapabilities",
                "OGC WMS GetCapabilities", "wms"))
        if i % 5 in (0, 3):
            refs.append(NbsReference("WWW:LINK-1.0-http--link", f"{self.base}/dataset/{title}", "Landing page",
                                     "other"))
        quicklooks = [f"{folder}/ql/{title}/{title}_{name}.tif" for name in ql_names]
        for n, (name, relpath) in enumerate(zip(ql_names, quicklooks, strict=False)):
            refs.append(NbsReference(("WWW:DOWNLOAD-1.0-http--download", "download")[(i + n) % 2],
                                     self.archive_url(relpath), f"Quicklook {name} (GeoTIFF)", "download"))
        behaviours = {}
        if hostile is not None:  # the last quicklook is not written; the file server misbehaves there instead
            behaviours[f"/{ARCHIVE_PREFIX}/{quicklooks.pop()}"] = hostile
        record = NbsRecord(
            identifier=_identifier(i, title), title=title, abstract=abstract, subjects=tuple(subjects),
            begin=iso_utc(begin), end=iso_utc(end), bbox=tuple(bbox), parent_identifier=None, platform=platform,
            kind=kind, hierarchy_level="dataset", references=tuple(refs), archive_relpath=archive,
            quicklooks=tuple(quicklooks), quicklook_crs=ql_crs if ql_names else None,
            gml_namespace=("gml32", "gml")[i % 7 == 6], behaviours=behaviours,
        )
        self.records.append(record)
        return record

    def s1(self, n: int, unit: str, mode: str, pol: str, start: str, bbox, quicklooks: bool,
           kind: str = "s1", hostile: Behaviour | None = None) -> None:
        begin = _t(start)
        end = begin + timedelta(seconds=25 if mode == "IW" else 60)
        orbit = {"S1A": 62000, "S1B": 30500, "S1C": 5400, "S1D": 1200}[unit] + 37 * n
        title = (f"{unit}_{mode}_GRDH_{pol}_{begin:%Y%m%dT%H%M%S}_{end:%Y%m%dT%H%M%S}_{orbit:06d}"
                 f"_{(0x0ABCDE + 977 * n) & 0xFFFFFF:06X}_{(0x1234 + 311 * n) & 0xFFFF:04X}")
        pols = _POLARISATIONS[pol]
        abstract = (f"Sentinel-1{unit[-1]} {_MODES[mode]} ({mode}) Level-1 Ground Range Detected (GRD) product, "
                    f"high resolution, dual polarisation {'/'.join(pols)}, acquired {iso_utc(begin)}. "
                    f"Distributed by the Norwegian Ground Segment (NBS).")
        subjects = ["EARTH SCIENCE > SPECTRAL/ENGINEERING > RADAR > RADAR BACKSCATTER", "Sentinel-1",
                    f"Sentinel-1{unit[-1]}", "SAR-C", mode, "GRD", "NBS"]
        self.sentinel(platform=unit, title=title, mode_dir=mode, begin=begin, end=end, bbox=bbox,
                      subjects=subjects, abstract=abstract, ql_names=pols if quicklooks else (),
                      ql_crs=_ql_crs(None), kind=kind, hostile=hostile)

    def s2(self, unit: str, level: str, sensing: str, orbit: int, tile: str, bbox, quicklooks: bool) -> None:
        begin = _t(sensing)
        generated = begin + timedelta(hours=2, minutes=17, seconds=31)
        title = f"{unit}_{level}_{begin:%Y%m%dT%H%M%S}_N0511_R{orbit:03d}_T{tile}_{generated:%Y%m%dT%H%M%S}"
        lvl = "Level-2A" if level.endswith("2A") else "Level-1C"
        abstract = (f"Sentinel-2{unit[-1]} MSI {lvl} product, tile {tile}, relative orbit {orbit}, sensed "
                    f"{iso_utc(begin)}. Distributed by the Norwegian Ground Segment (NBS).")
        subjects = ["EARTH SCIENCE > SPECTRAL/ENGINEERING > VISIBLE WAVELENGTHS > VISIBLE IMAGERY", "Sentinel-2",
                    f"Sentinel-2{unit[-1]}", "MSI", lvl, f"T{tile}", "NBS"]
        self.sentinel(platform=unit, title=title, mode_dir=None, begin=begin, end=begin, bbox=bbox,
                      subjects=subjects, abstract=abstract, ql_names=_S2_COMBINATIONS if quicklooks else (),
                      ql_crs=_ql_crs(tile), kind="s2", netcdf=False)

    def other_sentinels(self) -> None:
        begin = _t("2025-07-12T10:10:10")
        end = begin + timedelta(minutes=3)
        title = (f"S3A_OL_1_EFR____{begin:%Y%m%dT%H%M%S}_{end:%Y%m%dT%H%M%S}_20250712T120133_0179_121_065_1800"
                 "_PS1_O_NR_004")
        self.sentinel(platform="S3A", title=title, mode_dir=None, begin=begin, end=end, bbox=(0.0, 60.0, 30.0, 72.0),
                      subjects=["EARTH SCIENCE > OCEANS > OCEAN OPTICS", "Sentinel-3", "Sentinel-3A", "OLCI",
                                "Level-1B", "NBS"],
                      abstract=f"Sentinel-3A OLCI Level-1B full resolution (EFR) product, sensed {iso_utc(begin)}.",
                      ql_names=(), ql_crs="", kind="s3")
        begin = _t("2026-01-13T10:59:30")
        end = begin + timedelta(minutes=101)
        title = f"S5P_OFFL_L2__NO2____{begin:%Y%m%dT%H%M%S}_{end:%Y%m%dT%H%M%S}_42512_03_020600_20260115T030512"
        self.sentinel(platform="S5P", title=title, mode_dir=None, begin=begin, end=end,
                      bbox=(-25.5, 50.0, 45.0, 82.0),
                      subjects=["EARTH SCIENCE > ATMOSPHERE > AIR QUALITY > NITROGEN OXIDES", "Sentinel-5P",
                                "TROPOMI", "Level-2", "NBS"],
                      abstract=f"Sentinel-5P TROPOMI Level-2 tropospheric NO2 (offline), orbit 42512, "
                               f"{iso_utc(begin)}.",
                      ql_names=(), ql_crs="", kind="s5p")

    def hyspex(self) -> None:
        subjects = ["EARTH SCIENCE > SPECTRAL/ENGINEERING > VISIBLE WAVELENGTHS", "HySpex", "VNIR-1800",
                    "hyperspectral", "airborne", "Svalbard"]
        name = "HySpex VNIR-1800 airborne hyperspectral campaign, Kongsfjorden, Svalbard, July 2025"
        parent = NbsRecord(
            identifier=_identifier(len(self.records), name), title=name,
            abstract="Airborne hyperspectral campaign with a HySpex VNIR-1800 (186 bands, 400-1000 nm) over "
                     "Kongsfjorden; one child record per flight line.",
            subjects=tuple(subjects), begin="2025-07-14T00:00:00Z", end="2025-07-20T23:59:59Z",
            bbox=(11.0, 78.8, 12.6, 79.1), parent_identifier=None, platform=None, kind="hyspex-parent",
            hierarchy_level="series",
            references=(NbsReference("WWW:LINK-1.0-http--link", f"{self.base}/dataset/hyspex-kongsfjorden-2025",
                                     "Campaign landing page", "other"),),
        )
        self.records.append(parent)
        for line, (start, west) in enumerate([("2025-07-15T10:02:11", 11.2), ("2025-07-15T10:31:47", 11.6),
                                             ("2025-07-17T12:14:05", 12.0)], start=1):
            begin = _t(start)
            stem = f"hyspex/2025/07/{begin:%d}/hyspex_vnir1800_kongsfjorden_line{line:03d}"
            title = f"HySpex VNIR-1800 flight line {line:03d}, Kongsfjorden, {begin:%Y-%m-%d}"
            self.records.append(NbsRecord(
                identifier=_identifier(len(self.records), title), title=title,
                abstract=f"HySpex VNIR-1800 radiance, flight line {line:03d} of the Kongsfjorden campaign, "
                         "as NetCDF (lat/lon, wavelength).",
                subjects=(*subjects, "flight line"), begin=iso_utc(begin),
                end=iso_utc(begin + timedelta(minutes=6)), bbox=(west, 78.85, round(west + 0.35, 2), 79.0),
                parent_identifier=parent.identifier, platform=None, kind="hyspex-child", hierarchy_level="dataset",
                references=(
                    NbsReference(("OPeNDAP:OPeNDAP", "OPENDAP:OPENDAP")[line % 2],
                                 f"{self.base}/thredds/dodsC/{stem}.nc", "OPeNDAP access", "opendap"),
                    NbsReference("download", f"{self.base}/thredds/fileServer/{stem}.nc", "NetCDF download",
                                 "download"),
                ),
            ))


def build_catalogue(base_url: str) -> NbsCatalogue:
    """The 40 records (18 S1, 12 S2, S3, S5P, HySpex parent + 3 children, 4 hostile S1) for that server."""
    builder = _Builder(base_url)
    for n, (unit, mode, pol, start, bbox, ql) in enumerate(_S1):
        builder.s1(n, unit, mode, pol, start, bbox, ql)
    for spec in _S2:
        builder.s2(*spec)
    builder.other_sentinels()
    builder.hyspex()
    behaviours = {
        "redirect": lambda name: Behaviour("redirect", redirect_to=DISALLOWED_REDIRECT + name),
        "oversized": lambda name: Behaviour("oversized", size=OVERSIZED_BYTES),
        "missing": lambda name: Behaviour("missing"),
        "slow": lambda name: Behaviour("slow", delay=SLOW_SECONDS),
    }
    for n, (kind, start, bbox) in enumerate(_HOSTILE, start=len(_S1)):
        builder.s1(n, "S1A", "IW", "1SDV", start, bbox, True, kind=kind,
                   hostile=behaviours[kind](f"{kind}.tif"))
    return NbsCatalogue(base_url=builder.base, records=tuple(builder.records))


# --- ISO 19139 ----------------------------------------------------------------------------------------------

def _q(tag: str) -> str:
    prefix, local = tag.split(":")
    return f"{{{NS[prefix]}}}{local}"


def _el(parent, tag: str, text: str | None = None, **attrib: str):
    element = etree.SubElement(parent, _q(tag), attrib)
    if text is not None:
        element.text = text
    return element


def _string(parent, tag: str, text: str):
    return _el(_el(parent, tag), "gco:CharacterString", text)


def _code(parent, tag: str, code: str, value: str):
    return _el(_el(parent, tag), f"gmd:{code}", value, codeList=f"{CODELISTS}#{code}", codeListValue=value)


def _party(parent, tag: str, role: str) -> None:
    party = _el(_el(parent, tag), "gmd:CI_ResponsibleParty")
    _string(party, "gmd:organisationName", "Norwegian Meteorological Institute")
    info = _el(_el(_el(party, "gmd:contactInfo"), "gmd:CI_Contact"), "gmd:address")
    _string(_el(info, "gmd:CI_Address"), "gmd:electronicMailAddress", "nbs-helpdesk@met.no")
    _code(party, "gmd:role", "CI_RoleCode", role)


def _keywords(parent, words: Sequence[str], thesaurus: str | None) -> None:
    group = _el(_el(parent, "gmd:descriptiveKeywords"), "gmd:MD_Keywords")
    for word in words:
        _string(group, "gmd:keyword", word)
    _code(group, "gmd:type", "MD_KeywordTypeCode", "theme")
    if thesaurus:
        citation = _el(_el(group, "gmd:thesaurusName"), "gmd:CI_Citation")
        _string(citation, "gmd:title", thesaurus)
        date = _el(_el(citation, "gmd:date"), "gmd:CI_Date")
        _el(_el(date, "gmd:date"), "gco:Date", "2020-01-01")
        _code(date, "gmd:dateType", "CI_DateTypeCode", "publication")


def _iso_tree(record: NbsRecord):
    gml = NS[record.gml_namespace]
    nsmap = {k: v for k, v in NS.items() if k not in ("gml", "gml32")} | {"gml": gml}
    root = etree.Element(_q("gmd:MD_Metadata"), nsmap=nsmap)
    _string(root, "gmd:fileIdentifier", record.identifier)
    _code(root, "gmd:language", "LanguageCode", "eng")
    _code(root, "gmd:characterSet", "MD_CharacterSetCode", "utf8")
    if record.parent_identifier:
        _string(root, "gmd:parentIdentifier", record.parent_identifier)
    _code(root, "gmd:hierarchyLevel", "MD_ScopeCode", record.hierarchy_level)
    _party(root, "gmd:contact", "pointOfContact")
    _el(_el(root, "gmd:dateStamp"), "gco:DateTime", record.end or "2026-01-31T00:00:00Z")
    _string(root, "gmd:metadataStandardName", "ISO 19115:2003/19139")
    _string(root, "gmd:metadataStandardVersion", "1.0")
    crs = _el(_el(_el(_el(root, "gmd:referenceSystemInfo"), "gmd:MD_ReferenceSystem"), "gmd:referenceSystemIdentifier"),
              "gmd:RS_Identifier")
    _string(crs, "gmd:code", "EPSG:4326")

    ident = _el(_el(root, "gmd:identificationInfo"), "gmd:MD_DataIdentification")
    citation = _el(_el(ident, "gmd:citation"), "gmd:CI_Citation")
    _string(citation, "gmd:title", record.title)
    date = _el(_el(citation, "gmd:date"), "gmd:CI_Date")
    _el(_el(date, "gmd:date"), "gco:DateTime", record.begin or "2026-01-01T00:00:00Z")
    _code(date, "gmd:dateType", "CI_DateTypeCode", "creation")
    _string(ident, "gmd:abstract", record.abstract)
    _code(ident, "gmd:status", "MD_ProgressCode", "completed")
    _party(ident, "gmd:pointOfContact", "distributor")
    gcmd = [s for s in record.subjects if s.startswith("EARTH SCIENCE")]
    _keywords(ident, gcmd, GCMD_THESAURUS)
    _keywords(ident, [s for s in record.subjects if s not in gcmd], None)
    legal = _el(_el(ident, "gmd:resourceConstraints"), "gmd:MD_LegalConstraints")
    _string(legal, "gmd:otherConstraints", "Copernicus Sentinel Data Terms and Conditions")
    _code(ident, "gmd:language", "LanguageCode", "eng")
    _el(_el(ident, "gmd:topicCategory"), "gmd:MD_TopicCategoryCode", "imageryBaseMapsEarthCover")
    extent = _el(_el(ident, "gmd:extent"), "gmd:EX_Extent")
    if record.bbox:
        box = _el(_el(extent, "gmd:geographicElement"), "gmd:EX_GeographicBoundingBox")
        for tag, value in zip(("west", "east", "south", "north"),
                              (record.bbox[0], record.bbox[2], record.bbox[1], record.bbox[3]), strict=False):
            _el(_el(box, f"gmd:{tag}BoundLongitude" if tag in ("west", "east") else f"gmd:{tag}BoundLatitude"),
                "gco:Decimal", f"{value:g}")
    if record.begin:
        holder = _el(_el(_el(extent, "gmd:temporalElement"), "gmd:EX_TemporalExtent"), "gmd:extent")
        period = etree.SubElement(holder, f"{{{gml}}}TimePeriod",
                                  {f"{{{gml}}}id": f"tp-{zlib.crc32(record.identifier.encode())}"})
        etree.SubElement(period, f"{{{gml}}}beginPosition").text = record.begin
        etree.SubElement(period, f"{{{gml}}}endPosition").text = record.end or ""

    options = _el(_el(_el(root, "gmd:distributionInfo"), "gmd:MD_Distribution"), "gmd:transferOptions")
    digital = _el(options, "gmd:MD_DigitalTransferOptions")
    for ref in record.references:
        online = _el(_el(digital, "gmd:onLine"), "gmd:CI_OnlineResource")
        _el(_el(online, "gmd:linkage"), "gmd:URL", ref.url)
        _string(online, "gmd:protocol", ref.scheme)
        _string(online, "gmd:name", ref.name)
        _string(online, "gmd:description", f"{ref.name} of {record.title}")
    return root


def write_records(catalogue: NbsCatalogue, directory: Path) -> list[Path]:
    """One ``<n>.xml`` ISO 19139 file per record (what pycsw-admin ``load_records`` reads)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, record in enumerate(catalogue.records):
        path = directory / f"record-{n:03d}.xml"
        path.write_bytes(record.iso19139())
        paths.append(path)
    return paths


# --- quicklook GeoTIFFs -------------------------------------------------------------------------------------

def _projected_bounds(bbox: Sequence[float], crs: str) -> tuple[float, float, float, float]:
    west, south, east, north = bbox
    if east < west:
        east += 360.0
    steps = np.linspace(0.0, 1.0, 21)
    lons = np.concatenate([west + (east - west) * steps, np.full(21, east), west + (east - west) * steps,
                           np.full(21, west)])
    lats = np.concatenate([np.full(21, south), south + (north - south) * steps, np.full(21, north),
                           south + (north - south) * steps])
    lons = ((lons + 180.0) % 360.0) - 180.0
    xs, ys = warp_points("EPSG:4326", crs, lons.tolist(), lats.tolist())
    return min(xs), min(ys), max(xs), max(ys)


def write_quicklook(path: Path, bbox: Sequence[float], crs: str, rgb: bool, size: int = 64) -> Path:
    """A small quicklook GeoTIFF covering ``bbox`` in ``crs``: gray + alpha (S1) or RGB with nodata 0 (S2),
    uint8, with pixel values unique to the path (so duplicate detection never confuses two quicklooks)."""
    rng = np.random.default_rng(zlib.crc32(str(path.name).encode()))
    count = 3 if rgb else 2
    data = rng.integers(1, 256, size=(count, size, size), dtype=np.uint8)
    if not rgb:
        data[1] = 255
        data[1, :, : size // 8] = 0
        data[0, :, : size // 8] = 0
    left, bottom, right, top = _projected_bounds(bbox, crs)
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {"driver": "GTiff", "width": size, "height": size, "count": count, "dtype": "uint8", "crs": crs,
               "transform": Affine((right - left) / size, 0.0, left, 0.0, (bottom - top) / size, top),
               "compress": "deflate"}
    if rgb:
        profile.update(nodata=0, photometric="RGB")
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        dst.colorinterp = ([ColorInterp.red, ColorInterp.green, ColorInterp.blue] if rgb
                           else [ColorInterp.gray, ColorInterp.alpha])
    return path


def write_archive(catalogue: NbsCatalogue, root: Path) -> list[Path]:
    """Write every record's quicklook GeoTIFFs under ``root`` (the ``nbsArchive`` directory)."""
    written = []
    for record in catalogue.records:
        for relpath in record.quicklooks:
            written.append(write_quicklook(root / relpath, record.bbox, record.quicklook_crs,
                                           rgb=record.platform.startswith("S2")))
    return written
