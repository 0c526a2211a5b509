"""``bulk-download``: a zip of selected paths (or the whole dataset) as the task's artifact."""

from __future__ import annotations

import zipfile

from pydantic import BaseModel, Field

from georeg.core.models import Permission
from georeg.core.registry.objects import entry_files
from georeg.core.storage import CHUNK_SIZE
from georeg.core.tasks.model import Tool, ToolContext, ToolOutcome
from georeg.core.tasks.tools.common import selected_files, task_session


class BulkDownloadParams(BaseModel):
    paths: list[str] = Field(default_factory=list, description="entries or folders to include; empty: everything")
    compress: bool = Field(default=False, description="deflate members (slower, smaller)")


def run(context: ToolContext, params: BulkDownloadParams) -> ToolOutcome:
    with task_session(context) as (session, _, dataset):
        entries = selected_files(session, dataset, params.paths or ([context.path] if context.path else []))
        files = entry_files(session, context.settings, context.dataset_root, entries)
    total = sum(entry.size for entry in entries) or 1
    archive_path = context.work_dir / "bulk.zip"
    compression = zipfile.ZIP_DEFLATED if params.compress else zipfile.ZIP_STORED
    done = 0
    with zipfile.ZipFile(archive_path, "w", compression=compression, allowZip64=True) as archive:
        for index, entry in enumerate(entries, start=1):
            with open(files[entry.path], "rb") as reader, archive.open(entry.path, "w", force_zip64=True) as writer:
                while chunk := reader.read(CHUNK_SIZE):
                    writer.write(chunk)
            done += entry.size
            context.logger.info("added %s (%d bytes)", entry.path, entry.size)
            context.progress(100.0 * done / total, "zipping", f"{index}/{len(entries)} files: {entry.path}")
    return ToolOutcome(result={"files": len(entries), "bytes": done}, artifact=archive_path)


BULK_DOWNLOAD = Tool(
    id="bulk-download",
    version="1.0.0",
    title="Bulk download",
    description="Zip the selected paths (or the whole dataset) into a downloadable archive.",
    parameters=BulkDownloadParams,
    run=run,
    required_access=Permission.read,
    produces_artifact=True,
    artifact_extension=".zip",
)
