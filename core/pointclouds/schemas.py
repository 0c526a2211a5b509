"""The point-cloud grid config (sync routes and the ``point-cloud-grid`` tool share it) and its answer."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from georeg.core.rasters.schemas import RegisteredRaster

OutputType = Literal["min", "max", "mean", "idw", "count"]
DEFAULT_NODATA = -9999.0
DEFAULT_IDW_POWER = 1.0
MAX_RADIUS_CELLS = 8  # idw visits every cell within the radius of each point: bounded work per point


class PointCloudGridConfig(BaseModel):
    """How to grid a point cloud into a raster.

    Cell (row i, column j) covers ``[minx + j*res, minx + (j+1)*res) x (maxy - (i+1)*res, maxy - i*res]``, with
    ``width = ceil((maxx - minx) / res)`` and ``height = ceil((maxy - miny) / res)`` (at least 1): the grid is
    anchored at the bounds' top-left corner and may reach past ``maxx``/below ``miny`` by less than a cell. Points
    inside the bounds (edges included) are gridded; points on the right edge ``x == maxx`` fall in the last
    column and points on the bottom edge ``y == miny`` in the last row even when the edge is a cell boundary."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1, max_length=4096,
                        description="a LAS/LAZ file, an XYZ text file (CSV; header optional, comma, semicolon or "
                                    "whitespace separated) or a NetCDF file with x/y/z variables, under "
                                    "GEOREG_MOUNT_ROOTS (relative paths are taken from the first root)")
    crs: str = Field(min_length=1, max_length=20_000,
                     description="CRS of the points (and of the raster): anything pyproj understands, e.g. "
                                 "'EPSG:25833' (a compound CRS keeps its horizontal part)")
    resolution: float = Field(gt=0, description="cell size, in CRS units")
    bounds: list[float] | None = Field(default=None, min_length=4, max_length=4,
                                       description="[minx, miny, maxx, maxy] of the grid (default: the points' "
                                                   "extent; LAS/LAZ: the header's)")
    output_type: OutputType = Field(default="mean", description="per-cell value: min, max or mean of the points' z, "
                                                                "idw (inverse distance weighting) or the point count")
    nodata: float | None = Field(default=None, description=f"value of cells without points (default "
                                                           f"{DEFAULT_NODATA:g}); not for count")
    radius: float | None = Field(default=None, gt=0, description="idw only: points within this distance of a cell "
                                                                 "centre count (default resolution * sqrt(2), "
                                                                 f"at most {MAX_RADIUS_CELLS} * resolution)")
    power: float = Field(default=DEFAULT_IDW_POWER, gt=0, le=16,
                         description=f"idw only: weight = 1 / distance^power (default {DEFAULT_IDW_POWER:g})")
    title: str | None = Field(default=None, max_length=512)
    x_variable: str = Field(default="x", min_length=1, max_length=256, description="NetCDF only: the x variable "
                                                                                  "(1-D; y and z alike)")
    y_variable: str = Field(default="y", min_length=1, max_length=256, description="NetCDF only: the y variable")
    z_variable: str = Field(default="z", min_length=1, max_length=256, description="NetCDF only: the z variable")

    @field_validator("resolution", "nodata", "radius", "power")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @field_validator("bounds")
    @classmethod
    def _ordered(cls, value: list[float] | None) -> list[float] | None:
        if value is not None:
            if not all(math.isfinite(v) for v in value):
                raise ValueError("bounds must be finite numbers")
            if not (value[0] < value[2] and value[1] < value[3]):
                raise ValueError("bounds must be [minx, miny, maxx, maxy] with minx < maxx and miny < maxy")
        return value

    @model_validator(mode="after")
    def _applies(self) -> PointCloudGridConfig:
        if self.output_type == "count" and self.nodata is not None:
            raise ValueError("nodata does not apply to output_type 'count' (empty cells are 0)")
        if self.output_type != "idw" and self.radius is not None:
            raise ValueError("radius applies to output_type 'idw' only")
        if self.radius is not None and self.radius > MAX_RADIUS_CELLS * self.resolution:
            raise ValueError(f"radius must be at most {MAX_RADIUS_CELLS} * resolution")
        return self

    @property
    def effective_nodata(self) -> float | None:
        return None if self.output_type == "count" else (DEFAULT_NODATA if self.nodata is None else self.nodata)

    @property
    def effective_radius(self) -> float:
        return self.radius if self.radius is not None else self.resolution * math.sqrt(2)


class GriddedRaster(RegisteredRaster):
    """The registered raster (``duplicate_of`` set when identical bytes were registered already) and how it was
    gridded."""

    output_type: OutputType
    points: int = Field(description="points gridded (inside the bounds)")
    points_outside: int = Field(description="points read but outside the bounds (or not finite)")
    cells_with_data: int
