"""HySpex airborne hyperspectral campaigns in a CSW: a campaign (parent) record with one child record per flight
line; each child links a NetCDF (OPeNDAP or download) holding a ``(band, y, x)`` cube with a ``wavelength``
coordinate and an elevation variable (:mod:`georeg.core.netcdf.spectral`).

Two variants are registered per child, with source ``csw`` and the child's identifier: ``rgb`` (the bands nearest
640/550/460 nm, percentile-stretched to 8 bits) and ``z`` (the elevation as float32). A registered variant keeps
``variant`` and ``hyspex`` in its metadata; that is how registered variants and missing ones are found.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Literal

from pydantic import BaseModel, Field, field_validator
from sqlmodel import Session, select

from georeg.core.catalog.csw import MAX_LIMIT, CswClient, CswRecord
from georeg.core.catalog.netcdf_ingest import plan_netcdf, reference_kind
from georeg.core.config import Settings
from georeg.core.errors import InvalidInput
from georeg.core.fetch import check_host
from georeg.core.models import Raster
from georeg.core.netcdf.source import open_netcdf, source_name
from georeg.core.netcdf.spectral import DEFAULT_PERCENTILES, SpectralLayout, spectral_layout, write_rgb
from georeg.core.netcdf.to_geotiff import Converted, convert, register_converted, safe_name, write_variable
from georeg.core.paging import OffsetPage
from georeg.core.progress import ProgressCallback, no_progress
from georeg.core.rasters.profiles import profile_for

Variant = Literal["rgb", "z"]
VARIANTS: tuple[Variant, ...] = ("rgb", "z")
MAX_CHILDREN = 10_000


def _variants(value: list[Variant]) -> list[Variant]:
    if not value:
        raise ValueError("variants must name at least one of rgb, z")
    return [variant for variant in VARIANTS if variant in value]


class HyspexRequest(BaseModel):
    """``POST /datasets/hyspex-csw``: one child record."""

    identifier: str = Field(min_length=1, max_length=256)
    endpoint: str | None = Field(default=None, max_length=2048)
    variants: list[Variant] = Field(default_factory=lambda: list(VARIANTS), max_length=2)
    submit: bool = False

    _check = field_validator("variants")(_variants)


class HyspexParentRequest(BaseModel):
    """``POST /datasets/hyspex-csw-parent`` and ``POST /datasets/jobs/hyspex-parent``: a campaign record."""

    identifier: str = Field(min_length=1, max_length=256)
    endpoint: str | None = Field(default=None, max_length=2048)
    variants: list[Variant] = Field(default_factory=lambda: list(VARIANTS), max_length=2)
    limit: int | None = Field(default=None, ge=1, le=MAX_CHILDREN, description="at most this many children")

    _check = field_validator("variants")(_variants)


class HyspexSource(BaseModel):
    url: str
    kind: Literal["opendap", "download"]


class HyspexPlan(BaseModel):
    """What the ``nc-to-geotiff`` job of a child reads and writes. Bands and variables are known before the run
    only for OPeNDAP sources (a download is read by the job itself)."""

    identifier: str
    title: str | None = None
    parent_identifier: str | None = None
    source: HyspexSource
    variants: list[Variant]
    cube_variable: str | None = None
    elevation_variable: str | None = None
    bands: list[dict] | None = None
    percentiles: list[float] = Field(default_factory=lambda: list(DEFAULT_PERCENTILES))
    outputs: dict[str, str]


def output_names(url: str, variants: list[Variant]) -> dict[str, str]:
    stem = safe_name(source_name(url))
    return {variant: f"{stem}_{variant}.tif" for variant in variants}


def _check_layout(layout: SpectralLayout, variants: list[Variant], location: str) -> None:
    if "z" in variants and layout.elevation is None:
        raise InvalidInput(f"{location} has no elevation variable (standard_name height/altitude/surface_altitude "
                           "or named z/elevation/dem) for the z variant", code="no_elevation")


def plan_hyspex(settings: Settings, record: CswRecord, variants: list[Variant], *, inspect: bool = True) -> HyspexPlan:
    """The child's NetCDF reference (404 ``no_netcdf`` without one, 403 on a disallowed host) and, for OPeNDAP
    with ``inspect``, its cube, chosen bands and elevation variable (400 ``not_hyspex`` without a wavelength
    coordinate)."""
    reference = plan_netcdf(settings, record, inspect=False)
    plan = HyspexPlan(identifier=record.identifier, title=record.title, parent_identifier=record.parent_identifier,
                      source=HyspexSource(url=reference.url, kind=reference.kind), variants=variants,
                      outputs=output_names(reference.url, variants))
    if inspect and reference.kind == "opendap":
        with open_netcdf(settings, reference.url, kind="opendap") as source:
            layout = spectral_layout(source)
            _check_layout(layout, variants, source.location)
        plan.cube_variable, plan.elevation_variable = layout.cube, layout.elevation
        plan.bands = layout.nearest_bands() if "rgb" in variants else None
    return plan


def registered_variants(session: Session, identifier: str) -> dict[str, list[str]]:
    """``{variant: [dataset ids]}`` of the HySpex variants registered for a child identifier."""
    rows = session.exec(select(Raster).where(Raster.source == "csw", Raster.source_identifier == identifier)).all()
    found: dict[str, list[str]] = {}
    for raster in rows:
        variant = (raster.meta or {}).get("variant")
        if (raster.meta or {}).get("hyspex") and variant in VARIANTS:
            found.setdefault(variant, []).append(raster.public_id)
    return found


class MissingVariants(BaseModel):
    identifier: str
    parent_identifier: str | None = None
    registered: dict[str, list[str]]
    missing: list[Variant]


class MissingVariantsPage(OffsetPage[MissingVariants]):
    """HySpex children registered without one of their variants."""


def missing_variants(session: Session, *, limit: int, offset: int) -> MissingVariantsPage:
    """Every HySpex identifier with a registered variant but not both, by identifier, paged with a total."""
    rows = session.exec(select(Raster).where(Raster.source == "csw", Raster.source_identifier.is_not(None))
                        .order_by(Raster.source_identifier, Raster.id)).all()
    by_identifier: dict[str, MissingVariants] = {}
    for raster in rows:
        meta = raster.meta or {}
        if not meta.get("hyspex") or meta.get("variant") not in VARIANTS:
            continue
        item = by_identifier.setdefault(raster.source_identifier, MissingVariants(
            identifier=raster.source_identifier, parent_identifier=meta.get("parent_identifier"), registered={},
            missing=[]))
        item.registered.setdefault(meta["variant"], []).append(raster.public_id)
    incomplete = []
    for item in by_identifier.values():
        item.missing = [variant for variant in VARIANTS if variant not in item.registered]
        if item.missing:
            incomplete.append(item)
    page = incomplete[offset:offset + limit]
    end = offset + len(page)
    return MissingVariantsPage(total=len(incomplete), returned=len(page), limit=limit, offset=offset,
                               next_offset=end if end < len(incomplete) else None,
                               prev_offset=max(0, offset - limit) if offset > 0 else None, items=page)


def campaign_children(client: CswClient, parent_identifier: str, *, limit: int | None = None) -> list[CswRecord]:
    """The child records of a campaign (every page, sorted by identifier), at most ``limit``."""
    children = client.children(parent_identifier, limit=min(MAX_LIMIT, limit or MAX_LIMIT))
    return children[:limit] if limit else children


def ingest_hyspex(session: Session, *, settings: Settings, record: CswRecord, variants: list[Variant],
                  url: str | None = None, endpoint: str | None = None,
                  percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
                  report: ProgressCallback | None = None) -> dict:
    """Write the child's ``variants`` as GeoTIFFs and register them all, or none."""
    progress = report or no_progress
    if url is None:
        plan = plan_netcdf(settings, record, inspect=False)
        url, kind = plan.url, plan.kind
    else:
        check_host(url, settings.download_hosts)
        kind = reference_kind(record, url)
    names = output_names(url, variants)
    with ExitStack() as stack:
        converted: list[Converted] = []
        with open_netcdf(settings, url, kind=kind) as source:
            progress(2, "reading", source.location)
            layout = spectral_layout(source)
            _check_layout(layout, variants, source.location)
            common = {"campaign": record.parent_identifier, "cube": layout.cube, "band_dimension": layout.band_dim}
            for variant in variants:
                if variant == "rgb":
                    item = convert(source, layout.cube, stack, settings, None, filename=names["rgb"],
                                   write=lambda path, src=source: write_rgb(src, layout, path, percentiles=percentiles))
                    item.metadata = {"variant": "rgb", "hyspex": {**common, "variant": "rgb",
                                                                 "bands": item.details["bands"],
                                                                 "percentiles": list(percentiles)}}
                else:
                    item = convert(source, layout.elevation, stack, settings, None, filename=names["z"],
                                   write=lambda path, src=source: write_variable(
                                       src, layout.elevation, path, max_bytes=settings.download_max_bytes,
                                       dtype="float32"))
                    item.metadata = {"variant": "z", "hyspex": {**common, "variant": "z",
                                                               "elevation_variable": layout.elevation}}
                converted.append(item)
                progress(80 * len(converted) / len(variants), "converting", variant)
            location = source.location
        profile = profile_for(record.platform)
        metadata = {**record.registration_metadata(profile=profile.id), "reference_url": location,
                    "csw_endpoint": endpoint}
        registered = register_converted(session, settings, converted, metadata, progress)
    for item, registration in zip(converted, registered, strict=True):
        registration["variant"] = item.metadata["variant"]
    return {"identifier": record.identifier, "parent_identifier": record.parent_identifier, "url": location,
            "kind": kind, "variants": list(variants), "datasets": registered,
            "bands": next((item.details["bands"] for item in converted if item.metadata["variant"] == "rgb"), None),
            "elevation_variable": layout.elevation}
