"""CSW search and NBS Sentinel ingest routes of the Datasets API.

Routes that only resolve a record answer synchronously; everything that downloads or processes data runs as a
task (``csw-ingest``, ``sentinel-safe``) on the task platform. Ingest routes wait up to ``wait`` seconds for
their job: 200 with the registered datasets when it finished, 202 with the job to follow otherwise.
"""

from __future__ import annotations

import asyncio
import time
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from sqlmodel import Session, select

from georeg.api.deps import ActorDep, CurrentUser, SessionDep, SettingsDep, ToolsDep
from georeg.api.routes.raster_jobs import start_registry_job
from georeg.api.task_views import refresh_states_for_reading
from georeg.core.catalog.csw import CswClient, CswPage, CswQuery, CswRecord
from georeg.core.catalog.ingest import IngestMode, plan_ingest, select_references
from georeg.core.config import Settings
from georeg.core.errors import GeoregError, InvalidInput, UpstreamError
from georeg.core.models import Raster, Task
from georeg.core.netcdf.to_geotiff import plan_netcdf
from georeg.core.rasters import styles as styles
from georeg.core.rasters.ogc import FEATURE_TYPE
from georeg.core.rasters.profiles import all_profiles, profile_for
from georeg.core.registry.access import Actor, require_user
from georeg.core.sentinel import SafeParameters, parse_product
from georeg.core.tasks.model import TaskState, ToolRegistry
from georeg.core.tasks.tools.sentinel_safe import SentinelSafeParams, plan_for

router = APIRouter(tags=["datasets (CSW and Sentinel)"])
MAX_WAIT_SECONDS = 600.0
POLL_SECONDS = 0.5


class RecordRequest(BaseModel):
    identifier: str = Field(min_length=1, max_length=256)
    endpoint: str | None = None
    wait: float = Field(default=60.0, ge=0, le=MAX_WAIT_SECONDS,
                        description="seconds to wait for the ingest job before answering 202 with the job")


@router.get("/datasets/profiles")
def profiles() -> dict:
    """The per-platform profiles (metadata defaults, preferred products, point-query variables)."""
    items = [profile.model_dump() for profile in all_profiles()]
    return {"total": len(items), "items": items}


@router.post("/datasets/csw-search", response_model=CswPage)
def csw_search(query: CswQuery, request: Request, settings: SettingsDep) -> CswPage:
    """Query a CSW with an AND-combined FES filter built from the present fields; paged, stable order."""
    with CswClient.for_settings(settings, query.endpoint, http=request.app.state.upstream) as client:
        return client.search(query)


def resolve_record(request: Request, settings: Settings, identifier: str,
                   endpoint: str | None) -> tuple[str, CswRecord]:
    """(endpoint, record) for an identifier on an allowed CSW."""
    with CswClient.for_settings(settings, endpoint, http=request.app.state.upstream) as client:
        return client.endpoint, client.get_record(identifier)


async def wait_for_job(request: Request, session: Session, task: Task, wait: float) -> Task:
    """Poll the job's flow run until it is terminal or ``wait`` seconds have passed. The job is
    accepted already: a Prefect API too busy to answer a poll leaves it as last seen (202), never
    an error answer."""
    deadline = time.monotonic() + wait
    while True:
        await refresh_states_for_reading(session, request.app.state.prefect, [task])
        if TaskState(task.state).is_terminal or time.monotonic() >= deadline:
            return task
        await asyncio.sleep(POLL_SECONDS)


def service_metadata(request: Request, session: Session, dataset_ids: list[str]) -> dict:
    """georeg's own WMS/WFS endpoints and the layers of ``dataset_ids`` with their styles."""
    base = str(request.base_url).rstrip("/")
    found = session.exec(select(Raster).where(Raster.public_id.in_(dataset_ids))).all() if dataset_ids else []
    layers = []
    for raster in sorted(found, key=lambda r: dataset_ids.index(r.public_id)):
        choices = styles.available_styles(raster)
        layers.append({
            "name": raster.public_id, "title": raster.title, "styles": [style.id for style in choices],
            "default_style": next((style.id for style in choices if style.default), None),
            "bbox": [raster.minx, raster.miny, raster.maxx, raster.maxy],
            "tiles": f"{base}/datasets/{raster.public_id}/tiles/{{z}}/{{x}}/{{y}}.png",
        })
    return {
        "wms": {"url": f"{base}/wms", "version": "1.3.0",
                "capabilities_url": f"{base}/wms?service=WMS&request=GetCapabilities&version=1.3.0",
                "layers": layers},
        "wfs": {"url": f"{base}/wfs", "version": "2.0.0",
                "capabilities_url": f"{base}/wfs?service=WFS&request=GetCapabilities&version=2.0.0",
                "feature_type": FEATURE_TYPE,
                "get_feature_url": f"{base}/wfs?service=WFS&version=2.0.0&request=GetFeature"
                                   f"&typeNames={FEATURE_TYPE}&outputFormat=application/json"},
    }


async def run_job(request: Request, session: Session, settings: Settings, actor: Actor, tools: ToolRegistry, *,
                  tool_id: str, parameters: dict, wait: float, answer: dict, with_services: bool) -> JSONResponse:
    """Start a registry job and wait for it: 200 with its registered ``datasets`` (and WMS/WFS ``services``),
    202 while it runs, 502 ``job_failed`` when it failed."""
    task, _ = await start_registry_job(request, session, settings, actor, tools, tool_id, parameters)
    task = await wait_for_job(request, session, task, wait)
    answer = {**answer, "tool_id": tool_id, "job_id": task.id, "status_url": f"/datasets/jobs/{task.id}",
              "status": task.state}
    if task.state == TaskState.failed.value:
        raise UpstreamError(f"{tool_id} job for {answer.get('identifier')!r} failed: {task.error}",
                            code="job_failed", details={"job_id": task.id, "status_url": answer["status_url"]})
    if task.state != TaskState.succeeded.value:
        return JSONResponse(answer, status_code=202)
    datasets = (task.result or {}).get("datasets", [])
    answer["datasets"] = datasets
    if with_services:
        answer["services"] = service_metadata(request, session, [item["dataset_id"] for item in datasets])
    return JSONResponse(answer)


def record_answer(endpoint: str, record: CswRecord) -> dict:
    """What every NBS route answers about the record: identifier, platform, its profile and the record."""
    return {"identifier": record.identifier, "endpoint": endpoint, "platform": record.platform,
            "profile": profile_for(record.platform).model_dump(), "record": record.model_dump()}


async def ingest(request: Request, session: Session, settings: Settings, actor: Actor, tools: ToolRegistry,
                 body: RecordRequest, mode: IngestMode, *, with_services: bool) -> JSONResponse:
    """Resolve the record, check its GeoTIFF references, run ``csw-ingest``."""
    endpoint, record = await run_in_threadpool(resolve_record, request, settings, body.identifier, body.endpoint)
    return await ingest_resolved(request, session, settings, actor, tools, endpoint, record, mode,
                                 wait=body.wait, with_services=with_services)


async def ingest_resolved(request: Request, session: Session, settings: Settings, actor: Actor, tools: ToolRegistry,
                          endpoint: str, record: CswRecord, mode: IngestMode, *, wait: float,
                          with_services: bool, extra: dict | None = None) -> JSONResponse:
    urls = plan_ingest(settings, record, mode)
    parameters = {"record": record.model_dump(), "urls": urls, "mode": mode, "endpoint": endpoint}
    return await run_job(request, session, settings, actor, tools, tool_id="csw-ingest", parameters=parameters,
                         wait=wait, with_services=with_services,
                         answer={**record_answer(endpoint, record), "mode": mode, "urls": urls, **(extra or {})})


@router.post("/datasets/sentinel-csw")
async def sentinel_csw(body: RecordRequest, request: Request, session: SessionDep, settings: SettingsDep,
                       actor: ActorDep, tools: ToolsDep, _: CurrentUser) -> JSONResponse:
    """Resolve one record and register every GeoTIFF it references (a ``csw-ingest`` job)."""
    return await ingest(request, session, settings, actor, tools, body, "geotiffs", with_services=False)


@router.post("/datasets/nbs-sentinel-quicklook-csw")
async def nbs_sentinel_quicklook(body: RecordRequest, request: Request, session: SessionDep, settings: SettingsDep,
                                 actor: ActorDep, tools: ToolsDep, _: CurrentUser) -> JSONResponse:
    """Resolve an NBS record, register its quicklook GeoTIFFs and describe them as WMS layers/WFS features."""
    return await ingest(request, session, settings, actor, tools, body, "quicklooks", with_services=True)


class SafeRequest(RecordRequest):
    mode: Literal["prepare", "submit"] = "prepare"
    products: list[str] | None = Field(default=None, max_length=10, description=(
        "S1: polarisations (VV, VH, HH, HV); S2: true_color_vegetation, false_color_glacier, false_color_vegetation"))
    variables: list[str] | None = Field(default=None, max_length=10, description=(
        "S1 variables (Amplitude_VV, Amplitude_VH, ...) standing for their polarisations; the profile's "
        "point-query variables when neither products nor variables are given"))
    processing: SafeParameters | None = None


def safe_products(record: CswRecord, products: list[str] | None, variables: list[str] | None) -> list[str] | None:
    """Products to make: the caller's, else S1 polarisations from the variables; by default the profile's
    variables that the product has (all polarisations when it has none of them, e.g. HH/HV of a 1SDH)."""
    if products:
        return products
    if profile_for(record.platform).family != "S1":
        return None
    if variables:
        return [name.removeprefix("Amplitude_").upper() for name in variables]
    defaults = [name.removeprefix("Amplitude_").upper() for name in profile_for(record.platform).point_query_variables]
    try:
        available = parse_product(record.title or "").polarisations
    except GeoregError:
        return defaults
    return [pol for pol in defaults if pol in available] or None


def safe_parameters(endpoint: str, record: CswRecord, body: SafeRequest) -> SentinelSafeParams:
    try:
        return SentinelSafeParams(
            identifier=record.identifier, product=record.title or record.identifier, title=record.title,
            platform=record.platform, acquired_at=record.acquired_at, endpoint=endpoint,
            products=safe_products(record, body.products, body.variables), processing=body.processing,
        )
    except ValidationError as exc:
        raise InvalidInput(f"record {record.identifier!r} cannot be processed as a SAFE: "
                           f"{exc.errors()[0]['msg']}", code="invalid_safe_request") from exc


async def run_safe(request: Request, session: Session, settings: Settings, actor: Actor, tools: ToolRegistry,
                   endpoint: str, record: CswRecord, body: SafeRequest, *, extra: dict | None = None) -> JSONResponse:
    """``prepare``: the plan (inputs, outputs, parameters), no side effects; ``submit``: a ``sentinel-safe`` job."""
    params = safe_parameters(endpoint, record, body)
    plan = await run_in_threadpool(plan_for, settings, params)
    answer = {**record_answer(endpoint, record), "mode": body.mode, "plan": plan.model_dump(mode="json"),
              **(extra or {})}
    if body.mode == "prepare":
        return JSONResponse(answer)
    return await run_job(request, session, settings, actor, tools, tool_id="sentinel-safe",
                         parameters=params.model_dump(mode="json"), wait=body.wait, answer=answer,
                         with_services=True)


@router.post("/datasets/nbs-sentinel-safe-csw")
async def nbs_sentinel_safe(body: SafeRequest, request: Request, session: SessionDep, settings: SettingsDep,
                            actor: ActorDep, tools: ToolsDep) -> JSONResponse:
    """Locate the record's SAFE under the archive roots; ``prepare`` its plan or ``submit`` the processing
    (S1 amplitude quicklooks, S2 RGB combinations). Submitting needs a login."""
    if body.mode == "submit":
        require_user(actor)
    endpoint, record = await run_in_threadpool(resolve_record, request, settings, body.identifier, body.endpoint)
    return await run_safe(request, session, settings, actor, tools, endpoint, record, body)


class NcRequest(RecordRequest):
    variables: list[str] | None = Field(default=None, max_length=50, description=(
        "NetCDF variables to write as GeoTIFFs (S1 SAFE fallback: the polarisations' amplitudes); the platform "
        "profile's point-query variables by default"))
    products: list[str] | None = Field(default=None, max_length=10, description="S1 SAFE fallback products")
    time_index: int | None = Field(default=None, ge=-1_000_000, le=1_000_000)


@router.post("/datasets/nbs-sentinel-nc-csw")
async def nbs_sentinel_nc(body: NcRequest, request: Request, session: SessionDep, settings: SettingsDep,
                          actor: ActorDep, tools: ToolsDep, _: CurrentUser) -> JSONResponse:
    """Compatibility route. S1: register the quicklooks, or process the SAFE when the record has none;
    other platforms: write the record's NetCDF/OPeNDAP variables as GeoTIFFs (``netcdf-geotiff`` job)."""
    endpoint, record = await run_in_threadpool(resolve_record, request, settings, body.identifier, body.endpoint)
    if profile_for(record.platform).family == "S1":
        if select_references(record, "quicklooks"):
            return await ingest_resolved(request, session, settings, actor, tools, endpoint, record, "quicklooks",
                                         wait=body.wait, with_services=True, extra={"route": "quicklook"})
        safe = SafeRequest(identifier=body.identifier, endpoint=body.endpoint, wait=body.wait, mode="submit",
                           products=body.products, variables=body.variables)
        return await run_safe(request, session, settings, actor, tools, endpoint, record, safe,
                              extra={"route": "safe"})
    plan = await run_in_threadpool(plan_netcdf, settings, record, body.variables)
    parameters = {"record": record.model_dump(), "url": plan.url, "variables": plan.variables,
                  "time_index": body.time_index, "endpoint": endpoint}
    answer = {**record_answer(endpoint, record), "route": "netcdf", "url": plan.url, "variables": plan.variables}
    return await run_job(request, session, settings, actor, tools, tool_id="netcdf-geotiff", parameters=parameters,
                         wait=body.wait, answer=answer, with_services=True)
