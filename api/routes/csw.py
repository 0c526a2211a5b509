"""CSW search and NBS Sentinel ingest routes of the Datasets API.

Routes that only resolve a record answer synchronously; everything that downloads or processes data runs as a
job (``csw-ingest``, ``sentinel-safe``, ``netcdf-geotiff``) on the task platform. Ingest routes wait up to
``wait`` seconds for their job: 200 with the registered datasets when it finished, 202 with the job to follow
otherwise, 502 ``job_failed`` when it failed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool

from georeg.api.deps import ActorDep, CurrentUser, SessionDep, SettingsDep, TaskServiceDep, UpstreamDep
from georeg.api.schemas import COMMON_ERRORS, errors
from georeg.api.tasks.views import status_url
from georeg.core.catalog.csw import CswClient, CswPage, CswQuery, CswRecord
from georeg.core.catalog.ingest import IngestMode, plan_ingest, select_references
from georeg.core.catalog.nbs import NbsAnswer, NcRequest, RecordRequest, SafeRequest, record_answer, service_metadata
from georeg.core.catalog.netcdf_ingest import plan_netcdf
from georeg.core.errors import UpstreamError
from georeg.core.rasters.profiles import ProfileList, all_profiles, profile_for
from georeg.core.registry.actor import require_user
from georeg.core.tasks.model import TaskState
from georeg.core.tasks.tools.sentinel_safe import params_for_record, plan_for

router = APIRouter(tags=["datasets (CSW and Sentinel)"], responses={**COMMON_ERRORS, **errors(404, 502, 504)})
JOB_ANSWERS = {202: {"model": NbsAnswer, "description": "the job is still running: follow status_url"},
               **errors(401, 403, 429)}


@router.get("/datasets/profiles")
def profiles() -> ProfileList:
    """The per-platform profiles (metadata defaults, preferred products, point-query variables)."""
    items = all_profiles()
    return ProfileList(total=len(items), items=items)


@router.post("/datasets/csw-search", responses=errors(403))
def csw_search(query: CswQuery, settings: SettingsDep, upstream: UpstreamDep) -> CswPage:
    """Query a CSW with an AND-combined FES filter built from the present fields; paged, stable order."""
    with CswClient.for_settings(settings, query.endpoint, http=upstream) as client:
        return client.search(query)


class RecordJobs:
    """What the record routes share, as one dependency: resolving a record on an allowed CSW, and starting a
    registry job on the task service and waiting for it."""

    def __init__(self, tasks: TaskServiceDep, actor: ActorDep, session: SessionDep, settings: SettingsDep,
                 upstream: UpstreamDep, request: Request, response: Response) -> None:
        self.tasks, self.actor, self.session, self.settings = tasks, actor, session, settings
        self.upstream, self.base_url, self.response = upstream, str(request.base_url), response

    async def resolve(self, identifier: str, endpoint: str | None) -> tuple[str, CswRecord]:
        """(endpoint, record) for an identifier on an allowed CSW."""
        return await run_in_threadpool(self._resolve, identifier, endpoint)

    def _resolve(self, identifier: str, endpoint: str | None) -> tuple[str, CswRecord]:
        with CswClient.for_settings(self.settings, endpoint, http=self.upstream) as client:
            return client.endpoint, client.get_record(identifier)

    async def run(self, *, tool_id: str, parameters: dict, wait: float, answer: NbsAnswer,
                  with_services: bool) -> NbsAnswer:
        """Start a registry job and wait for it: 200 with its registered ``datasets`` (and WMS/WFS ``services``),
        202 while it runs, 502 ``job_failed`` when it failed."""
        submission = await self.tasks.submit_registry_job(actor=self.actor, tool_id=tool_id, parameters=parameters)
        task = await self.tasks.wait(submission.task, wait)
        answer = answer.model_copy(update={"tool_id": tool_id, "job_id": task.id, "status_url": status_url(task),
                                           "status": task.state})
        if task.state == TaskState.failed.value:
            raise UpstreamError(f"{tool_id} job for {answer.identifier!r} failed: {task.error}", code="job_failed",
                                details={"job_id": task.id, "status_url": answer.status_url})
        if task.state != TaskState.succeeded.value:
            self.response.status_code = 202
            return answer
        datasets = (task.result or {}).get("datasets", [])
        services = None
        if with_services:
            services = await run_in_threadpool(service_metadata, self.session, base_url=self.base_url,
                                               dataset_ids=[item["dataset_id"] for item in datasets])
        return answer.model_copy(update={"datasets": datasets, "services": services})

    async def ingest(self, endpoint: str, record: CswRecord, mode: IngestMode, *, wait: float, with_services: bool,
                     route: str | None = None) -> NbsAnswer:
        """Check the record's GeoTIFF references and run ``csw-ingest``."""
        urls = plan_ingest(self.settings, record, mode)
        parameters = {"record": record.model_dump(), "urls": urls, "mode": mode, "endpoint": endpoint}
        return await self.run(tool_id="csw-ingest", parameters=parameters, wait=wait, with_services=with_services,
                              answer=record_answer(endpoint, record, mode=mode, urls=urls, route=route))

    async def resolve_and_ingest(self, body: RecordRequest, mode: IngestMode, *, with_services: bool) -> NbsAnswer:
        """Resolve ``body``'s record and ingest its GeoTIFFs of ``mode``."""
        endpoint, record = await self.resolve(body.identifier, body.endpoint)
        return await self.ingest(endpoint, record, mode, wait=body.wait, with_services=with_services)

    async def run_safe(self, endpoint: str, record: CswRecord, body: SafeRequest, *,
                       route: str | None = None) -> NbsAnswer:
        """``prepare``: the plan (inputs, outputs, parameters), no side effects; ``submit``: a ``sentinel-safe``
        job."""
        params = params_for_record(endpoint, record, products=body.products, variables=body.variables,
                                   processing=body.processing)
        plan = await run_in_threadpool(plan_for, self.settings, params)
        answer = record_answer(endpoint, record, mode=body.mode, plan=plan, route=route)
        if body.mode == "prepare":
            return answer
        return await self.run(tool_id="sentinel-safe", parameters=params.model_dump(mode="json"), wait=body.wait,
                              answer=answer, with_services=True)


RecordJobsDep = Annotated[RecordJobs, Depends()]


@router.post("/datasets/sentinel-csw", response_model_exclude_none=True, responses=JOB_ANSWERS)
async def sentinel_csw(body: RecordRequest, jobs: RecordJobsDep, _: CurrentUser) -> NbsAnswer:
    """Resolve one record and register every GeoTIFF it references (a ``csw-ingest`` job)."""
    return await jobs.resolve_and_ingest(body, "geotiffs", with_services=False)


@router.post("/datasets/nbs-sentinel-quicklook-csw", response_model_exclude_none=True, responses=JOB_ANSWERS)
async def nbs_sentinel_quicklook(body: RecordRequest, jobs: RecordJobsDep, _: CurrentUser) -> NbsAnswer:
    """Resolve an NBS record, register its quicklook GeoTIFFs and describe them as WMS layers/WFS features."""
    return await jobs.resolve_and_ingest(body, "quicklooks", with_services=True)


@router.post("/datasets/nbs-sentinel-safe-csw", response_model_exclude_none=True, responses=JOB_ANSWERS)
async def nbs_sentinel_safe(body: SafeRequest, jobs: RecordJobsDep, actor: ActorDep) -> NbsAnswer:
    """Locate the record's SAFE under the archive roots; ``prepare`` its plan or ``submit`` the processing
    (S1 amplitude quicklooks, S2 RGB combinations). Submitting needs a login."""
    if body.mode == "submit":
        require_user(actor)
    endpoint, record = await jobs.resolve(body.identifier, body.endpoint)
    return await jobs.run_safe(endpoint, record, body)


@router.post("/datasets/nbs-sentinel-nc-csw", response_model_exclude_none=True, responses=JOB_ANSWERS)
async def nbs_sentinel_nc(body: NcRequest, jobs: RecordJobsDep, _: CurrentUser) -> NbsAnswer:
    """Compatibility route. S1: register the quicklooks, or process the SAFE when the record has none;
    other platforms: write the record's NetCDF/OPeNDAP variables as GeoTIFFs (``netcdf-geotiff`` job)."""
    endpoint, record = await jobs.resolve(body.identifier, body.endpoint)
    if profile_for(record.platform).family == "S1":
        if select_references(record, "quicklooks"):
            return await jobs.ingest(endpoint, record, "quicklooks", wait=body.wait, with_services=True,
                                     route="quicklook")
        safe = SafeRequest(identifier=body.identifier, endpoint=body.endpoint, wait=body.wait, mode="submit",
                           products=body.products, variables=body.variables)
        return await jobs.run_safe(endpoint, record, safe, route="safe")
    plan = await run_in_threadpool(plan_netcdf, jobs.settings, record, body.variables)
    parameters = {"record": record.model_dump(), "url": plan.url, "variables": plan.variables,
                  "time_index": body.time_index, "endpoint": endpoint}
    answer = record_answer(endpoint, record, route="netcdf", url=plan.url, variables=plan.variables)
    return await jobs.run(tool_id="netcdf-geotiff", parameters=parameters, wait=body.wait, answer=answer,
                          with_services=True)
