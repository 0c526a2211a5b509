"""Raster registry maintenance tools: ``rehash``, ``prune-missing``, ``resync``, ``generate-thumbnails``.

They run on the registry dataset (``default/registry``) and are started by the Datasets API routes
(``POST /datasets/rehash`` …) or scheduled in prefect.yaml.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field
from sqlmodel import Session, select

from georeg.core.catalog.ingest import refresh_csw_metadata
from georeg.core.errors import GeoregError
from georeg.core.models import Entry, Permission, Raster
from georeg.core.rasters import previews
from georeg.core.rasters import service as rasters
from georeg.core.rasters.previews import ThumbnailRequest
from georeg.core.rasters.thumbnails import ThumbnailCache
from georeg.core.registry.objects import RASTER_SUFFIXES
from georeg.core.storage import sha256_file
from georeg.core.tasks.model import Tool, ToolContext, ToolOutcome
from georeg.core.tasks.tools.common import NoParams


class PruneParams(BaseModel):
    dry_run: bool = Field(default=False, description="only report what would be removed")


class ResyncParams(BaseModel):
    refresh_csw: bool = Field(default=False, description="also refresh CSW metadata of CSW-sourced datasets")


def _all_rasters(session: Session) -> list[Raster]:
    return list(session.exec(select(Raster).order_by(Raster.id)).all())


def rehash(context: ToolContext, _: NoParams) -> ToolOutcome:
    changed, missing = [], []
    with Session(context.engine, expire_on_commit=False) as session:
        records = _all_rasters(session)
        for index, raster in enumerate(records, start=1):
            path = rasters.raster_file(session, context.settings, raster)
            if not path.is_file():
                missing.append(raster.public_id)
            else:
                size, sha256 = sha256_file(path)
                if sha256 != raster.sha256:
                    changed.append(raster.public_id)
                    context.logger.info("changed: %s (%s)", raster.public_id, path)
                    raster.sha256, raster.size = sha256, size
                    entry = session.get(Entry, raster.entry_id)
                    entry.sha256, entry.size = sha256, size
                    session.add_all([raster, entry])
                    session.commit()
            context.progress(100 * index / len(records), "hashing", raster.public_id)
        session.commit()
    return ToolOutcome(result={"checked": len(records), "changed": changed, "missing": missing})


def prune_missing(context: ToolContext, params: PruneParams) -> ToolOutcome:
    with Session(context.engine, expire_on_commit=False) as session:
        records = _all_rasters(session)
        gone = [r for r in records if not rasters.raster_file(session, context.settings, r).is_file()]
        for raster in gone:
            context.logger.info("%s %s", "would remove" if params.dry_run else "removing", raster.public_id)
            if not params.dry_run:
                rasters.delete_raster(session, context.settings, raster)
    return ToolOutcome(result={"checked": len(records), "missing": [r.public_id for r in gone],
                               "removed": 0 if params.dry_run else len(gone), "dry_run": params.dry_run})


def resync(context: ToolContext, params: ResyncParams) -> ToolOutcome:
    """Register GeoTIFFs under the mounted roots that are not registered yet, and refresh changed ones."""
    added, updated, failed = [], [], []
    settings = context.settings
    candidates = [p for root in settings.mount_roots if root.is_dir() for p in sorted(root.rglob("*"))
                  if p.is_file() and p.suffix.lower() in RASTER_SUFFIXES]
    with Session(context.engine, expire_on_commit=False) as session:
        known = {r.source_path: r for r in _all_rasters(session) if r.source_path}
        for index, path in enumerate(candidates, start=1):
            resolved = str(path.resolve())
            try:
                if resolved in known:
                    size, sha256 = sha256_file(path)
                    if sha256 != known[resolved].sha256:
                        raster = known[resolved]
                        raster.sha256, raster.size = sha256, size
                        session.add(raster)
                        session.commit()
                        updated.append(raster.public_id)
                else:
                    registration = rasters.register_path(session, settings=settings, raw_path=resolved, title=None,
                                                         metadata={})
                    if registration.created:
                        added.append(registration.dataset_id)
            except GeoregError as exc:
                session.rollback()
                failed.append({"path": resolved, "error": exc.message})
                context.logger.warning("cannot register %s: %s", resolved, exc.message)
            context.progress(100 * index / max(len(candidates), 1), "scanning", resolved)
        result = {"scanned": len(candidates), "added": added, "updated": updated, "failed": failed}
        if params.refresh_csw:
            result["csw"] = refresh_csw_metadata(session, settings=settings, report=context.progress)
    return ToolOutcome(result=result)


def generate_thumbnails(context: ToolContext, params: ThumbnailRequest) -> ToolOutcome:
    cache = ThumbnailCache(context.settings.cache_dir, tmp_dir=context.settings.tmp_dir, memory_items=0)
    with Session(context.engine, expire_on_commit=False) as session:
        batch = previews.generate_thumbnails(session, settings=context.settings, cache=cache, request=params,
                                             report=context.progress)
    return ToolOutcome(result=batch.model_dump())


def _maintenance(tool_id: str, title: str, description: str, parameters: type[BaseModel],
                 run: Callable[[ToolContext, Any], ToolOutcome]) -> Tool:
    return Tool(id=tool_id, version="1.0.0", title=title, description=description, parameters=parameters, run=run,
                required_access=Permission.write, scope="registry")


REHASH = _maintenance("rehash", "Rehash rasters", "Recompute the sha256 of every registered raster.", NoParams, rehash)
PRUNE_MISSING = _maintenance("prune-missing", "Prune missing rasters",
                             "Remove raster records whose source file is gone.", PruneParams, prune_missing)
RESYNC = _maintenance("resync", "Resync registry",
                      "Register new GeoTIFFs under the mounted roots, refresh changed ones.", ResyncParams, resync)
GENERATE_THUMBNAILS = _maintenance("generate-thumbnails", "Generate thumbnails",
                                   "Pre-render thumbnails of many rasters.", ThumbnailRequest, generate_thumbnails)
