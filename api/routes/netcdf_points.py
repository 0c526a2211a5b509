"""Datasets API point queries of NetCDF/OPeNDAP data: against the NetCDF source linked to a registered raster
(``/datasets/{dataset_id}/query-point(s)``) or an arbitrary URL on an allowed host (``/datasets/query-point(s)``).
The engine is :mod:`georeg.core.netcdf.points`; these routes are blocking (netCDF-C), so plain ``def``."""

from __future__ import annotations

from fastapi import APIRouter

from georeg.api.deps import RasterId, SessionDep, SettingsDep
from georeg.api.schemas import COMMON_ERRORS, errors
from georeg.core.netcdf import points
from georeg.core.netcdf.points import (
    PointQuery,
    PointsQuery,
    PointsValues,
    PointValues,
    UrlPointQuery,
    UrlPointsQuery,
)

router = APIRouter(prefix="/datasets", tags=["datasets (NetCDF point queries)"],
                   responses={**COMMON_ERRORS, **errors(400, 403, 404, 413, 502, 504)})


@router.post("/query-point")
def query_url_point(body: UrlPointQuery, settings: SettingsDep) -> PointValues:
    """Values of a NetCDF/OPeNDAP ``url`` at one lon/lat (400 ``point_outside_grid`` when it misses the grid)."""
    return points.query_url_point(settings, body)


@router.post("/query-points")
def query_url_points(body: UrlPointsQuery, settings: SettingsDep) -> PointsValues:
    """Values of a NetCDF/OPeNDAP ``url`` at many points, in request order (null outside the grid)."""
    return points.query_url(settings, body)


@router.post("/{dataset_id}/query-point")
def query_dataset_point(dataset_id: RasterId, body: PointQuery, session: SessionDep,
                        settings: SettingsDep) -> PointValues:
    """Values of the dataset's linked NetCDF source at one lon/lat (default variables: the one the raster was
    written from, else its platform profile's, S1: ``Amplitude_VH``, ``Amplitude_VV``)."""
    return points.query_dataset_point(session, settings, public_id=dataset_id, request=body)


@router.post("/{dataset_id}/query-points")
def query_dataset_points(dataset_id: RasterId, body: PointsQuery, session: SessionDep,
                         settings: SettingsDep) -> PointsValues:
    """Values of the dataset's linked NetCDF source at many points, in request order."""
    return points.query_dataset(session, settings, public_id=dataset_id, request=body)
