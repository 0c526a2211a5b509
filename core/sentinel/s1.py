"""Sentinel-1 GRD amplitude quicklooks: one gray + alpha COG per polarisation.

Recipe (MET Norway's): the measurement TIFF, georeferenced by its GCPs (the annotation's geolocation grid
when the TIFF carries none), is warped to the target CRS and resolution with a thin-plate spline; amplitudes
become dB (20 log10 a) and are stretched linearly between the 1st and 99th percentiles (of the warped valid
pixels) to 1..255; 0 stays no data and band 2 is an alpha band (255 valid, 0 no data).

The warp goes into a uint16 array on the target grid (2 bytes a pixel: ~50 MB for a whole IW GRD at 40 m);
targets above ``IN_MEMORY_PIXELS`` warp into an uncompressed scratch GTiff instead (GDAL works in chunks). The
stretch is a 65536-entry lookup table applied strip by strip into a scratch GTiff the COG is copied from.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
import rasterio
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import RasterioError
from rasterio.warp import calculate_default_transform, reproject

from georeg.core.errors import InvalidInput
from georeg.core.sentinel.archive import SafeArchive
from georeg.core.sentinel.errors import InvalidSafe, MissingBand
from georeg.core.sentinel.imaging import (
    amplitude_db,
    check_output_size,
    describe_written,
    histogram_percentiles,
    publish_cog,
    scratch_profile,
    staging,
    stretch_lut,
    strip_histogram,
    strips,
)
from georeg.core.sentinel.models import S1_PRODUCT_PREFIX, BandStretch, PlannedOutput, SafeOutput, SafeParameters
from georeg.core.sentinel.products import ProductName, select_products

MEASUREMENT = re.compile(r"measurement/(?P<stem>s1[a-d]-[a-z0-9]+-grd-(?P<pol>hh|hv|vv|vh)-[a-z0-9-]+)\.tiff?")
POLARISATIONS = ("VV", "VH", "HH", "HV")
TPS = {"SRC_METHOD": "GCP_TPS"}
IN_MEMORY_PIXELS = 100_000_000


def _selected(requested: list[str] | None, parsed: ProductName) -> list[str]:
    def check(raw: str, value: str) -> None:
        if value not in POLARISATIONS:
            raise InvalidInput(f"unknown Sentinel-1 product {raw!r}; use a polarisation ({', '.join(POLARISATIONS)}) "
                               f"or amplitude_<pol>", code="unknown_product")
        if value not in parsed.polarisations:
            raise InvalidInput(f"{parsed.name} has no {value} polarisation (it has {', '.join(parsed.polarisations)})",
                               code="unknown_product")

    return select_products(requested, default=parsed.polarisations, check=check,
                           normalize=lambda raw: raw.strip().upper().removeprefix(S1_PRODUCT_PREFIX.upper()))


def plan_outputs(archive: SafeArchive, parsed: ProductName, requested: list[str] | None,
                 params: SafeParameters) -> list[PlannedOutput]:
    """One quicklook per selected polarisation (all of the product's by default); a polarisation the product
    name promises but whose measurement is absent raises :class:`MissingBand`."""
    found = {match["pol"].upper(): (member, match["stem"]) for member, match in archive.matching(MEASUREMENT)}
    outputs = []
    for polarisation in _selected(requested, parsed):
        if polarisation not in found:
            raise MissingBand(f"{parsed.name}: the {polarisation} measurement (measurement/*-{polarisation.lower()}-*"
                              f".tiff) is missing", code="missing_measurement")
        member, stem = found[polarisation]
        annotation = f"annotation/{stem}.xml"
        product = f"{S1_PRODUCT_PREFIX}{polarisation.lower()}"
        outputs.append(PlannedOutput(
            name=f"{parsed.name}_{product}.tif", product=product, title=f"{parsed.name} {polarisation} amplitude (dB)",
            bands=[polarisation], inputs=[member, annotation] if archive.has(annotation) else [member],
            crs=params.target_crs, resolution=params.resolution,
        ))
    return outputs


def annotation_gcps(archive: SafeArchive, member: str) -> list[GroundControlPoint]:
    """GCPs (lon/lat) from an annotation's ``geolocationGrid``."""
    root = archive.read_xml(member)
    gcps = []
    try:
        for point in root.iterfind(".//geolocationGrid/geolocationGridPointList/geolocationGridPoint"):
            gcps.append(GroundControlPoint(
                row=float(point.findtext("line")), col=float(point.findtext("pixel")),
                x=float(point.findtext("longitude")), y=float(point.findtext("latitude")),
                z=float(point.findtext("height") or 0.0)))
    except (TypeError, ValueError) as exc:
        raise InvalidSafe(f"{archive.product}: malformed geolocation grid in {member}") from exc
    return gcps


@contextmanager
def georeferenced(archive: SafeArchive, output: PlannedOutput) -> Iterator[tuple]:
    """``(dataset, gcps, gcp_crs)`` of the measurement: its own GCPs, else the annotation's geolocation grid."""
    member = output.inputs[0]
    with archive.raster(member) as plain:
        if plain.dtypes[0] != "uint16":
            raise InvalidSafe(f"{archive.product}: {member} holds {plain.dtypes[0]}, not uint16 amplitudes",
                              code="unexpected_dtype")
        gcps, gcp_crs = plain.gcps
        if len(gcps) >= 3 and gcp_crs is not None:
            yield plain, gcps, gcp_crs
            return
    gcps = annotation_gcps(archive, output.inputs[1]) if len(output.inputs) > 1 else []
    if len(gcps) < 3:
        raise InvalidSafe(f"{archive.product}: {member} has no ground control points to georeference it",
                          code="no_gcps")
    with archive.raster(member, gcps=gcps) as source:
        yield source, gcps, CRS.from_epsg(4326)


@contextmanager
def warped_amplitudes(archive: SafeArchive, output: PlannedOutput, params: SafeParameters,
                      stage: Path) -> Iterator[tuple]:
    """``(read(window) -> uint16 strip, width, height, transform, crs)`` of the measurement warped onto the
    target grid: into memory up to ``IN_MEMORY_PIXELS`` (2 bytes a pixel), else through a scratch GTiff."""
    member = output.inputs[0]
    dst_crs = CRS.from_user_input(params.target_crs)
    with ExitStack() as stack:
        source, gcps, gcp_crs = stack.enter_context(georeferenced(archive, output))
        transform, width, height = calculate_default_transform(
            gcp_crs, dst_crs, source.width, source.height, gcps=gcps, resolution=params.resolution, **TPS)
        check_output_size(width, height, output.name)
        if width * height <= IN_MEMORY_PIXELS:
            target = np.zeros((height, width), dtype=np.uint16)
            destination = target
        else:
            scratch = stage / "warped.tif"
            target = stack.enter_context(rasterio.open(scratch, "w+", **scratch_profile(
                width=width, height=height, count=1, dtype="uint16", crs=dst_crs, transform=transform, nodata=0)))
            destination = rasterio.band(target, 1)
        try:
            reproject(rasterio.band(source, 1), destination, gcps=gcps, src_crs=gcp_crs, dst_transform=transform,
                      dst_crs=dst_crs, src_nodata=0, dst_nodata=0, resampling=Resampling[params.s1_resampling],
                      **TPS)
        except RasterioError as exc:
            raise InvalidSafe(f"{archive.product}: cannot warp {member}: {exc}", code="unreadable_raster") from exc
        if isinstance(target, np.ndarray):
            yield (lambda window: target[window.toslices()]), width, height, transform, dst_crs
        else:
            yield (lambda window: target.read(1, window=window)), width, height, transform, dst_crs


def process(archive: SafeArchive, output: PlannedOutput, destination: Path, params: SafeParameters,
            step: Callable[[float, str], None]) -> SafeOutput:
    """Write the quicklook of ``output`` to ``destination`` (atomically)."""
    db = amplitude_db()
    with staging(destination) as stage:
        step(0.05, "warping")
        with warped_amplitudes(archive, output, params, stage) as (read, width, height, transform, crs):
            step(0.6, "stretching")
            hist = strip_histogram(read, height, width)
            if not hist.any():
                raise InvalidSafe(f"{archive.product}: {output.inputs[0]} has no valid pixels", code="no_valid_data")
            low, high = histogram_percentiles(hist, params.s1_percentiles, db)
            lut = stretch_lut(db, low, high)
            gray_path = stage / "gray.tif"
            with rasterio.open(gray_path, "w", **scratch_profile(width=width, height=height, count=2, dtype="uint8",
                                                                 crs=crs, transform=transform)) as gray:
                gray.colorinterp = [ColorInterp.gray, ColorInterp.alpha]
                for window in strips(height, width):
                    amplitude = read(window)
                    gray.write(lut[amplitude], 1, window=window)
                    gray.write((amplitude > 0).view("uint8") * 255, 2, window=window)
        step(0.8, "writing COG")
        size = publish_cog(gray_path, destination, stage=stage, compress=params.compress)
    stretch = [BandStretch(band=output.bands[0], low=low, high=high, unit="dB")]
    return describe_written(destination, output, layout="gray+alpha", stretch=stretch, size=size)
