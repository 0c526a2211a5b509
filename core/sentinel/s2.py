"""Sentinel-2 L1C/L2A RGB combinations: one 8-bit RGB COG per combination (and granule).

Bands come from the granule's JP2 files (L2A: ``IMG_DATA/R10m|R20m/*_Bxx_10m|20m.jp2``, the finest resolution
present; L1C: ``IMG_DATA/*_Bxx.jp2``). Every band is stretched linearly between its 0.5th and 99.5th percentiles
(valid pixels, i.e. > 0), then ``x ** (1 / gamma)``, to 1..255; a pixel where any of the three bands is 0 (no
data) is 0 in every band, and the COG declares nodata 0. 20 m bands are resampled onto the 10 m grid while
reading, strip by strip, through one 65536-entry lookup table per band.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from contextlib import ExitStack

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window, from_bounds
from rasterio.windows import bounds as window_bounds

from georeg.core.errors import InvalidInput
from georeg.core.sentinel.archive import SafeArchive
from georeg.core.sentinel.errors import InvalidSafe, MissingBand
from georeg.core.sentinel.imaging import (
    BINS,
    check_output_size,
    dataset_histogram,
    describe_written,
    histogram_percentiles,
    publish_cog,
    scratch_profile,
    staging,
    stretch_lut,
    strips,
)
from georeg.core.sentinel.models import S2_COMBINATIONS, BandStretch, PlannedOutput, SafeOutput, SafeParameters
from georeg.core.sentinel.products import ProductName, select_products

BAND_FILE = re.compile(r"GRANULE/(?P<granule>[^/]+)/IMG_DATA/(?:R(?P<folder>10|20|60)m/)?[^/]+?"
                       r"_(?P<band>B(?:0[1-9]|1[0-2]|8A))(?:_(?P<res>10|20|60)m)?\.jp2")
NATIVE_RESOLUTION = {"B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20, "B08": 10,
                     "B8A": 20, "B09": 60, "B10": 60, "B11": 20, "B12": 20}
METADATA = {"S2_L1C": "MTD_MSIL1C.xml", "S2_L2A": "MTD_MSIL2A.xml"}
TILE = re.compile(r"_T(\d{2}[A-Z]{3})_")


def granule_bands(archive: SafeArchive) -> dict[str, dict[str, tuple[int, str]]]:
    """``{granule: {band: (resolution, member)}}``, keeping each band's finest resolution."""
    granules: dict[str, dict[str, tuple[int, str]]] = {}
    for member, match in archive.matching(BAND_FILE):
        resolution = int(match["res"] or match["folder"] or NATIVE_RESOLUTION[match["band"]])
        bands = granules.setdefault(match["granule"], {})
        if match["band"] not in bands or resolution < bands[match["band"]][0]:
            bands[match["band"]] = (resolution, member)
    return granules


def _selected(requested: list[str] | None) -> list[str]:
    def check(raw: str, value: str) -> None:
        if value not in S2_COMBINATIONS:
            raise InvalidInput(f"unknown Sentinel-2 product {raw!r}; use one of {', '.join(S2_COMBINATIONS)}",
                               code="unknown_product")

    return select_products(requested, default=S2_COMBINATIONS, check=check, normalize=lambda raw: raw.strip().lower())


def plan_outputs(archive: SafeArchive, parsed: ProductName, requested: list[str] | None,
                 _params: SafeParameters) -> list[PlannedOutput]:
    """One RGB per selected combination (all three by default) and granule; a band a combination needs that
    the granule lacks raises :class:`MissingBand`."""
    metadata = METADATA[parsed.kind]
    if not archive.has(metadata):
        raise InvalidSafe(f"{parsed.name} is not a {parsed.kind[3:]} SAFE (no {metadata})", code="not_a_safe")
    granules = granule_bands(archive)
    if not granules:
        raise MissingBand(f"{parsed.name}: no JP2 bands under GRANULE/*/IMG_DATA")
    outputs = []
    for granule, bands in sorted(granules.items()):
        tile = TILE.search(f"{granule}_")
        prefix = parsed.name if len(granules) == 1 else f"{parsed.name}_{tile.group(1) if tile else granule}"
        for combination in _selected(requested):
            needed = S2_COMBINATIONS[combination]
            missing = [band for band in needed if band not in bands]
            if missing:
                raise MissingBand(f"{parsed.name}: {combination} needs {', '.join(missing)}, missing from granule "
                                  f"{granule}")
            outputs.append(PlannedOutput(
                name=f"{prefix}_{combination}.tif", product=combination,
                title=f"{prefix} {combination.replace('_', ' ')} ({','.join(needed)})", bands=list(needed),
                inputs=[bands[band][1] for band in needed], granule=granule,
                resolution=float(min(bands[band][0] for band in needed)),
            ))
    return outputs


def _grid_window(source: rasterio.io.DatasetReader, grid: rasterio.io.DatasetReader, window: Window) -> Window:
    if source.transform == grid.transform:
        return window
    return from_bounds(*window_bounds(window, grid.transform), transform=source.transform)


def _check_same_tile(archive: SafeArchive, output: PlannedOutput, sources: list, grid) -> None:  # noqa: ANN001
    for member, source in zip(output.inputs, sources, strict=True):
        if source.dtypes[0] != "uint16":
            raise InvalidSafe(f"{archive.product}: {member} holds {source.dtypes[0]}, not uint16",
                              code="unexpected_dtype")
        tolerance = abs(source.transform.a)
        if source.crs != grid.crs or any(abs(a - b) > tolerance
                                         for a, b in zip(source.bounds, grid.bounds, strict=True)):
            raise InvalidSafe(f"{archive.product}: {member} does not cover the same tile as {output.inputs[0]}")


def process(archive: SafeArchive, output: PlannedOutput, destination, params: SafeParameters,  # noqa: ANN001
            step: Callable[[float, str], None]) -> SafeOutput:
    """Write the RGB of ``output`` to ``destination`` (atomically)."""
    identity = np.arange(BINS, dtype=np.float64)
    resampling = Resampling[params.s2_resampling]
    with staging(destination) as stage, ExitStack() as stack:
        sources = [stack.enter_context(archive.raster(member)) for member in output.inputs]
        grid = min(sources, key=lambda source: abs(source.transform.a))
        _check_same_tile(archive, output, sources, grid)
        check_output_size(grid.width, grid.height, output.name)
        step(0.02, "statistics")
        luts, stretch = [], []
        for band, source in zip(output.bands, sources, strict=True):
            hist = dataset_histogram(source, max_size=params.stats_max_size)
            if not hist.any():
                raise InvalidSafe(f"{archive.product}: band {band} has no valid pixels", code="no_valid_data")
            low, high = histogram_percentiles(hist, params.s2_percentiles, identity)
            luts.append(stretch_lut(identity, low, high, gamma=params.gamma))
            stretch.append(BandStretch(band=band, low=low, high=high, unit="DN"))
        rgb_path = stage / "rgb.tif"
        profile = scratch_profile(width=grid.width, height=grid.height, count=3, dtype="uint8", crs=grid.crs,
                                  transform=grid.transform, nodata=0)
        total = math.ceil(grid.height / 1024)
        with rasterio.open(rgb_path, "w", photometric="RGB", **profile) as rgb:
            for index, window in enumerate(strips(grid.height, grid.width)):
                shape = (int(window.height), int(window.width))
                planes, valid = [], np.ones(shape, dtype=bool)
                for source, lut in zip(sources, luts, strict=True):
                    values = source.read(1, window=_grid_window(source, grid, window), out_shape=shape,
                                         resampling=resampling)
                    valid &= values > 0
                    planes.append(lut[values])
                for band_index, plane in enumerate(planes, start=1):
                    plane[~valid] = 0
                    rgb.write(plane, band_index, window=window)
                step(0.1 + 0.7 * (index + 1) / total, "stretching")
        step(0.8, "writing COG")
        size = publish_cog(rgb_path, destination, stage=stage, compress=params.compress)
    return describe_written(destination, output, layout="rgb", stretch=stretch, size=size)
