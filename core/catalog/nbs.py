"""The NBS routes' vocabulary: their request bodies, what they answer about a record and its job, and the WMS/WFS
services through which the registered rasters are seen."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlmodel import Session, select

from georeg.core.catalog.csw import CswRecord
from georeg.core.models import Raster
from georeg.core.rasters import styles
from georeg.core.rasters.ogc import FEATURE_TYPE
from georeg.core.rasters.profiles import Profile, profile_for
from georeg.core.sentinel import SafeParameters, SafePlan

MAX_WAIT_SECONDS = 600.0


class RecordRequest(BaseModel):
    identifier: str = Field(min_length=1, max_length=256, description="the CSW record's identifier")
    endpoint: str | None = Field(default=None, max_length=2048, description="one of GEOREG_CSW_ENDPOINTS")
    wait: float = Field(default=60.0, ge=0, le=MAX_WAIT_SECONDS,
                        description="seconds to wait for the ingest job before answering 202 with the job")


class SafeRequest(RecordRequest):
    mode: Literal["prepare", "submit"] = "prepare"
    products: list[str] | None = Field(default=None, max_length=10, description=(
        "S1: polarisations (VV, VH, HH, HV); S2: true_color_vegetation, false_color_glacier, false_color_vegetation"))
    variables: list[str] | None = Field(default=None, max_length=10, description=(
        "S1 variables (Amplitude_VV, Amplitude_VH, ...) standing for their polarisations; the profile's "
        "point-query variables when neither products nor variables are given"))
    processing: SafeParameters | None = None


class NcRequest(RecordRequest):
    variables: list[str] | None = Field(default=None, max_length=50, description=(
        "NetCDF variables to write as GeoTIFFs (S1 SAFE fallback: the polarisations' amplitudes); the platform "
        "profile's point-query variables by default"))
    products: list[str] | None = Field(default=None, max_length=10, description="S1 SAFE fallback products")
    time_index: int | None = Field(default=None, ge=-1_000_000, le=1_000_000)


class Layer(BaseModel):
    name: str
    title: str
    styles: list[str]
    default_style: str | None
    bbox: list[float | None]
    tiles: str


class WmsService(BaseModel):
    url: str
    version: str
    capabilities_url: str
    layers: list[Layer]


class WfsService(BaseModel):
    url: str
    version: str
    capabilities_url: str
    feature_type: str
    get_feature_url: str


class Services(BaseModel):
    """georeg's own WMS and WFS endpoints, and the layers of the rasters a job registered."""

    wms: WmsService
    wfs: WfsService


class NbsAnswer(BaseModel):
    """What an NBS route answers: the record and its profile, what it planned, and its job (when one ran)."""

    identifier: str
    endpoint: str
    platform: str | None = None
    profile: Profile
    record: CswRecord
    mode: str | None = None
    route: Literal["quicklook", "safe", "netcdf"] | None = None
    urls: list[str] | None = None
    plan: SafePlan | None = None
    url: str | None = None
    variables: list[str] | None = None
    tool_id: str | None = None
    job_id: str | None = None
    status_url: str | None = None
    status: str | None = None
    datasets: list[dict[str, Any]] | None = Field(default=None, description="the rasters the job registered")
    services: Services | None = None


def record_answer(endpoint: str, record: CswRecord, **planned: object) -> NbsAnswer:
    """What every NBS route answers about the record (its platform's profile included), with what it planned."""
    return NbsAnswer(identifier=record.identifier, endpoint=endpoint, platform=record.platform,
                     profile=profile_for(record.platform), record=record, **planned)


def service_metadata(session: Session, *, base_url: str, dataset_ids: list[str]) -> Services:
    """georeg's own WMS/WFS endpoints and the layers of ``dataset_ids`` with their styles."""
    base = base_url.rstrip("/")
    found = session.exec(select(Raster).where(Raster.public_id.in_(dataset_ids))).all() if dataset_ids else []
    layers = []
    for raster in sorted(found, key=lambda r: dataset_ids.index(r.public_id)):
        choices = styles.available_styles(raster)
        layers.append(Layer(
            name=raster.public_id, title=raster.title, styles=[style.id for style in choices],
            default_style=next((style.id for style in choices if style.default), None),
            bbox=[raster.minx, raster.miny, raster.maxx, raster.maxy],
            tiles=f"{base}/datasets/{raster.public_id}/tiles/{{z}}/{{x}}/{{y}}.png",
        ))
    return Services(
        wms=WmsService(url=f"{base}/wms", version="1.3.0",
                       capabilities_url=f"{base}/wms?service=WMS&request=GetCapabilities&version=1.3.0",
                       layers=layers),
        wfs=WfsService(url=f"{base}/wfs", version="2.0.0",
                       capabilities_url=f"{base}/wfs?service=WFS&request=GetCapabilities&version=2.0.0",
                       feature_type=FEATURE_TYPE,
                       get_feature_url=f"{base}/wfs?service=WFS&version=2.0.0&request=GetFeature"
                                       f"&typeNames={FEATURE_TYPE}&outputFormat=application/json"),
    )
