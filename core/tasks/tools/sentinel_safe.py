"""``sentinel-safe``: process a Sentinel SAFE archive from the mounted NBS archive roots into COGs and register
them with source ``csw`` under the CSW record's identifier.

S1 GRD: amplitude quicklooks per polarisation; S2 L1C/L2A: RGB combinations (see :mod:`georeg.core.sentinel`).
The processing defaults come from the platform's profile (core/profiles.py) unless ``processing`` is given.
All or nothing: every output is written and validated before the first registration, and registrations made
by a run that then fails are removed again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlmodel import Session

from georeg.core.catalog.csw import CswRecord
from georeg.core.config import Settings
from georeg.core.errors import GeoregError, InvalidInput, InvalidRaster
from georeg.core.models import Permission
from georeg.core.rasters import service as rasters
from georeg.core.rasters.profiles import profile_for
from georeg.core.sentinel import (
    SafeOutput,
    SafeParameters,
    SafePlan,
    execute,
    find_safe,
    parameters_from_profile,
    parse_product,
    prepare,
)
from georeg.core.storage import StoredFile, sha256_file
from georeg.core.tasks.model import Tool, ToolContext, ToolOutcome

PROCESSING_SHARE = 90.0


class SentinelSafeParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    identifier: str = Field(min_length=1, max_length=500, description="CSW record identifier the outputs are "
                                                                      "registered under")
    product: str | None = Field(default=None, max_length=200, description=(
        "product name; its SAFE is located under GEOREG_SAFE_ROOTS in the NBS layout "
        "<PLATFORM>/<YYYY>/<MM>/<DD>/[IW|EW/]<PRODUCT>.zip (or .SAFE)"))
    safe_path: str | None = Field(default=None, max_length=4096, description=(
        "explicit <PRODUCT>.zip or <PRODUCT>.SAFE path under GEOREG_SAFE_ROOTS (instead of product)"))
    title: str | None = Field(default=None, max_length=500, description="record title (kept as metadata)")
    platform: str | None = Field(default=None, pattern=r"^S[1-6][A-D]?$|^S5P$", description="record platform")
    acquired_at: datetime | None = Field(default=None, description="record acquisition time")
    endpoint: str | None = Field(default=None, max_length=2000, description="the CSW the record came from")
    products: list[str] | None = Field(default=None, max_length=10, description=(
        "S1: polarisations (VV, VH, HH, HV); S2: true_color_vegetation, false_color_glacier, "
        "false_color_vegetation; all by default"))
    processing: SafeParameters | None = Field(default=None, description="recipe; the platform profile's by default")

    @model_validator(mode="after")
    def _one_source(self) -> SentinelSafeParams:
        if bool(self.product) == bool(self.safe_path):
            raise ValueError("give exactly one of 'product' and 'safe_path'")
        return self


def requested_products(record: CswRecord, products: list[str] | None, variables: list[str] | None) -> list[str] | None:
    """Products to make: the caller's, else S1 polarisations from the variables; by default the profile's
    variables that the product has (all polarisations when it has none of them, e.g. HH/HV of a 1SDH)."""
    if products:
        return products
    profile = profile_for(record.platform)
    if profile.family != "S1":
        return None
    if variables:
        return [name.removeprefix("Amplitude_").upper() for name in variables]
    defaults = [name.removeprefix("Amplitude_").upper() for name in profile.point_query_variables]
    try:
        available = parse_product(record.title or "").polarisations
    except GeoregError:
        return defaults
    return [pol for pol in defaults if pol in available] or None


def params_for_record(endpoint: str, record: CswRecord, *, products: list[str] | None, variables: list[str] | None,
                      processing: SafeParameters | None) -> SentinelSafeParams:
    """The parameters that process a CSW record's SAFE (400 ``invalid_safe_request`` when it cannot be)."""
    try:
        return SentinelSafeParams(
            identifier=record.identifier, product=record.title or record.identifier, title=record.title,
            platform=record.platform, acquired_at=record.acquired_at, endpoint=endpoint,
            products=requested_products(record, products, variables), processing=processing,
        )
    except ValidationError as exc:
        raise InvalidInput(f"record {record.identifier!r} cannot be processed as a SAFE: "
                           f"{exc.errors()[0]['msg']}", code="invalid_safe_request") from exc


def plan_for(settings: Settings, params: SentinelSafeParams) -> SafePlan:
    """Locate the SAFE and plan its processing (no side effects): what ``mode=prepare`` answers."""
    path = find_safe(settings.safe_roots, product=params.product, safe_path=params.safe_path)
    parsed = parse_product(path.name)
    processing = params.processing or parameters_from_profile(profile_for(parsed.platform).processing,
                                                              family=parsed.family)
    return prepare(path, products=params.products, parameters=processing)


@dataclass
class _Produced:
    """A finished output presented to :func:`rasters.register_upload` like a finished upload."""

    path: Path
    size: int
    sha256: str

    def finish(self, destination: Path) -> StoredFile:
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path, destination)
        return StoredFile(path=destination, size=self.size, sha256=self.sha256)


def _metadata(params: SentinelSafeParams, plan: SafePlan, output: SafeOutput, profile: str) -> dict:
    return {
        "identifier": params.identifier, "title": params.title, "platform": params.platform or plan.platform,
        "profile": profile, "acquired_at": (params.acquired_at or plan.acquired_at).isoformat(),
        "csw_endpoint": params.endpoint, "sentinel_product": plan.product, "product_type": plan.product_type,
        "output": output.product, "bands": output.bands, "band_layout": output.band_layout,
        "stretch": [stretch.model_dump() for stretch in output.stretch],
        "processing": plan.parameters.model_dump(mode="json"), "safe": Path(plan.safe_path).name,
    }


def register_outputs(context: ToolContext, params: SentinelSafeParams, plan: SafePlan,
                     outputs: list[SafeOutput]) -> list[dict]:
    """Register every output (source ``csw``); all of them or, on failure, none of the new ones."""
    descriptions = []
    for output in outputs:
        try:
            descriptions.append(rasters.describe_raster(Path(output.path)))
        except InvalidRaster as exc:
            raise InvalidRaster(f"{output.name} came out unregistrable: {exc.message}") from exc
    profile = profile_for(params.platform or plan.platform).id
    registered: list[dict] = []
    with Session(context.engine, expire_on_commit=False) as session:
        try:
            for output, description in zip(outputs, descriptions, strict=True):
                size, sha256 = sha256_file(Path(output.path))
                registration = rasters.register_upload(
                    session, settings=context.settings, upload=_Produced(Path(output.path), size, sha256),
                    filename=output.name, title=output.title, metadata=_metadata(params, plan, output, profile),
                    source="csw", description=description)
                registered.append(registration.as_result(product=output.product, product_bands=output.bands))
                context.progress(PROCESSING_SHARE + (100 - PROCESSING_SHARE) * len(registered) / len(outputs),
                                 "registering", output.name)
        except BaseException:
            session.rollback()
            for done in registered:
                if done["created"]:
                    rasters.delete_raster(session, context.settings,
                                          rasters.get_raster(session, public_id=done["dataset_id"]))
            raise
    return registered


def run(context: ToolContext, params: SentinelSafeParams) -> ToolOutcome:
    plan = plan_for(context.settings, params)
    context.logger.info("%s (%s, %s): %d output(s) from %s", plan.product, plan.product_type, plan.archive,
                        len(plan.outputs), plan.safe_path)

    def progress(percent: float, phase: str, message: str) -> None:
        context.progress(percent * PROCESSING_SHARE / 100, phase, message)

    outputs = execute(plan, context.work_dir / "outputs", progress)
    for output in outputs:
        context.logger.info("%s: %dx%d %s, %d bytes", output.name, output.width, output.height, output.crs, output.size)
    datasets = register_outputs(context, params, plan, outputs)
    return ToolOutcome(result={
        "identifier": params.identifier, "product": plan.product, "product_type": plan.product_type,
        "platform": plan.platform, "safe": Path(plan.safe_path).name, "archive": plan.archive,
        "parameters": plan.parameters.model_dump(mode="json"), "datasets": datasets,
    })


SENTINEL_SAFE = Tool(
    id="sentinel-safe", version="1.0.0", title="Process a Sentinel SAFE",
    description="Locate a Sentinel-1 GRD or Sentinel-2 L1C/L2A SAFE under the archive roots, write S1 amplitude "
                "quicklooks or S2 RGB combinations as COGs and register them under the CSW record.",
    parameters=SentinelSafeParams, run=run, required_access=Permission.write, scope="registry",
)
