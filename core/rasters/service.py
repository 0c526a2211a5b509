"""The raster registry (Datasets API): registration with duplicate detection, lookups, samples, extents and
deletion. Rasters without an organization are entries of the ``default`` organization's ``registry`` dataset,
which bootstrap creates; nothing here creates it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path, PurePosixPath

import rasterio
from rasterio.errors import RasterioError
from rasterio.warp import transform as warp_transform
from sqlalchemy import func
from sqlmodel import Session, select

from georeg.core.config import Settings
from georeg.core.errors import InvalidInput, InvalidRaster, NotFound
from georeg.core.models import Dataset, Entry, EntryType, Organization, Raster
from georeg.core.rasters.profiles import detect_platform
from georeg.core.rasters.reader import RasterDescription, describe_raster, native_crs, pixel_at
from georeg.core.rasters.schemas import (
    BandValue,
    CrsInfo,
    DuplicateGroup,
    Duplicates,
    ExtentFeature,
    ExtentProperties,
    PointSample,
    RasterBounds,
    RasterLinks,
    RasterRecord,
    RegisteredRaster,
)
from georeg.core.rasters.thumbnails import ThumbnailCache
from georeg.core.rasters.tiles import tileset_dir
from georeg.core.registry import datasets as dataset_repo
from georeg.core.registry import entries as entry_repo
from georeg.core.registry import orgs as org_repo
from georeg.core.registry.objects import (
    commit_removing,
    commit_with_file,
    lock_dataset,
    resolve_mounted,
    storage_root,
)
from georeg.core.storage import TempWriter, remove_tree, resolve_inside, sha256_file

REGISTRY_ORG = "default"
REGISTRY_DATASET = "registry"
DUPLICATE_KEYS = {"hash": Raster.sha256, "identifier": Raster.source_identifier, "source": Raster.source_path}


def registry_location(session: Session) -> tuple[Organization, Dataset]:
    """(org, dataset) where raster registrations without an org land."""
    org = org_repo.get_org(session, slug=REGISTRY_ORG)
    dataset = dataset_repo.find_dataset(session, org=org, slug=REGISTRY_DATASET)
    if dataset is None:
        raise NotFound(f"the raster registry dataset {REGISTRY_ORG}/{REGISTRY_DATASET} is missing; run "
                       "'georeg migrate'", code="registry_missing")
    return org, dataset


def create_registry_location(session: Session, *, org: Organization) -> Dataset:
    """The registry dataset in ``org`` (created when missing; bootstrap's job)."""
    dataset = dataset_repo.find_dataset(session, org=org, slug=REGISTRY_DATASET)
    if dataset is None:
        dataset = dataset_repo.create_dataset(session, org=org, slug=REGISTRY_DATASET, name="Raster registry")
    return dataset


def _find_duplicate(session: Session, sha256: str) -> Raster | None:
    return session.exec(select(Raster).where(Raster.sha256 == sha256).order_by(Raster.id)).first()


def _registration_target(session: Session, sha256: str) -> tuple[Raster | None, Organization, Dataset]:
    """(the raster already holding ``sha256`` or None, the registry's org and dataset). A new content takes the
    registry dataset's write lock (:func:`lock_dataset`, held until the caller's transaction ends) and is looked up
    again under it: registrations of new content go one at a time, so of two registrations of one content at once
    the second finds the first's raster, and two creating one folder entry never collide."""
    org, dataset = registry_location(session)
    existing = _find_duplicate(session, sha256)
    if existing is None:
        lock_dataset(session, org=org, dataset=dataset)
        existing = _find_duplicate(session, sha256)
    return existing, org, dataset


def _new_raster(entry: Entry, description: RasterDescription, *, sha256: str, size: int, title: str, source: str,
                source_path: str | None, owned: bool, metadata: dict, filename: str | None = None) -> Raster:
    info = description.info
    wgs84 = info.wgs84_bounds or [None] * 4
    acquired = metadata.get("acquired_at") or metadata.get("datetime")
    return Raster(
        entry_id=entry.id, public_id=entry.public_id, title=title, source=source, source_path=source_path, owned=owned,
        platform=(metadata.get("platform") or detect_platform(metadata.get("identifier"), title, filename,
                                                              source_path) or "").upper() or None,
        source_identifier=metadata.get("identifier"), profile=metadata.get("profile"),
        acquired_at=datetime.fromisoformat(str(acquired).replace("Z", "+00:00")) if acquired else None,
        sha256=sha256, size=size, width=info.width, height=info.height, band_count=info.count, dtype=info.dtype,
        nodata=info.nodata, epsg=info.epsg, crs_wkt=info.crs_wkt, minx=wgs84[0], miny=wgs84[1], maxx=wgs84[2],
        maxy=wgs84[3], native_bounds=info.bounds, footprint=info.footprint, meta=metadata,
        stats=[band.model_dump(exclude_none=True) for band in description.statistics],
        bands=[band.model_dump(exclude_none=True) for band in description.bands],
    )


def register_upload(session: Session, *, settings: Settings, upload: TempWriter, filename: str, title: str | None,
                    metadata: dict, source: str = "upload",
                    description: RasterDescription | None = None) -> RegisteredRaster:
    """Register a GeoTIFF georeg now owns (uploaded, downloaded or produced by a task; already streamed to
    ``upload``); identical content is not stored twice. ``description`` is :func:`describe_raster`'s answer
    when the caller already has it."""
    description = description or describe_raster(upload.path)
    existing, org, dataset = _registration_target(session, upload.sha256)
    if existing is not None:
        return registered(existing, duplicate_of=existing.public_id)
    stem = PurePosixPath(filename).stem or "raster"
    path = f"uploads/{upload.sha256[:12]}/{PurePosixPath(filename).name or 'raster.tif'}"
    info = description.info
    entry = entry_repo.upsert_file(session, dataset=dataset, path=path, size=upload.size, sha256=upload.sha256,
                                   type="raster", properties={"source": source}, footprint=info.footprint,
                                   crs=info.crs_label, bounds=info.bounds)
    raster = _new_raster(entry, description, sha256=upload.sha256, size=upload.size, title=title or stem,
                         source=source, source_path=None, owned=True, metadata=metadata, filename=filename)
    session.add(raster)
    session.flush()
    commit_with_file(session, upload, resolve_inside(storage_root(settings, org, dataset), path))
    return registered(raster)


def register_path(session: Session, *, settings: Settings, raw_path: str, title: str | None,
                  metadata: dict) -> RegisteredRaster:
    """Register a GeoTIFF under a mounted root by reference (never copied, never deleted by georeg)."""
    source = resolve_mounted(settings, raw_path)
    description = describe_raster(source)
    size, sha256 = sha256_file(source)
    existing, _, dataset = _registration_target(session, sha256)
    if existing is not None:
        return registered(existing, duplicate_of=existing.public_id)
    path = f"mounted/{sha256[:12]}/{source.name}"
    info = description.info
    entry = entry_repo.upsert_file(session, dataset=dataset, path=path, size=size, sha256=sha256, type="raster",
                                   properties={"source": "path", "source_path": str(source)},
                                   footprint=info.footprint, crs=info.crs_label, bounds=info.bounds)
    raster = _new_raster(entry, description, sha256=sha256, size=size, title=title or source.stem,
                         source="path", source_path=str(source), owned=False, metadata=metadata)
    session.add(raster)
    session.commit()
    return registered(raster)


def get_raster(session: Session, *, public_id: str) -> Raster:
    raster = session.exec(select(Raster).where(Raster.public_id == public_id)).first()
    if raster is None:
        raise NotFound(f"dataset {public_id!r} not found", code="dataset_not_found")
    return raster


def raster_file(session: Session, settings: Settings, raster: Raster) -> Path:
    """Where the raster's bytes are: the mounted source, or its entry's file in storage."""
    if raster.source_path:
        return Path(raster.source_path)
    entry = session.get(Entry, raster.entry_id)
    dataset = session.get(Dataset, entry.dataset_id)
    org = session.get(Organization, dataset.org_id)
    return resolve_inside(storage_root(settings, org, dataset), entry.path)


def sample(session: Session, settings: Settings, raster: Raster, *, lon: float, lat: float) -> PointSample:
    """Values of every band at a WGS84 point (nodata -> None); 404 outside the raster."""
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise InvalidInput("lon must be within ±180 and lat within ±90", code="invalid_point")
    path = raster_file(session, settings, raster)
    try:
        with rasterio.open(path) as src:
            crs = native_crs(src)
            xs, ys = warp_transform("EPSG:4326", crs, [lon], [lat]) if crs else ([lon], [lat])
            row, col = pixel_at(src, xs[0], ys[0])
            if not (0 <= row < src.height and 0 <= col < src.width) and (crs is None or crs.is_geographic):
                # longitudes past ±180 (a grid from 179.5 to 180.8): the same point, one turn around
                for turn in (360.0, -360.0):
                    row, col = pixel_at(src, xs[0] + turn, ys[0])
                    if 0 <= row < src.height and 0 <= col < src.width:
                        break
            if not (0 <= row < src.height and 0 <= col < src.width):
                raise NotFound(f"point ({lon}, {lat}) is outside the raster", code="point_outside")
            data = src.read(window=rasterio.windows.Window(col, row, 1, 1), masked=True)
            values = []
            for index in range(src.count):
                value = data[index, 0, 0]
                masked = bool(data.mask[index, 0, 0]) if data.mask is not False and data.mask.shape else False
                values.append(BandValue(band=index + 1, value=None if masked else value.item(),
                                        description=src.descriptions[index],
                                        units=src.units[index] if src.units else None))
    except RasterioError as exc:
        raise InvalidRaster(f"cannot sample the raster: {exc}") from exc
    except FileNotFoundError as exc:
        raise NotFound("the raster file is missing", code="file_missing") from exc
    return PointSample(dataset_id=raster.public_id, lon=lon, lat=lat, x=xs[0], y=ys[0], row=row, col=col,
                       crs=crs_name(raster), values=values)


def crs_name(raster: Raster) -> str | None:
    """``EPSG:<code>`` when the raster's CRS has one, else its WKT."""
    return f"EPSG:{raster.epsg}" if raster.epsg else raster.crs_wkt


def extent_feature(raster: Raster) -> ExtentFeature:
    return ExtentFeature(
        id=raster.public_id, geometry=raster.footprint, bbox=[raster.minx, raster.miny, raster.maxx, raster.maxy],
        properties=ExtentProperties(dataset_id=raster.public_id, title=raster.title, platform=raster.platform,
                                    source=raster.source, crs=f"EPSG:{raster.epsg}" if raster.epsg else None),
    )


def terrain_assets_dir(settings: Settings, dataset_id: str) -> Path:
    """Where a dataset's terrain assets live: tilesets for 3D clients derived from it (terrain-RGB or quantized-mesh
    tiles of a DEM, hillshades), under ``<data>/terrain/<dataset_id>/``. They are published products rather than
    caches, so deleting the dataset keeps them unless ``delete_terrain_assets`` asks otherwise."""
    return settings.resolved_data_dir / "terrain" / dataset_id


def delete_raster(session: Session, settings: Settings, raster: Raster, *, terrain_assets: bool = False,
                  thumbnails: ThumbnailCache | None = None) -> None:
    """Remove the record and what georeg derived from it: its cached thumbnails (disk, and memory when given the
    API's cache) and tiles, and with ``terrain_assets`` its terrain assets. The source file goes only when georeg
    owns it (a copy in storage); a file registered by path under a mounted root is never touched."""
    entry = session.get(Entry, raster.entry_id)
    owned_file = raster_file(session, settings, raster) if raster.owned and not raster.source_path else None
    public_id, sha256 = raster.public_id, raster.sha256
    org, dataset = registry_location(session)
    lock_dataset(session, org=org, dataset=dataset)
    if entry is not None:
        entry_repo.delete_entry(session, entry=entry)  # the raster row goes by cascade, the entry's metadata too
    else:
        session.delete(raster)
    session.flush()
    if entry is not None:
        _drop_empty_folder(session, entry)
    commit_removing(session, [owned_file] if owned_file else [], root=storage_root(settings, org, dataset))
    if _find_duplicate(session, sha256) is None:
        (thumbnails or ThumbnailCache(settings.cache_dir, tmp_dir=settings.tmp_dir, memory_items=0)).forget(sha256)
    remove_tree(tileset_dir(settings.cache_dir, public_id))
    if terrain_assets:
        remove_tree(terrain_assets_dir(settings, public_id))


def _drop_empty_folder(session: Session, entry: Entry) -> None:
    """The per-file folder a registration made (``uploads/<sha>/``), once nothing else is in it."""
    folder = str(PurePosixPath(entry.path).parent)
    if folder in (".", "") or "/" not in folder:
        return
    dataset = session.get(Dataset, entry.dataset_id)
    remaining = entry_repo.subtree(session, dataset=dataset, path=folder)
    if len(remaining) == 1 and remaining[0].type == EntryType.directory.value:
        entry_repo.delete_entry(session, entry=remaining[0])


def duplicates(session: Session, *, by: str) -> Duplicates:
    """Groups of rasters sharing their content hash, CSW identifier or source path."""
    if by not in DUPLICATE_KEYS:
        raise InvalidInput("by must be one of hash, identifier, source", code="invalid_duplicates_key")
    column = DUPLICATE_KEYS[by]
    keys = session.exec(select(column).where(column.is_not(None)).group_by(column).having(func.count() > 1)).all()
    groups = []
    for key in keys:
        ids = list(session.exec(select(Raster.public_id).where(column == key).order_by(Raster.id)).all())
        groups.append(DuplicateGroup(key=key, by=by, dataset_ids=ids, count=len(ids)))
    return Duplicates(by=by, total=len(groups), groups=groups)


def raster_record(raster: Raster) -> RasterRecord:
    """The Datasets API's snake_case record of a raster."""
    return RasterRecord(**_record_fields(raster))


def registered(raster: Raster, *, duplicate_of: str | None = None) -> RegisteredRaster:
    """A registration's answer: the record, and ``duplicate_of`` when the bytes were registered already."""
    return RegisteredRaster(**_record_fields(raster), duplicate_of=duplicate_of)


def _record_fields(raster: Raster) -> dict:
    public_id = raster.public_id
    return dict(
        dataset_id=public_id, title=raster.title, source=raster.source, source_identifier=raster.source_identifier,
        source_path=raster.source_path, platform=raster.platform, profile=raster.profile,
        acquired_at=raster.acquired_at, sha256=raster.sha256, size=raster.size, width=raster.width,
        height=raster.height, bands=raster.band_count, dtype=raster.dtype, nodata=raster.nodata,
        crs=CrsInfo(epsg=raster.epsg, wkt=raster.crs_wkt),
        bounds=RasterBounds(native=raster.native_bounds, wgs84=[raster.minx, raster.miny, raster.maxx, raster.maxy]),
        footprint=raster.footprint, statistics=raster.stats, band_info=raster.bands, metadata=raster.meta,
        created_at=raster.created_at,
        links=RasterLinks(self=f"/datasets/{public_id}", extent=f"/datasets/{public_id}/extent.geojson",
                          sample=f"/datasets/{public_id}/sample"),
    )
