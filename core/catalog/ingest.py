"""Ingest of CSW records: pick a record's GeoTIFF references (all of them, or its quicklooks), download them
from allowed hosts and register them with source ``csw``. All or nothing: every file is downloaded and
validated before the first one is registered, so a failure leaves no partial registration."""

from __future__ import annotations

from contextlib import ExitStack
from datetime import datetime
from pathlib import PurePosixPath
from typing import Literal
from urllib.parse import unquote, urlsplit

from sqlmodel import Session, select

from georeg.core.catalog.csw import CswClient, CswRecord, Reference
from georeg.core.config import Settings
from georeg.core.errors import GeoregError, InvalidRaster, NotFound
from georeg.core.fetch import check_host, fetch
from georeg.core.models import Raster
from georeg.core.progress import ProgressCallback, no_progress
from georeg.core.rasters import service as rasters
from georeg.core.rasters.profiles import profile_for
from georeg.core.storage import temp_writer

GEOTIFF_SUFFIXES = (".tif", ".tiff")
IngestMode = Literal["geotiffs", "quicklooks"]


def _url_path(url: str) -> str:
    return unquote(urlsplit(url).path)


def is_geotiff(reference: Reference) -> bool:
    return reference.kind == "download" and _url_path(reference.url).lower().endswith(GEOTIFF_SUFFIXES)


def is_quicklook(reference: Reference) -> bool:
    """A quicklook GeoTIFF: NBS keeps them in a ``ql/<product>/`` folder beside the product."""
    path = _url_path(reference.url).lower()
    named = " ".join(filter(None, (reference.name, reference.scheme))).lower()
    return is_geotiff(reference) and ("/ql/" in path or "quicklook" in path or "quicklook" in named)


def select_references(record: CswRecord, mode: IngestMode) -> list[Reference]:
    """The GeoTIFF references to ingest (``quicklooks``: only quicklooks), without repeats."""
    wanted = is_quicklook if mode == "quicklooks" else is_geotiff
    seen: set[str] = set()
    chosen = []
    for reference in record.references:
        if wanted(reference) and reference.url not in seen:
            seen.add(reference.url)
            chosen.append(reference)
    return chosen


def plan_ingest(settings: Settings, record: CswRecord, mode: IngestMode) -> list[str]:
    """URLs an ingest would download; 404 when there are none, 403 when one lies on a disallowed host."""
    references = select_references(record, mode)
    if not references:
        what = "quicklook GeoTIFF" if mode == "quicklooks" else "GeoTIFF"
        raise NotFound(f"record {record.identifier!r} has no {what} reference", code=f"no_{mode}")
    for reference in references:
        check_host(reference.url, settings.download_hosts)
    return [reference.url for reference in references]


def ingest_record(session: Session, *, settings: Settings, record: CswRecord, urls: list[str],
                  endpoint: str | None = None, report: ProgressCallback | None = None) -> dict:
    """Download ``urls`` of ``record`` and register each (duplicates answer with the existing dataset)."""
    profile = profile_for(record.platform)
    progress = report or no_progress
    with ExitStack() as stack:
        downloads = []
        for index, url in enumerate(urls):
            writer = stack.enter_context(temp_writer(settings.tmp_dir, max_bytes=settings.download_max_bytes))
            fetched = fetch(url, writer, allowed_hosts=settings.download_hosts, timeout=settings.csw_timeout_seconds)
            try:
                description = rasters.describe_raster(writer.path)
            except InvalidRaster as exc:
                raise InvalidRaster(f"{url} is not a registrable GeoTIFF: {exc.message}", code=exc.code) from exc
            downloads.append((url, fetched, writer, description))
            progress(80 * (index + 1) / len(urls), "downloading", fetched.filename)
        registered = []
        for url, fetched, writer, description in downloads:
            metadata = {**record.registration_metadata(profile=profile.id), "reference_url": url,
                        "csw_endpoint": endpoint}
            registration = rasters.register_upload(
                session, settings=settings, upload=writer, filename=fetched.filename,
                title=PurePosixPath(fetched.filename).stem, metadata=metadata, source="csw", description=description,
            )
            registered.append(registration.as_result(url=url))
            progress(80 + 20 * len(registered) / len(downloads), "registering", fetched.filename)
    return {"identifier": record.identifier, "platform": record.platform, "profile": profile.id,
            "datasets": registered}


def refresh_csw_metadata(session: Session, *, settings: Settings, report: ProgressCallback | None = None) -> dict:
    """Re-read the record of every csw-sourced dataset from its catalogue and update the kept metadata
    (platform, profile, acquisition time, references); records the catalogue no longer has are reported."""
    progress = report or no_progress
    targets = list(session.exec(select(Raster).where(Raster.source == "csw", Raster.source_identifier.is_not(None))
                                .order_by(Raster.id)).all())
    refreshed, unchanged, missing, failed = [], [], [], []
    clients: dict[str | None, CswClient] = {}
    for index, raster in enumerate(targets, start=1):
        endpoint = (raster.meta or {}).get("csw_endpoint")
        try:
            if endpoint not in clients:
                clients[endpoint] = CswClient.for_settings(settings, endpoint)
            record = clients[endpoint].get_record(raster.source_identifier)
        except NotFound:
            missing.append(raster.public_id)
        except GeoregError as exc:
            failed.append({"dataset_id": raster.public_id, "error": exc.message, "code": exc.code})
        else:
            profile = profile_for(record.platform)
            meta = {**(raster.meta or {}), **record.registration_metadata(profile=profile.id)}
            if meta != raster.meta or raster.platform != record.platform:
                raster.meta, raster.platform, raster.profile = meta, record.platform or raster.platform, profile.id
                if record.acquired_at:
                    raster.acquired_at = datetime.fromisoformat(record.acquired_at.replace("Z", "+00:00"))
                session.add(raster)
                session.commit()
                refreshed.append(raster.public_id)
            else:
                unchanged.append(raster.public_id)
        progress(100 * index / len(targets), "refreshing CSW metadata", raster.public_id)
    return {"checked": len(targets), "refreshed": refreshed, "unchanged": unchanged, "missing": missing,
            "failed": failed}
