"""Registry entries of geospatial files: what an uploaded, extracted or rescanned file's entry records.

A raster entry keeps the raster's metadata (size, bands, CRS, bounds) and a WGS84 footprint; other files only
their type. :func:`store_file` is the registry's ``store_object`` with that description made first."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import Session

from georeg.core.config import Settings
from georeg.core.models import Dataset, Entry, EntryType, Organization
from georeg.core.rasters.reader import inspect_raster
from georeg.core.registry.objects import EntryDescription, classify, store_object
from georeg.core.storage import TempWriter


def describe_entry(file_path: Path, entry_type: EntryType) -> EntryDescription:
    """The entry fields of ``file_path`` (:class:`InvalidRaster` for a raster that cannot be read)."""
    if entry_type is not EntryType.raster:
        return EntryDescription(type=entry_type)
    info = inspect_raster(file_path)
    properties = info.model_dump(exclude={"footprint", "crs_wkt"})
    properties["crs_wkt"] = info.crs_wkt
    return EntryDescription(type=EntryType.raster, properties=properties, footprint=info.footprint,
                            crs=info.crs_label, bounds=info.bounds)


def store_file(
    session: Session, *, settings: Settings, org: Organization, dataset: Dataset, path: str, upload: TempWriter
) -> Entry:
    """Describe the finished upload by its content, then store it as the entry ``path`` (nothing is stored when
    the content is invalid; the caller discards the temp file)."""
    description = describe_entry(upload.path, classify(path))
    return store_object(session, settings=settings, org=org, dataset=dataset, path=path, upload=upload,
                        description=description)
