"""``csw-ingest``: download a CSW record's GeoTIFFs (or its quicklooks) and register them.

Started by the NBS routes (``POST /datasets/sentinel-csw``, ``/datasets/nbs-sentinel-quicklook-csw`` …) with
the record they resolved, so the flow run does not ask the catalogue again."""

from __future__ import annotations

from pydantic import BaseModel, Field
from sqlmodel import Session

from georeg.core.catalog.csw import CswRecord
from georeg.core.catalog.ingest import IngestMode, ingest_record
from georeg.core.models import Permission
from georeg.core.tasks.model import Tool, ToolContext, ToolOutcome


class IngestParams(BaseModel):
    record: CswRecord = Field(description="the resolved CSW record")
    urls: list[str] = Field(min_length=1, max_length=200, description="GeoTIFF URLs of the record to ingest")
    mode: IngestMode = "geotiffs"
    endpoint: str | None = Field(default=None, description="the CSW the record came from")


def run_ingest(context: ToolContext, params: IngestParams) -> ToolOutcome:
    with Session(context.engine, expire_on_commit=False) as session:
        result = ingest_record(session, settings=context.settings, record=params.record, urls=params.urls,
                               endpoint=params.endpoint, report=context.progress)
    context.logger.info("%s: %d dataset(s) registered", params.record.identifier, len(result["datasets"]))
    return ToolOutcome(result={**result, "mode": params.mode, "endpoint": params.endpoint})


CSW_INGEST = Tool(
    id="csw-ingest", version="1.0.0", title="Ingest a CSW record",
    description="Download the GeoTIFFs (or quicklooks) of a CSW record from allowed hosts and register them.",
    parameters=IngestParams, run=run_ingest, required_access=Permission.write, scope="registry",
)
