"""``point-cloud-grid``: grid a point cloud (LAS/LAZ, XYZ text, NetCDF x/y/z) under the mounted roots into a
Cloud-Optimized GeoTIFF and register it (the Datasets API's ``/datasets/jobs/from-point-cloud-config`` and
``/datasets/jobs/from-nc-config``); the parameters are the routes' config
(:class:`~georeg.core.pointclouds.schemas.PointCloudGridConfig`)."""

from __future__ import annotations

from sqlmodel import Session

from georeg.core.models import Permission
from georeg.core.pointclouds.schemas import PointCloudGridConfig
from georeg.core.pointclouds.service import grid_point_cloud
from georeg.core.tasks.model import Tool, ToolContext, ToolOutcome


def run_point_cloud_grid(context: ToolContext, params: PointCloudGridConfig) -> ToolOutcome:
    with Session(context.engine, expire_on_commit=False) as session:
        gridded = grid_point_cloud(session, context.settings, params, progress=context.progress)
    context.logger.info("%s: %d points gridded (%s, %d x %d cells), dataset %s%s", params.source, gridded.points,
                        params.output_type, gridded.width, gridded.height, gridded.dataset_id,
                        f" (duplicate of {gridded.duplicate_of})" if gridded.duplicate_of else "")
    return ToolOutcome(result=gridded.as_result())


POINT_CLOUD_GRID = Tool(
    id="point-cloud-grid", version="1.0.0", title="Raster from a point cloud",
    description="Grid a LAS/LAZ, XYZ or NetCDF x/y/z point cloud under the mounted roots (min, max, mean, idw or "
                "count per cell) into a Cloud-Optimized GeoTIFF and register it.",
    parameters=PointCloudGridConfig, run=run_point_cloud_grid, required_access=Permission.write, scope="registry",
)
