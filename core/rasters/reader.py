"""Raster inspection with rasterio: a context-managed reader returning pydantic models."""

from __future__ import annotations

import math
from pathlib import Path
from types import TracebackType

import numpy as np
import rasterio
from pydantic import BaseModel
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.errors import RasterioError
from rasterio.io import DatasetReader
from rasterio.transform import GCPTransformer
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from georeg.core.errors import InvalidRaster


def limit_gdal_cache(megabytes: int) -> None:
    """Cap GDAL's process-wide block cache (by default 5 % of RAM: a decimated read of a 1 GB raster without
    overviews would otherwise keep ~1 GB of blocks resident until the file is closed)."""
    rasterio.env.set_gdal_config("GDAL_CACHEMAX", megabytes * 1024 * 1024)


def decimated_reads() -> rasterio.Env:
    """GDAL options for opening a raster that is read decimated as a whole (statistics, thumbnails): uncompressed
    GeoTIFFs are then subsampled straight from the file (GDAL reads the option at open) instead of filling the block
    cache with blocks nobody reads again."""
    return rasterio.Env(GTIFF_DIRECT_IO="YES")


class BandStatistics(BaseModel):
    """One band's statistics from a decimated read (only ``band`` and ``valid`` when no value is valid)."""

    band: int
    valid: int
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    p2: float | None = None
    p98: float | None = None


class BandInfo(BaseModel):
    band: int
    description: str | None = None
    units: str | None = None
    colorinterp: str | None = None


class RasterInfo(BaseModel):
    driver: str
    width: int
    height: int
    count: int
    dtype: str
    nodata: float | None
    crs_wkt: str | None
    epsg: int | None
    bounds: list[float] | None
    wgs84_bounds: list[float] | None
    has_gcps: bool
    footprint: dict | None

    @property
    def crs_label(self) -> str | None:
        """``EPSG:<code>`` when the CRS has one, else its WKT."""
        return f"EPSG:{self.epsg}" if self.epsg else self.crs_wkt

    @property
    def georeferenced(self) -> bool:
        return self.crs_wkt is not None


def normalize_lon_bounds(bounds: list[float]) -> list[float]:
    """Longitudes wrapped into [-180, 180]; a box crossing the antimeridian comes back with minx > maxx."""
    minx, miny, maxx, maxy = bounds
    if maxx - minx >= 360:
        return [-180.0, miny, 180.0, maxy]
    wrapped_min = ((minx + 180.0) % 360.0) - 180.0
    wrapped_max = ((maxx + 180.0) % 360.0) - 180.0
    if wrapped_max == -180.0 and maxx > minx:
        wrapped_max = 180.0
    return [wrapped_min, miny, wrapped_max, maxy]


def _ring(minx: float, miny: float, maxx: float, maxy: float) -> list[list[float]]:
    return [[minx, miny], [maxx, miny], [maxx, maxy], [minx, maxy], [minx, miny]]


def footprint_polygon(bounds: list[float]) -> dict:
    """GeoJSON geometry for WGS84 ``[minx, miny, maxx, maxy]``; ``minx > maxx`` means the box crosses
    the antimeridian and becomes a MultiPolygon split at 180° (RFC 7946, section 3.1.9)."""
    minx, miny, maxx, maxy = bounds
    if minx > maxx:
        return {"type": "MultiPolygon",
                "coordinates": [[_ring(minx, miny, 180.0, maxy)], [_ring(-180.0, miny, maxx, maxy)]]}
    return {"type": "Polygon", "coordinates": [_ring(minx, miny, maxx, maxy)]}


def gcp_only(ds: DatasetReader) -> bool:
    """Whether the dataset is georeferenced by ground control points alone (no geotransform)."""
    gcps, gcp_crs = ds.gcps
    return bool(gcps) and gcp_crs is not None and (ds.crs is None or ds.transform.is_identity)


def native_crs(ds: DatasetReader) -> CRS | None:
    """The CRS pixel positions map to: the dataset's, or its GCPs' for a GCP-only raster."""
    return ds.gcps[1] if gcp_only(ds) else ds.crs


def _gcp_points(ds: DatasetReader) -> tuple[list[GroundControlPoint], bool]:
    """The GCPs, with longitudes unwrapped past 180 when GCPs in a geographic CRS straddle the antimeridian (a
    polynomial fitted across the jump from 180 to -180 is nonsense); the flag says whether they were."""
    gcps, gcp_crs = ds.gcps
    xs = [p.x for p in gcps]
    if not (gcp_crs.is_geographic and max(xs) - min(xs) > 180):
        return gcps, False
    return [GroundControlPoint(row=p.row, col=p.col, x=p.x + 360.0 if p.x < 0 else p.x, y=p.y, z=p.z, id=p.id)
            for p in gcps], True


def pixel_at(ds: DatasetReader, x: float, y: float) -> tuple[int, int]:
    """(row, col) of the pixel holding native-CRS point (x, y); GCP-only rasters go through GDAL's GCP
    polynomial transformer (the one warping uses), others through the geotransform."""
    if not gcp_only(ds):
        return ds.index(x, y)
    gcps, unwrapped = _gcp_points(ds)
    with GCPTransformer(gcps) as transformer:
        rows, cols = transformer.rowcol([x + 360.0 if unwrapped and x < 0 else x], [y])
    return int(rows[0]), int(cols[0])


def outline_bounds(ds: DatasetReader, points_per_edge: int = 21) -> list[float]:
    """Native-CRS bounds of a GCP-only raster: its pixel outline, densified, through the GCP transformer (across
    the antimeridian, longitudes run past 180)."""
    steps = np.linspace(0.0, 1.0, points_per_edge)
    rows = np.concatenate([np.zeros_like(steps), steps, np.ones_like(steps), steps]) * ds.height
    cols = np.concatenate([steps, np.ones_like(steps), steps, np.zeros_like(steps)]) * ds.width
    with GCPTransformer(_gcp_points(ds)[0]) as transformer:
        xs, ys = transformer.xy(rows.tolist(), cols.tolist(), offset="ul")
    return [float(min(xs)), float(min(ys)), float(max(xs)), float(max(ys))]


class RasterReader:
    """``with RasterReader(path) as reader: info = reader.info()``; unreadable files raise InvalidRaster."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._dataset = None

    def __enter__(self) -> RasterReader:
        try:
            with decimated_reads():
                self._dataset = rasterio.open(self.path)
        except RasterioError as exc:
            raise InvalidRaster(f"not a readable raster: {_first_line(exc)}") from exc
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._dataset is not None:
            self._dataset.close()

    def verify_readable(self) -> None:
        """Read the first and last blocks so truncated files are caught without a full read."""
        ds = self._dataset
        try:
            block_h, block_w = ds.block_shapes[0]
            ds.read(1, window=Window(0, 0, min(block_w, ds.width), min(block_h, ds.height)))
            last_row = ((ds.height - 1) // block_h) * block_h
            last_col = ((ds.width - 1) // block_w) * block_w
            ds.read(
                ds.count,
                window=Window(last_col, last_row, min(block_w, ds.width - last_col),
                              min(block_h, ds.height - last_row)),
            )
        except (RasterioError, ValueError) as exc:
            raise InvalidRaster(f"raster data cannot be read (truncated or corrupt): {_first_line(exc)}") from exc

    def band_statistics(self, max_size: int = 1024) -> list[BandStatistics]:
        """Per-band min/max/mean/std and 2/98 % percentiles from a decimated read (overviews when present)."""
        ds = self._dataset
        scale = max(ds.width, ds.height) / max_size
        shape = (ds.height, ds.width)
        if scale > 1:
            shape = (max(1, round(ds.height / scale)), max(1, round(ds.width / scale)))
        stats = []
        for band in range(1, ds.count + 1):
            try:
                data = ds.read(band, out_shape=shape, masked=True)
            except RasterioError as exc:
                raise InvalidRaster(f"raster data cannot be read: {_first_line(exc)}") from exc
            values = data.compressed()
            if values.dtype.kind == "f":
                values = values[np.isfinite(values)]
            if values.size == 0:
                stats.append(BandStatistics(band=band, valid=0))
                continue
            p2, p98 = np.percentile(values, [2, 98])
            stats.append(BandStatistics(
                band=band, valid=int(values.size), min=float(values.min()), max=float(values.max()),
                mean=float(values.mean(dtype="float64")), std=float(values.std(dtype="float64")),
                p2=float(p2), p98=float(p98),
            ))
        return stats

    def band_descriptions(self) -> list[BandInfo]:
        ds = self._dataset
        return [
            BandInfo(band=i + 1, description=ds.descriptions[i], units=ds.units[i] if ds.units else None,
                     colorinterp=ds.colorinterp[i].name)
            for i in range(ds.count)
        ]

    def describe(self) -> RasterDescription:
        """Info, band statistics and band descriptions of a registrable raster (georeferenced, readable)."""
        self.verify_readable()
        info = self.info()
        if not info.georeferenced or info.bounds is None:
            raise InvalidRaster("the raster has no CRS and geotransform (or GCPs); it cannot be registered")
        return RasterDescription(info=info, statistics=self.band_statistics(), bands=self.band_descriptions())

    def info(self) -> RasterInfo:
        ds = self._dataset
        crs = native_crs(ds)
        gcps = ds.gcps[0]
        bounds = wgs84 = footprint = None
        if gcp_only(ds):
            try:
                bounds = outline_bounds(ds)
            except RasterioError as exc:
                raise InvalidRaster(f"the raster's GCPs cannot be used: {_first_line(exc)}") from exc
        elif ds.crs is not None and not ds.transform.is_identity:
            bounds = [float(v) for v in ds.bounds]
        if crs is not None and bounds is not None:
            try:
                wgs84 = [float(v) for v in transform_bounds(crs, "EPSG:4326", *bounds, densify_pts=21)]
            except RasterioError:
                wgs84 = None
            if wgs84 and all(math.isfinite(v) for v in wgs84):
                wgs84 = normalize_lon_bounds(wgs84)
                footprint = footprint_polygon(wgs84)
            else:
                wgs84 = None
        return RasterInfo(
            driver=ds.driver,
            width=ds.width,
            height=ds.height,
            count=ds.count,
            dtype=ds.dtypes[0],
            nodata=ds.nodata,
            crs_wkt=crs.to_wkt() if crs else None,
            epsg=crs.to_epsg() if crs else None,
            bounds=bounds,
            wgs84_bounds=wgs84,
            has_gcps=bool(gcps),
            footprint=footprint,
        )


class RasterDescription(BaseModel):
    """What registration records of a raster file."""

    info: RasterInfo
    statistics: list[BandStatistics]
    bands: list[BandInfo]


def describe_raster(path: Path) -> RasterDescription:
    """Open, verify and describe a registrable raster; :class:`InvalidRaster` otherwise."""
    with RasterReader(path) as reader:
        return reader.describe()


def inspect_raster(path: Path) -> RasterInfo:
    """Open, verify and describe a raster file."""
    with RasterReader(path) as reader:
        reader.verify_readable()
        return reader.info()


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
