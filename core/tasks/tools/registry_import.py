"""``registry-import``: copy a dataset, or every readable dataset of an organization, from another registry (georeg
or DroneDB-compatible) over HTTP. Admins start it with ``POST /sys/import-dataset`` and
``POST /sys/import-organization``; the work is :mod:`georeg.core.registry.imports`."""

from __future__ import annotations

from pydantic import BaseModel, Field
from sqlmodel import Session

from georeg.core.errors import PermissionDenied
from georeg.core.models import Permission, Task, User
from georeg.core.rasters.entries import describe_entry
from georeg.core.registry import users as user_repo
from georeg.core.registry.imports import (
    CREDENTIALS_ID_PATTERN,
    ImportMode,
    drop_credentials,
    import_dataset,
    import_organization,
    load_credentials,
)
from georeg.core.registry.remote import RemoteRegistry, source_base_url
from georeg.core.slugs import SLUG_PATTERN
from georeg.core.tasks.model import Tool, ToolContext, ToolOutcome


class RegistryImportParams(BaseModel):
    source_registry_url: str = Field(max_length=2048, description="the source registry's origin, scheme://host[:port]")
    source_organization: str = Field(max_length=128, pattern=SLUG_PATTERN)
    source_dataset: str | None = Field(default=None, max_length=128, pattern=SLUG_PATTERN,
                                       description="one dataset; none: every dataset of the organization")
    destination_organization: str | None = Field(default=None, max_length=128, pattern=SLUG_PATTERN)
    destination_dataset: str | None = Field(default=None, max_length=128, pattern=SLUG_PATTERN)
    mode: ImportMode = ImportMode.files
    credentials_id: str | None = Field(default=None, pattern=CREDENTIALS_ID_PATTERN,
                                       description="the source credentials kept by the API for this import")


def run(context: ToolContext, params: RegistryImportParams) -> ToolOutcome:
    settings = context.settings
    with Session(context.engine) as session:
        task = session.get(Task, context.task_id)
        user = session.get(User, task.user_id) if task and task.user_id else None
        if not user_repo.is_admin(session, user=user):
            raise PermissionDenied("imports from another registry are for administrators", code="admin_required")
        owner_id = user.id
    base_url = source_base_url(params.source_registry_url, settings.download_hosts)
    credentials = load_credentials(settings, params.credentials_id) if params.credentials_id else None
    with RemoteRegistry(base_url, allowed_hosts=settings.download_hosts,
                        timeout=settings.csw_timeout_seconds) as client:
        if credentials:
            client.authenticate(*credentials)
        context.logger.info("importing %s/%s from %s (%s mode)", params.source_organization,
                            params.source_dataset or "*", base_url, params.mode.value)
        if params.source_dataset:
            report = import_dataset(context.engine, settings, client, source_org=params.source_organization,
                                    source_ds=params.source_dataset, destination_org=params.destination_organization,
                                    destination_ds=params.destination_dataset, mode=params.mode, owner_id=owner_id,
                                    describe=describe_entry, progress=context.progress)
        else:
            report = import_organization(context.engine, settings, client, source_org=params.source_organization,
                                         destination_org=params.destination_organization, mode=params.mode,
                                         owner_id=owner_id, describe=describe_entry, progress=context.progress)
    for error in report.errors:
        context.logger.warning("not imported: %s", error)
    context.logger.info("imported %d items (%d bytes), skipped %d files, %d errors", report.imported_items,
                        report.total_size, report.skipped_files, len(report.errors))
    drop_credentials(settings, params.credentials_id)
    return ToolOutcome(result=report.as_result())


REGISTRY_IMPORT = Tool(
    id="registry-import",
    version="1.0.0",
    title="Import from another registry",
    description="Copy a dataset (or every readable dataset of an organization) from another registry over HTTP.",
    parameters=RegistryImportParams,
    run=run,
    required_access=Permission.admin,
    scope="registry",
)
