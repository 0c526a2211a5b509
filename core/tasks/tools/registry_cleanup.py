"""``registry-cleanup``: reconcile every dataset with its files (rows of files that are gone are removed) and remove
the build artifacts no entry holds any more. Admins start it with ``POST /sys/cleanup`` (no dataset named)."""

from __future__ import annotations

from sqlmodel import Session

from georeg.core.models import Permission
from georeg.core.registry.admin import cleanup_registry
from georeg.core.tasks.model import Tool, ToolContext, ToolOutcome
from georeg.core.tasks.tools.common import NoParams


def run_registry_cleanup(context: ToolContext, _: NoParams) -> ToolOutcome:
    with Session(context.engine) as session:
        report = cleanup_registry(session, settings=context.settings, report=context.progress)
    context.logger.info("cleanup: %d datasets, %d entry rows and %d builds removed (%d bytes)", report.datasets,
                        sum(len(paths) for paths in report.removed_entries.values()), len(report.removed_artifacts),
                        report.freed_bytes)
    return ToolOutcome(result=report.model_dump(by_alias=True))


REGISTRY_CLEANUP = Tool(id="registry-cleanup", version="1.0.0", title="Registry cleanup",
                        description="Remove entry rows whose files are gone from every dataset, and build artifacts "
                        "of contents no entry holds.", parameters=NoParams, run=run_registry_cleanup,
                        required_access=Permission.admin, scope="registry")
