"""``nc-to-geotiff``: a HySpex child record's NetCDF as its ``rgb`` and ``z`` GeoTIFF variants, registered all or none.

Started by ``POST /datasets/hyspex-csw`` (``submit: true``), by ``POST /datasets/hyspex-csw-parent`` (one task
per child) and by the ``hyspex-parent`` job (one child flow run per child, ``parent_task_id`` set)."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator
from sqlmodel import Session

from georeg.core.catalog.csw import CswRecord
from georeg.core.catalog.hyspex import VARIANTS, Variant, ingest_hyspex
from georeg.core.models import Permission
from georeg.core.tasks.model import Tool, ToolContext, ToolOutcome
from georeg.core.tasks.tools.common import converting_progress


class NcToGeotiffParams(BaseModel):
    record: CswRecord = Field(description="the resolved HySpex child record")
    variants: list[Variant] = Field(default_factory=lambda: list(VARIANTS), min_length=1, max_length=2,
                                    description="rgb (bands nearest 640/550/460 nm, 2-98 % stretch, 8-bit) and/or z "
                                                "(the elevation variable)")
    url: str | None = Field(default=None, max_length=2048,
                            description="OPeNDAP or NetCDF download URL (default: the record's OPeNDAP reference, "
                                        "else its NetCDF download)")
    endpoint: str | None = Field(default=None, description="the CSW the record came from")
    parent_task_id: str | None = Field(default=None, max_length=64,
                                       description="the hyspex-parent job that started this one")

    @field_validator("variants")
    @classmethod
    def _ordered(cls, value: list[Variant]) -> list[Variant]:
        return [variant for variant in VARIANTS if variant in value]


def run_nc_to_geotiff(context: ToolContext, params: NcToGeotiffParams) -> ToolOutcome:
    progress = converting_progress(context, params.record.identifier, "variant")
    with Session(context.engine, expire_on_commit=False) as session:
        result = ingest_hyspex(session, settings=context.settings, record=params.record, variants=params.variants,
                               url=params.url, endpoint=params.endpoint, report=progress)
    context.logger.info("%s: %d dataset(s) registered from %s", params.record.identifier, len(result["datasets"]),
                        result["url"])
    return ToolOutcome(result={**result, "endpoint": params.endpoint, "parent_task_id": params.parent_task_id})


NC_TO_GEOTIFF = Tool(
    id="nc-to-geotiff", version="1.0.0", title="HySpex NetCDF as rgb and z GeoTIFFs",
    description="Write a HySpex child record's NetCDF as an 8-bit RGB GeoTIFF (bands nearest 640/550/460 nm, "
                "2-98 % stretch) and a float32 elevation GeoTIFF, and register them.",
    parameters=NcToGeotiffParams, run=run_nc_to_geotiff, required_access=Permission.write, scope="registry",
)
