"""The raster registry (Datasets API): registration with duplicate detection, search, sampling, extents."""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path, PurePosixPath

import rasterio
from pydantic import BaseModel
from rasterio.errors import RasterioError
from rasterio.warp import transform as warp_transform
from sqlalchemy import and_, func, or_
from sqlmodel import Session, select

from georeg.core.config import Settings
from georeg.core.errors import InvalidInput, InvalidPath, InvalidRaster, NotFound, PermissionDenied
from georeg.core.models import Entry, Raster
from georeg.core.objects import commit_with_file, storage_root
from georeg.core.raster import RasterReader
from georeg.core.repositories import datasets as dataset_repo
from georeg.core.repositories import entries as entry_repo
from georeg.core.repositories import orgs as org_repo
from georeg.core.storage import TempWriter, remove_tree, resolve_inside, sha256_file

DEFAULT_ORG = "default"
REGISTRY_DATASET = "registry"
PLATFORM_PATTERN = re.compile(r"\b(S[1-3][A-D]?|S5P)(?=[_\-.]|\b)", re.IGNORECASE)
SORTS = {"created": Raster.created_at, "title": Raster.title, "acquired": Raster.acquired_at, "size": Raster.size}


def detect_platform(*texts: str | None) -> str | None:
    """Sentinel platform (S1A..S1D, S2A..S2C, S3, S5P) from identifiers, titles or URLs."""
    for text in texts:
        if text:
            match = PLATFORM_PATTERN.search(PurePosixPath(text).name) or PLATFORM_PATTERN.search(text)
            if match:
                return match.group(1).upper()
    return None


def registry_location(session: Session):  # noqa: ANN201
    """(org, dataset) where raster registrations without an org land."""
    org = org_repo.get_org(session, slug=DEFAULT_ORG)
    dataset = dataset_repo.find_dataset(session, org=org, slug=REGISTRY_DATASET)
    if dataset is None:
        dataset = dataset_repo.create_dataset(session, org=org, slug=REGISTRY_DATASET, name="Raster registry")
    return org, dataset


class Registration(BaseModel):
    raster: dict
    duplicate_of: str | None = None

    @property
    def created(self) -> bool:
        return self.duplicate_of is None


def _describe(path: Path) -> tuple:
    with RasterReader(path) as reader:
        reader.verify_readable()
        info = reader.info()
        if not info.georeferenced or info.bounds is None:
            raise InvalidRaster("the raster has no CRS and geotransform (or GCPs); it cannot be registered")
        return info, reader.band_statistics(), reader.band_descriptions()


def _find_duplicate(session: Session, sha256: str) -> Raster | None:
    return session.exec(select(Raster).where(Raster.sha256 == sha256).order_by(Raster.id)).first()


def _new_raster(entry: Entry, info, stats, bands, *, sha256: str, size: int, title: str, source: str,  # noqa: ANN001
                source_path: str | None, owned: bool, metadata: dict, filename: str | None = None) -> Raster:
    wgs84 = info.wgs84_bounds or [None] * 4
    acquired = metadata.get("acquired_at") or metadata.get("datetime")
    return Raster(
        entry_id=entry.id, public_id=entry.public_id, title=title, source=source, source_path=source_path, owned=owned,
        platform=metadata.get("platform") or detect_platform(metadata.get("identifier"), title, filename, source_path),
        source_identifier=metadata.get("identifier"), profile=metadata.get("profile"),
        acquired_at=datetime.fromisoformat(str(acquired).replace("Z", "+00:00")) if acquired else None,
        sha256=sha256, size=size, width=info.width, height=info.height, band_count=info.count, dtype=info.dtype,
        nodata=info.nodata, epsg=info.epsg, crs_wkt=info.crs_wkt, minx=wgs84[0], miny=wgs84[1], maxx=wgs84[2],
        maxy=wgs84[3], native_bounds=info.bounds, footprint=info.footprint, stats=stats, bands=bands, meta=metadata,
    )


def register_upload(session: Session, *, settings: Settings, upload: TempWriter, filename: str, title: str | None,
                    metadata: dict) -> Registration:
    """Register an uploaded GeoTIFF (already streamed to ``upload``); identical content is not stored twice."""
    info, stats, bands = _describe(upload.path)
    existing = _find_duplicate(session, upload.sha256)
    if existing is not None:
        return Registration(raster=raster_view(existing), duplicate_of=existing.public_id)
    org, dataset = registry_location(session)
    stem = PurePosixPath(filename).stem or "raster"
    path = f"uploads/{upload.sha256[:12]}/{PurePosixPath(filename).name or 'raster.tif'}"
    entry = entry_repo.upsert_file(session, dataset=dataset, path=path, size=upload.size, sha256=upload.sha256,
                                   type="raster", properties={"source": "upload"}, footprint=info.footprint,
                                   crs=info.crs_label, bounds=info.bounds)
    raster = _new_raster(entry, info, stats, bands, sha256=upload.sha256, size=upload.size, title=title or stem,
                         source="upload", source_path=None, owned=True, metadata=metadata, filename=filename)
    session.add(raster)
    session.flush()
    commit_with_file(session, upload, resolve_inside(storage_root(settings, org, dataset), path))
    return Registration(raster=raster_view(raster))


def resolve_mounted(settings: Settings, raw_path: str) -> Path:
    """An existing file under one of ``GEOREG_MOUNT_ROOTS`` (symlinks and '..' resolved first)."""
    if not raw_path or "\x00" in raw_path:
        raise InvalidPath("path is empty or contains NUL")
    roots = [root.expanduser().resolve() for root in settings.mount_roots]
    if not roots:
        raise PermissionDenied("no mounted roots are configured (GEOREG_MOUNT_ROOTS)", code="no_mount_roots")
    candidate = Path(raw_path).expanduser()
    resolved = candidate.resolve() if candidate.is_absolute() else (roots[0] / candidate).resolve()
    if not any(resolved == root or root in resolved.parents for root in roots):
        raise PermissionDenied(f"{raw_path!r} is outside the mounted roots", code="outside_mount_roots")
    if not resolved.is_file():
        raise NotFound(f"no file at {raw_path!r}", code="file_not_found")
    return resolved


def register_path(session: Session, *, settings: Settings, raw_path: str, title: str | None,
                  metadata: dict) -> Registration:
    """Register a GeoTIFF under a mounted root by reference (never copied, never deleted by georeg)."""
    source = resolve_mounted(settings, raw_path)
    info, stats, bands = _describe(source)
    size, sha256 = sha256_file(source)
    existing = _find_duplicate(session, sha256)
    if existing is not None:
        return Registration(raster=raster_view(existing), duplicate_of=existing.public_id)
    _, dataset = registry_location(session)
    path = f"mounted/{sha256[:12]}/{source.name}"
    entry = entry_repo.upsert_file(session, dataset=dataset, path=path, size=size, sha256=sha256, type="raster",
                                   properties={"source": "path", "source_path": str(source)},
                                   footprint=info.footprint, crs=info.crs_label,
                                   bounds=info.bounds)
    raster = _new_raster(entry, info, stats, bands, sha256=sha256, size=size, title=title or source.stem,
                         source="path", source_path=str(source), owned=False, metadata=metadata)
    session.add(raster)
    session.commit()
    return Registration(raster=raster_view(raster))


def get_raster(session: Session, *, public_id: str) -> Raster:
    raster = session.exec(select(Raster).where(Raster.public_id == public_id)).first()
    if raster is None:
        raise NotFound(f"dataset {public_id!r} not found", code="dataset_not_found")
    return raster


def raster_file(session: Session, settings: Settings, raster: Raster) -> Path:
    """Where the raster's bytes are: the mounted source or the registry storage."""
    if raster.source_path:
        return Path(raster.source_path)
    entry = session.get(Entry, raster.entry_id)
    org, dataset = registry_location(session)
    return resolve_inside(storage_root(settings, org, dataset), entry.path)


def parse_bbox(raw: str) -> tuple[float, float, float, float]:
    try:
        minx, miny, maxx, maxy = (float(v) for v in raw.split(","))
    except ValueError as exc:
        raise InvalidInput("bbox must be 'minx,miny,maxx,maxy' in WGS84 degrees", code="invalid_bbox") from exc
    if not (-180 <= minx <= 180 and -180 <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise InvalidInput("bbox out of range: longitudes within ±180, latitudes within ±90, miny <= maxy",
                           code="invalid_bbox")
    return minx, miny, maxx, maxy


def _bbox_filter(minx: float, miny: float, maxx: float, maxy: float):  # noqa: ANN202
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


def search_rasters(session: Session, *, q: str | None = None, platform: str | None = None, source: str | None = None,
                   bbox: str | None = None, start: datetime | None = None, end: datetime | None = None,
                   sort: str = "-created", limit: int = 25, offset: int = 0) -> tuple[list[Raster], int]:
    query = select(Raster)
    if q:
        pattern = f"%{q.lower()}%"
        query = query.where(or_(func.lower(Raster.title).like(pattern), func.lower(Raster.source_identifier).like(pattern),
                                func.lower(Raster.source_path).like(pattern), Raster.public_id == q))
    if platform:
        query = query.where(func.upper(Raster.platform).like(f"{platform.upper()}%"))
    if source:
        query = query.where(Raster.source == source)
    if bbox:
        query = query.where(_bbox_filter(*parse_bbox(bbox)))
    if start:
        query = query.where(Raster.acquired_at >= start)
    if end:
        query = query.where(Raster.acquired_at <= end)
    field = sort.lstrip("-")
    if field not in SORTS:
        raise InvalidInput(f"unknown sort {sort!r}; use one of {', '.join(SORTS)} (prefix '-' for descending)",
                           code="invalid_sort")
    column = SORTS[field]
    order = column.desc() if sort.startswith("-") else column.asc()
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(order, Raster.id).offset(offset).limit(limit)).all()
    return list(rows), total


def sample(session: Session, settings: Settings, raster: Raster, *, lon: float, lat: float) -> dict:
    """Values of every band at a WGS84 point (nodata -> None); 404 outside the raster."""
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise InvalidInput("lon must be within ±180 and lat within ±90", code="invalid_point")
    path = raster_file(session, settings, raster)
    try:
        with rasterio.open(path) as src:
            xs, ys = warp_transform("EPSG:4326", src.crs, [lon], [lat]) if src.crs else ([lon], [lat])
            row, col = src.index(xs[0], ys[0])
            if not (0 <= row < src.height and 0 <= col < src.width):
                raise NotFound(f"point ({lon}, {lat}) is outside the raster", code="point_outside")
            window = rasterio.windows.Window(col, row, 1, 1)
            data = src.read(window=window, masked=True)
            values = []
            for index in range(src.count):
                value = data[index, 0, 0]
                masked = bool(data.mask[index, 0, 0]) if data.mask is not False and data.mask.shape else False
                values.append({
                    "band": index + 1, "value": None if masked else value.item(),
                    "description": src.descriptions[index], "units": src.units[index] if src.units else None,
                })
    except RasterioError as exc:
        raise InvalidRaster(f"cannot sample the raster: {exc}") from exc
    except FileNotFoundError as exc:
        raise NotFound("the raster file is missing", code="file_missing") from exc
    return {"dataset_id": raster.public_id, "lon": lon, "lat": lat, "x": xs[0], "y": ys[0], "row": row, "col": col,
            "crs": f"EPSG:{raster.epsg}" if raster.epsg else raster.crs_wkt, "values": values}


def extent_feature(raster: Raster) -> dict:
    return {"type": "Feature", "id": raster.public_id, "geometry": raster.footprint,
            "bbox": [raster.minx, raster.miny, raster.maxx, raster.maxy],
            "properties": {"dataset_id": raster.public_id, "title": raster.title, "platform": raster.platform,
                           "source": raster.source, "crs": f"EPSG:{raster.epsg}" if raster.epsg else None}}


def delete_raster(session: Session, settings: Settings, raster: Raster) -> None:
    """Remove the record and georeg's own copies and caches; a mounted source file is never touched."""
    entry = session.get(Entry, raster.entry_id)
    path = None if raster.source_path else raster_file(session, settings, raster)
    sha = raster.sha256
    session.delete(entry if entry is not None else raster)
    session.commit()
    if path is not None:
        path.unlink(missing_ok=True)
        if path.parent.exists() and not any(path.parent.iterdir()):
            os.rmdir(path.parent)
    remove_tree(settings.cache_dir / "thumbnails" / sha[:2] / sha)  # same layout as ThumbnailCache.path
    remove_tree(settings.cache_dir / "tiles" / raster.public_id)


def duplicates(session: Session, *, by: str) -> list[dict]:
    columns = {"hash": Raster.sha256, "identifier": Raster.source_identifier, "source": Raster.source_path}
    if by not in columns:
        raise InvalidInput("by must be one of hash, identifier, source", code="invalid_duplicates_key")
    column = columns[by]
    keys = session.exec(select(column).where(column.is_not(None)).group_by(column).having(func.count() > 1)).all()
    groups = []
    for key in keys:
        ids = session.exec(select(Raster.public_id).where(column == key).order_by(Raster.id)).all()
        groups.append({"key": key, "by": by, "dataset_ids": list(ids), "count": len(ids)})
    return groups


def raster_view(raster: Raster) -> dict:
    """The Datasets API's snake_case record."""
    return {
        "dataset_id": raster.public_id, "title": raster.title, "source": raster.source,
        "source_identifier": raster.source_identifier, "source_path": raster.source_path, "platform": raster.platform,
        "profile": raster.profile, "acquired_at": raster.acquired_at.isoformat() if raster.acquired_at else None,
        "sha256": raster.sha256, "size": raster.size, "width": raster.width, "height": raster.height,
        "bands": raster.band_count, "dtype": raster.dtype, "nodata": raster.nodata,
        "crs": {"epsg": raster.epsg, "wkt": raster.crs_wkt},
        "bounds": {"native": raster.native_bounds, "wgs84": [raster.minx, raster.miny, raster.maxx, raster.maxy]},
        "footprint": raster.footprint, "statistics": raster.stats, "band_info": raster.bands,
        "metadata": raster.meta, "created_at": raster.created_at.isoformat() if raster.created_at else None,
        "links": {"self": f"/datasets/{raster.public_id}", "extent": f"/datasets/{raster.public_id}/extent.geojson",
                  "sample": f"/datasets/{raster.public_id}/sample"},
    }
