"""``rescan-index``: re-read every entry from storage (size, sha256, raster metadata)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from georeg.core.errors import InvalidRaster, NotFound, PermissionDenied
from georeg.core.models import EntryType, Permission
from georeg.core.rasters.entries import describe_entry
from georeg.core.registry.objects import classify, entry_files
from georeg.core.storage import sha256_file
from georeg.core.tasks.model import Tool, ToolContext, ToolOutcome
from georeg.core.tasks.tools.common import selected_files, task_session
from georeg.core.timeutil import utcnow


class RescanParams(BaseModel):
    paths: list[str] = Field(default_factory=list, description="entries or folders to rescan; empty: everything")
    update: bool = Field(default=True, description="write the new size/hash/metadata back to the registry")


def run(context: ToolContext, params: RescanParams) -> ToolOutcome:
    changed, missing, unreadable = [], [], []
    with task_session(context) as (session, _, dataset):
        entries = selected_files(session, dataset, params.paths)
        for index, entry in enumerate(entries, start=1):
            try:
                source = entry_files(session, context.settings, context.dataset_root, [entry])[entry.path]
            except (NotFound, PermissionDenied):
                source = None
            if source is None:
                missing.append(entry.path)
                context.logger.warning("missing: %s", entry.path)
            else:
                size, sha256 = sha256_file(source)
                if size != entry.size or sha256 != entry.sha256:
                    changed.append(entry.path)
                    context.logger.info("changed: %s", entry.path)
                    if params.update:
                        entry.size, entry.sha256, entry.mtime = size, sha256, utcnow()
                        try:
                            describe_entry(source, classify(entry.path)).apply(entry)
                        except InvalidRaster as exc:
                            unreadable.append(entry.path)
                            entry.type = EntryType.generic.value
                            context.logger.warning("unreadable raster %s: %s", entry.path, exc.message)
                        session.add(entry)
                        session.commit()
            context.progress(100.0 * index / max(len(entries), 1), "scanning", f"{index}/{len(entries)}: {entry.path}")
        session.commit()
    return ToolOutcome(result={
        "scanned": len(entries), "changed": changed, "missing": missing, "unreadable": unreadable,
    })


RESCAN_INDEX = Tool(
    id="rescan-index",
    version="1.0.0",
    title="Rescan index",
    description="Re-read entries from storage: size, sha256 and raster metadata; reports changed and missing files.",
    parameters=RescanParams,
    run=run,
    required_access=Permission.write,
)
