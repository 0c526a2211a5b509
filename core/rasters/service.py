"""The raster registry (Datasets API): registration with duplicate detection, search, sampling, extents."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path, PurePosixPath

import rasterio
from pydantic import BaseModel
from rasterio.errors import RasterioError
from rasterio.warp import transform as warp_transform
from sqlalchemy import and_, func, literal_column, or_, table
from sqlmodel import Session, select

from georeg.core.config import Settings
from georeg.core.db import SEARCH_INDEX_TABLE
from georeg.core.errors import InvalidInput, InvalidRaster, NotFound
from georeg.core.models import Dataset, Entry, EntryType, Raster
from georeg.core.rasters.profiles import detect_platform
from georeg.core.rasters.reader import RasterReader, native_crs, pixel_at
from georeg.core.rasters.thumbnails import ThumbnailCache
from georeg.core.rasters.tiles import tileset_dir
from georeg.core.registry import datasets as dataset_repo
from georeg.core.registry import entries as entry_repo
from georeg.core.registry import orgs as org_repo
from georeg.core.registry.objects import commit_with_file, resolve_mounted, storage_root
from georeg.core.storage import TempWriter, prune_empty_parents, remove_tree, resolve_inside, sha256_file

DEFAULT_ORG = "default"
REGISTRY_DATASET = "registry"
SORTS = {"created": Raster.created_at, "title": Raster.title, "acquired": Raster.acquired_at, "size": Raster.size}


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


def describe_raster(path: Path) -> tuple:
    """(info, band statistics, band descriptions) of a registrable raster; InvalidRaster otherwise."""
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
        platform=(metadata.get("platform") or detect_platform(metadata.get("identifier"), title, filename,
                                                              source_path) or "").upper() or None,
        source_identifier=metadata.get("identifier"), profile=metadata.get("profile"),
        acquired_at=datetime.fromisoformat(str(acquired).replace("Z", "+00:00")) if acquired else None,
        sha256=sha256, size=size, width=info.width, height=info.height, band_count=info.count, dtype=info.dtype,
        nodata=info.nodata, epsg=info.epsg, crs_wkt=info.crs_wkt, minx=wgs84[0], miny=wgs84[1], maxx=wgs84[2],
        maxy=wgs84[3], native_bounds=info.bounds, footprint=info.footprint, stats=stats, bands=bands, meta=metadata,
    )


def register_upload(session: Session, *, settings: Settings, upload: TempWriter, filename: str, title: str | None,
                    metadata: dict, source: str = "upload", description: tuple | None = None) -> Registration:
    """Register a GeoTIFF georeg now owns (uploaded, downloaded or produced by a task; already streamed to
    ``upload``); identical content is not stored twice. ``description`` is :func:`describe_raster`'s answer
    when the caller already has it."""
    info, stats, bands = description or describe_raster(upload.path)
    existing = _find_duplicate(session, upload.sha256)
    if existing is not None:
        return Registration(raster=raster_view(existing), duplicate_of=existing.public_id)
    org, dataset = registry_location(session)
    stem = PurePosixPath(filename).stem or "raster"
    path = f"uploads/{upload.sha256[:12]}/{PurePosixPath(filename).name or 'raster.tif'}"
    entry = entry_repo.upsert_file(session, dataset=dataset, path=path, size=upload.size, sha256=upload.sha256,
                                   type="raster", properties={"source": source}, footprint=info.footprint,
                                   crs=info.crs_label, bounds=info.bounds)
    raster = _new_raster(entry, info, stats, bands, sha256=upload.sha256, size=upload.size, title=title or stem,
                         source=source, source_path=None, owned=True, metadata=metadata, filename=filename)
    session.add(raster)
    session.flush()
    commit_with_file(session, upload, resolve_inside(storage_root(settings, org, dataset), path))
    return Registration(raster=raster_view(raster))


def register_path(session: Session, *, settings: Settings, raw_path: str, title: str | None,
                  metadata: dict) -> Registration:
    """Register a GeoTIFF under a mounted root by reference (never copied, never deleted by georeg)."""
    source = resolve_mounted(settings, raw_path)
    info, stats, bands = describe_raster(source)
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


FTS_MIN_CHARS = 3  # the trigram tokenizer matches substrings of at least one trigram


def _text_match(session: Session, q: str):  # noqa: ANN202
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


def search_rasters(session: Session, *, q: str | None = None, platform: str | None = None, source: str | None = None,
                   bbox: str | None = None, start: datetime | None = None, end: datetime | None = None,
                   sort: str = "-created", limit: int = 25, offset: int = 0) -> tuple[list[Raster], int]:
    """One page of rasters and the total, in one statement: the page's ids and the count come from narrow indexes (see
    ``Raster``), only the page's rows are read whole."""
    field = sort.lstrip("-")
    if field not in SORTS:
        raise InvalidInput(f"unknown sort {sort!r}; use one of {', '.join(SORTS)} (prefix '-' for descending)",
                           code="invalid_sort")
    filters = []
    if q:
        filters.append(_text_match(session, q))
    if platform:
        prefix = platform.upper()  # platforms are stored upper-case; a range keeps the prefix test on an index
        filters.append(and_(Raster.platform >= prefix, Raster.platform < prefix[:-1] + chr(ord(prefix[-1]) + 1)))
    if source:
        filters.append(Raster.source == source)
    if bbox:
        filters.append(_bbox_filter(*parse_bbox(bbox)))
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


def sample(session: Session, settings: Settings, raster: Raster, *, lon: float, lat: float) -> dict:
    """Values of every band at a WGS84 point (nodata -> None); 404 outside the raster."""
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise InvalidInput("lon must be within ±180 and lat within ±90", code="invalid_point")
    path = raster_file(session, settings, raster)
    try:
        with rasterio.open(path) as src:
            crs = native_crs(src)
            xs, ys = warp_transform("EPSG:4326", crs, [lon], [lat]) if crs else ([lon], [lat])
            row, col = pixel_at(src, xs[0], ys[0])
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
    session.delete(entry if entry is not None else raster)
    session.flush()
    if entry is not None:
        _drop_empty_folder(session, entry)
    session.commit()
    if owned_file is not None:
        org, dataset = registry_location(session)
        owned_file.unlink(missing_ok=True)
        prune_empty_parents(owned_file.parent, stop=storage_root(settings, org, dataset))
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
        session.delete(remaining[0])


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
