"""``csw-harvest``: the scheduled ingest of new CSW records (deployment ``registry-maintenance/csw-harvest``,
disabled by default). Query, window and endpoint come from the parameters or the ``GEOREG_CSW_HARVEST_*``
settings; a record that already has a registered dataset is skipped, so runs are idempotent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, Field
from sqlmodel import Session, select

from georeg.core.catalog.csw import MAX_LIMIT, CswClient, CswQuery, CswRecord
from georeg.core.catalog.ingest import IngestMode, ingest_record, plan_ingest
from georeg.core.errors import GeoregError
from georeg.core.models import Permission, Raster
from georeg.core.tasks.model import Tool, ToolContext, ToolOutcome


class HarvestParams(BaseModel):
    endpoint: str | None = Field(default=None, description="CSW endpoint (default GEOREG_CSW_HARVEST_ENDPOINT)")
    keywords: list[str] | None = Field(default=None, description="default GEOREG_CSW_HARVEST_KEYWORDS")
    anytext: str | None = Field(default=None, description="default GEOREG_CSW_HARVEST_ANYTEXT")
    window_hours: float | None = Field(default=None, gt=0, description="records that began within this window")
    max_records: int | None = Field(default=None, ge=1, le=100_000)
    mode: IngestMode = "quicklooks"


def harvest_candidates(client: CswClient, query: CswQuery, max_records: int) -> list[CswRecord]:
    """Every record matching ``query``, paging until ``max_records``."""
    records: list[CswRecord] = []
    while len(records) < max_records:
        page = client.search(query.model_copy(update={"offset": len(records),
                                                      "limit": min(MAX_LIMIT, max_records - len(records))}))
        records.extend(page.items)
        if page.next_offset is None:
            break
    return records


def run_harvest(context: ToolContext, params: HarvestParams) -> ToolOutcome:
    settings = context.settings
    window = params.window_hours or settings.csw_harvest_window_hours
    query = CswQuery(
        keywords=params.keywords if params.keywords is not None else settings.csw_harvest_keywords,
        anytext=params.anytext or settings.csw_harvest_anytext,
        start_datetime=datetime.now(UTC) - timedelta(hours=window), limit=MAX_LIMIT,
    )
    with CswClient.for_settings(settings, params.endpoint or settings.csw_harvest_endpoint) as client:
        records = harvest_candidates(client, query, params.max_records or settings.csw_harvest_max_records)
    ingested, skipped, failed = [], [], []
    with Session(context.engine, expire_on_commit=False) as session:
        for index, record in enumerate(records, start=1):
            known = session.exec(select(Raster.id).where(Raster.source_identifier == record.identifier)).first()
            if known is not None:
                skipped.append({"identifier": record.identifier, "reason": "already registered"})
            else:
                try:
                    urls = plan_ingest(settings, record, params.mode)
                    result = ingest_record(session, settings=settings, record=record, urls=urls,
                                           endpoint=client.endpoint)
                    ingested.append({"identifier": record.identifier,
                                     "datasets": [item["dataset_id"] for item in result["datasets"]]})
                except GeoregError as exc:
                    session.rollback()
                    target = skipped if exc.code == f"no_{params.mode}" else failed
                    target.append({"identifier": record.identifier, "reason": exc.message, "code": exc.code})
                    context.logger.warning("%s: %s", record.identifier, exc.message)
            context.progress(100 * index / len(records), "harvesting", record.identifier)
    return ToolOutcome(result={"endpoint": client.endpoint, "window_hours": window, "matched": len(records),
                               "ingested": ingested, "skipped": skipped, "failed": failed})


CSW_HARVEST = Tool(
    id="csw-harvest", version="1.0.0", title="Harvest a CSW",
    description="Ingest new records of a CSW query (scheduled; records already registered are skipped).",
    parameters=HarvestParams, run=run_harvest, required_access=Permission.write, scope="registry",
)
