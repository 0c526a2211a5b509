"""The NetCDF ingest of a CSW record: which of its references to read (OPeNDAP preferred, else a NetCDF download,
on an allowed host), which variables (the platform profile's point-query variables by default), then every
chosen variable written as a GeoTIFF and registered with source ``csw``, or none (the NBS NetCDF route and the
``netcdf-geotiff`` tool)."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Literal

from pydantic import BaseModel
from sqlmodel import Session

from georeg.core.catalog.csw import CswRecord, Reference
from georeg.core.config import Settings
from georeg.core.errors import NotFound, UpstreamError
from georeg.core.fetch import check_host, host_allowed
from georeg.core.netcdf.source import VariableInfo, dap_base, list_variables, open_netcdf, url_kind
from georeg.core.netcdf.to_geotiff import (
    Converted,
    clean_variables,
    convert,
    register_converted,
    select_variables,
)
from georeg.core.progress import ProgressCallback, no_progress
from georeg.core.rasters.profiles import profile_for

RemoteKind = Literal["opendap", "download"]


class NetcdfPlan(BaseModel):
    """What a NetCDF ingest of a record reads: the reference and (when known before reading) the variables."""

    url: str
    kind: RemoteKind
    variables: list[str] | None = None
    available: list[VariableInfo] = []


def netcdf_references(record: CswRecord) -> list[Reference]:
    """The record's OPeNDAP references, then its NetCDF downloads (URLs ending ``.nc`` …), without repeats."""
    opendap = [reference for reference in record.references if reference.kind == "opendap"]
    downloads = [reference for reference in record.references
                 if reference.kind == "download" and url_kind(reference.url) == "download"]
    unique: dict[str, Reference] = {}
    for reference in opendap + downloads:
        unique.setdefault(reference.url, reference)
    return list(unique.values())


def reference_kind(record: CswRecord, url: str) -> RemoteKind:
    """How to read ``url``: as the record's reference of that URL says, else as the URL looks (OPeNDAP unless
    it names a NetCDF file outside a ``dodsC`` path)."""
    for reference in netcdf_references(record):
        if url in (reference.url, dap_base(reference.url)):
            return "opendap" if reference.kind == "opendap" else "download"
    return url_kind(url) or "opendap"


def plan_netcdf(settings: Settings, record: CswRecord, variables: list[str] | None = None, *,
                inspect: bool = True) -> NetcdfPlan:
    """The record's NetCDF reference to ingest: the first OPeNDAP one on an allowed host, else the first NetCDF
    download (404 ``no_netcdf`` when it has neither, 403 when none is on an allowed host). With ``inspect`` an
    OPeNDAP dataset's metadata is read (no data): unknown or ungridded ``variables`` are 400 and the default
    variables are resolved; an OPeNDAP server that fails (5xx) gives way to the next reference, a NetCDF
    download included. A download is only read by the ingest itself."""
    references = netcdf_references(record)
    if not references:
        raise NotFound(f"record {record.identifier!r} has no OPeNDAP or NetCDF download reference", code="no_netcdf")
    allowed = [reference for reference in references if host_allowed(reference.url, settings.download_hosts)]
    if not allowed:
        check_host(references[0].url, settings.download_hosts)
    requested = clean_variables(variables)
    for reference in allowed[:-1]:
        try:
            return _plan_reference(settings, record, reference, requested, inspect=inspect)
        except UpstreamError:
            continue
    return _plan_reference(settings, record, allowed[-1], requested, inspect=inspect)


def _plan_reference(settings: Settings, record: CswRecord, reference: Reference, requested: list[str] | None, *,
                    inspect: bool) -> NetcdfPlan:
    kind: RemoteKind = "opendap" if reference.kind == "opendap" else "download"
    url = dap_base(reference.url) if kind == "opendap" else reference.url
    if not inspect or kind != "opendap":
        return NetcdfPlan(url=url, kind=kind, variables=requested)
    with open_netcdf(settings, url, kind=kind) as source:
        infos = list_variables(source)
        chosen = select_variables(infos, requested, profile_for(record.platform).point_query_variables,
                                  location=source.location)
    return NetcdfPlan(url=url, kind=kind, variables=chosen, available=[info for info in infos if info.role == "data"])


def ingest_netcdf(session: Session, *, settings: Settings, record: CswRecord, url: str | None = None,
                  variables: list[str] | None = None, time_index: int | None = None, endpoint: str | None = None,
                  report: ProgressCallback | None = None) -> dict:
    """Write ``variables`` of the record's NetCDF/OPeNDAP source (``url``, default: :func:`plan_netcdf`'s) as
    GeoTIFFs and register them all with source ``csw``, or none."""
    progress = report or no_progress
    profile = profile_for(record.platform)
    requested = clean_variables(variables)
    if url is None:
        plan = plan_netcdf(settings, record, requested, inspect=False)
        url, kind = plan.url, plan.kind
    else:
        check_host(url, settings.download_hosts)
        kind = reference_kind(record, url)
    with ExitStack() as stack:
        converted: list[Converted] = []
        with open_netcdf(settings, url, kind=kind) as source:
            progress(2, "reading", source.location)
            chosen = select_variables(list_variables(source), requested, profile.point_query_variables,
                                      location=source.location)
            for name in chosen:
                converted.append(convert(source, name, stack, settings, time_index))
                progress(80 * len(converted) / len(chosen), "converting", name)
            location = source.location
        metadata = {**record.registration_metadata(profile=profile.id), "reference_url": location,
                    "csw_endpoint": endpoint}
        registered = register_converted(session, settings, converted, metadata, progress)
    return {"identifier": record.identifier, "platform": record.platform, "profile": profile.id, "url": location,
            "kind": kind, "variables": chosen, "time_index": time_index, "datasets": registered}
