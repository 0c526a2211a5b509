"""Built-in SLD 1.0 styles of registered rasters (``/styles``): anonymous, like ``GET /datasets/{id}``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from georeg.api.deps import RasterId, SessionDep
from georeg.api.schemas import COMMON_ERRORS, errors
from georeg.core.rasters import service as rasters
from georeg.core.rasters import styles

router = APIRouter(tags=["styles"], responses={**COMMON_ERRORS, **errors(404)})


@router.get("/styles/{dataset_id}")
def list_styles(dataset_id: RasterId, session: SessionDep) -> styles.StyleListing:
    """The styles available for a dataset (``rgb`` only with 3+ bands), with the default flagged."""
    return styles.style_listing(rasters.get_raster(session, public_id=dataset_id))


@router.get("/styles/{dataset_id}/{style_id}.sld", response_class=Response,
            responses={200: {"content": {styles.SLD_MEDIA_TYPE: {}}, "description": "An SLD 1.0 document"}})
def get_style(dataset_id: RasterId, style_id: Annotated[str, Path(description="one of GET /styles/{dataset_id}")],
              session: SessionDep) -> Response:
    """One built-in style as SLD 1.0, contrast limits taken from the dataset's band statistics."""
    raster = rasters.get_raster(session, public_id=dataset_id)
    return Response(styles.render_sld(raster, style_id), media_type=styles.SLD_MEDIA_TYPE)
