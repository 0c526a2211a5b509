"""``netcdf-geotiff``: write variables of a CSW record's NetCDF/OPeNDAP source as GeoTIFFs and register them.

Started by the NBS NetCDF route with the record it resolved and the plan of
:func:`georeg.core.netcdf.to_geotiff.plan_netcdf`; ``url`` may be left out, then the run picks the reference."""

from __future__ import annotations

from pydantic import BaseModel, Field
from sqlmodel import Session

from georeg.core.catalog.csw import CswRecord
from georeg.core.catalog.netcdf_ingest import ingest_netcdf
from georeg.core.models import Permission
from georeg.core.netcdf.to_geotiff import MAX_VARIABLES
from georeg.core.tasks.model import Tool, ToolContext, ToolOutcome
from georeg.core.tasks.tools.common import converting_progress


class NetcdfGeotiffParams(BaseModel):
    record: CswRecord = Field(description="the resolved CSW record")
    url: str | None = Field(default=None, max_length=2048,
                            description="OPeNDAP or NetCDF download URL (default: the record's OPeNDAP reference, "
                                        "else its NetCDF download)")
    variables: list[str] | None = Field(
        default=None, max_length=MAX_VARIABLES,
        description="variables to write (default: the platform profile's point-query variables the file has, "
                    "else every georeferenced 2-D/3-D data variable)")
    time_index: int | None = Field(default=None, ge=-1_000_000, le=1_000_000,
                                   description="time step to write (default the first; negative counts from the end)")
    endpoint: str | None = Field(default=None, description="the CSW the record came from")


def run_netcdf_geotiff(context: ToolContext, params: NetcdfGeotiffParams) -> ToolOutcome:
    progress = converting_progress(context, params.record.identifier, "variable")
    with Session(context.engine, expire_on_commit=False) as session:
        result = ingest_netcdf(session, settings=context.settings, record=params.record, url=params.url,
                               variables=params.variables, time_index=params.time_index, endpoint=params.endpoint,
                               report=progress)
    context.logger.info("%s: %d dataset(s) registered from %s", params.record.identifier, len(result["datasets"]),
                        result["url"])
    return ToolOutcome(result={**result, "endpoint": params.endpoint})


NETCDF_GEOTIFF = Tool(
    id="netcdf-geotiff", version="1.0.0", title="NetCDF variables as GeoTIFFs",
    description="Write variables of a CSW record's OPeNDAP/NetCDF source as GeoTIFFs (CF grid mapping honoured) "
                "and register them.",
    parameters=NetcdfGeotiffParams, run=run_netcdf_geotiff, required_access=Permission.write,
    scope="registry",
)
