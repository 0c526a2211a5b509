"""Parameters, plans and outputs of Sentinel SAFE processing (pydantic, JSON-ready)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from rasterio.crs import CRS
from rasterio.errors import CRSError

S2_COMBINATIONS: dict[str, tuple[str, str, str]] = {
    "true_color_vegetation": ("B04", "B03", "B02"),
    "false_color_glacier": ("B12", "B8A", "B03"),
    "false_color_vegetation": ("B8A", "B04", "B03"),
}
S1_PRODUCT_PREFIX = "amplitude_"
EPSG_CODE = re.compile(r"^EPSG:\d{4,6}$")


class SafeParameters(BaseModel):
    """Processing recipe; the defaults are the NBS quicklook choices."""

    model_config = ConfigDict(extra="forbid")

    target_crs: str = Field(default="EPSG:32661", description="S1: CRS the swath is warped to (EPSG:<code>)")
    resolution: float = Field(default=40.0, gt=0, le=100_000, description="S1: pixel size in target CRS units")
    s1_resampling: Literal["nearest", "bilinear", "cubic", "average"] = Field(
        default="average", description="S1: warp resampling (thin-plate spline transform from the GCPs)")
    s1_percentiles: tuple[float, float] = Field(default=(1.0, 99.0), description="S1: dB stretch percentiles")
    s2_percentiles: tuple[float, float] = Field(default=(0.5, 99.5), description="S2: per-band stretch percentiles")
    gamma: float = Field(default=0.7, gt=0, le=10,
                         description="S2: gamma, applied as x ** (1 / gamma) after the stretch")
    s2_resampling: Literal["nearest", "bilinear", "cubic"] = Field(
        default="bilinear", description="S2: resampling of 20 m bands to the 10 m grid")
    stats_max_size: int = Field(default=2048, ge=0, le=100_000, description=(
        "S2: percentiles come from a read of each band decimated by a power of two to at most this many pixels "
        "a side (a JPEG 2000 resolution level, so it is cheap); 0 reads full resolution"))
    compress: Literal["deflate", "lzw", "zstd", "none"] = "deflate"

    @field_validator("target_crs")
    @classmethod
    def _epsg(cls, value: str) -> str:
        value = value.strip().upper()
        if not EPSG_CODE.match(value):
            raise ValueError("target_crs must be 'EPSG:<code>'")
        try:
            crs = CRS.from_user_input(value)
        except CRSError as exc:
            raise ValueError(f"unknown CRS {value}") from exc
        if not crs.is_projected:
            raise ValueError(f"{value} is not a projected CRS (the resolution is in metres)")
        return value

    @field_validator("s1_percentiles", "s2_percentiles")
    @classmethod
    def _percentiles(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0 <= low < high <= 100:
            raise ValueError("percentiles must satisfy 0 <= low < high <= 100")
        return value


def parameters_from_profile(processing: dict, *, family: str) -> SafeParameters:
    """Processing parameters from a platform profile's ``processing`` settings (core/profiles.py); keys the
    recipe does not use are ignored."""
    values: dict = {}
    if family == "S1":
        values.update({key: processing[key] for key in ("target_crs", "resolution") if key in processing})
    if "stretch_percentiles" in processing:
        values["s1_percentiles" if family == "S1" else "s2_percentiles"] = tuple(processing["stretch_percentiles"])
    if family == "S2" and "gamma" in processing:
        values["gamma"] = processing["gamma"]
    return SafeParameters(**values)


class PlannedOutput(BaseModel):
    """One raster a run will write."""

    name: str = Field(description="file name of the COG")
    product: str = Field(description="amplitude_vv ... or an S2 combination name")
    title: str
    bands: list[str] = Field(description="polarisation (S1) or S2 bands in R, G, B order")
    inputs: list[str] = Field(description="SAFE members read, relative to the .SAFE folder")
    granule: str | None = None
    crs: str | None = None
    resolution: float | None = None


class SafePlan(BaseModel):
    """What processing a SAFE will read and write (``prepare`` builds it without side effects)."""

    product: str
    product_type: Literal["S1_GRD", "S2_L1C", "S2_L2A"]
    platform: str
    acquired_at: datetime
    safe_path: str
    archive: Literal["zip", "directory"]
    inputs: list[str]
    outputs: list[PlannedOutput]
    parameters: SafeParameters

    @model_validator(mode="after")
    def _unique_outputs(self) -> SafePlan:
        names = [output.name for output in self.outputs]
        if len(names) != len(set(names)):
            raise ValueError("output names must be unique")
        return self


class BandStretch(BaseModel):
    band: str
    low: float
    high: float
    unit: str = Field(description="'dB' (S1) or 'DN' (S2 digital numbers)")


class SafeOutput(BaseModel):
    """A written COG and what it holds."""

    name: str
    path: str
    product: str
    title: str
    bands: list[str]
    band_layout: str = Field(description="'gray+alpha' (S1) or 'rgb' with nodata 0 (S2)")
    crs: str
    epsg: int | None
    width: int
    height: int
    resolution: tuple[float, float]
    bounds: tuple[float, float, float, float]
    stretch: list[BandStretch]
    size: int
