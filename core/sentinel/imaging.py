"""Image steps shared by the S1 and S2 pipelines: exact percentiles from uint16 histograms, lookup-table
stretches, strip windows, and atomic COG publication (temp files beside the destination, then a rename)."""

from __future__ import annotations

import math
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.shutil import copy as raster_copy
from rasterio.windows import Window

from georeg.core.errors import InvalidInput
from georeg.core.sentinel.models import BandStretch, PlannedOutput, SafeOutput
from georeg.core.storage import TEMP_PREFIX

BINS = 65536
STRIP_ROWS = 1024
MAX_OUTPUT_PIXELS = 2_000_000_000


def strips(height: int, width: int, rows: int = STRIP_ROWS) -> Iterator[Window]:
    """Full-width windows of ``rows`` rows (the last one shorter)."""
    for row in range(0, height, rows):
        yield Window(0, row, width, min(rows, height - row))


def histogram(values: np.ndarray, hist: np.ndarray | None = None, *, skip_zero: bool = True) -> np.ndarray:
    """Add the counts of uint16 ``values`` to ``hist`` (65536 bins); 0 (no data) is not counted."""
    counts = np.bincount(values.ravel(), minlength=BINS)
    if skip_zero:
        counts[0] = 0
    return counts if hist is None else hist + counts


def decimated_shape(height: int, width: int, max_size: int) -> tuple[int, int]:
    """(height, width) reduced by the smallest power of two that brings the larger side to ``max_size`` or
    below (so a JPEG 2000 resolution level or a power-of-two overview serves the read); 0 keeps the size."""
    largest = max(height, width)
    if not max_size or largest <= max_size:
        return height, width
    factor = 2 ** math.ceil(math.log2(largest / max_size))
    return max(1, math.ceil(height / factor)), max(1, math.ceil(width / factor))


def dataset_histogram(dataset: rasterio.io.DatasetReader, band: int = 1, *, max_size: int = 0) -> np.ndarray:
    """Histogram of a uint16 band: from one read decimated by :func:`decimated_shape` when the band is bigger
    than ``max_size`` (overviews / JPEG 2000 resolution levels are used), else exact, strip by strip."""
    shape = decimated_shape(dataset.height, dataset.width, max_size)
    if shape != (dataset.height, dataset.width):
        return histogram(dataset.read(band, out_shape=shape, resampling=Resampling.nearest))
    return strip_histogram(lambda window: dataset.read(band, window=window), dataset.height, dataset.width)


def strip_histogram(read: Callable[[Window], np.ndarray], height: int, width: int) -> np.ndarray:
    """Exact histogram of a uint16 image read strip by strip with ``read(window)``."""
    hist = np.zeros(BINS, dtype=np.int64)
    for window in strips(height, width):
        hist = histogram(read(window), hist)
    return hist


def histogram_percentiles(hist: np.ndarray, percentiles: tuple[float, ...], values: np.ndarray) -> list[float]:
    """Percentiles of the data counted in ``hist``, each bin standing for ``values[bin]`` (monotonic in the bin):
    the same numbers as ``numpy.percentile(data_values, percentiles)`` (default 'linear' method)."""
    cumulative = np.cumsum(hist)
    count = int(cumulative[-1])
    if count == 0:
        raise ValueError("no valid pixels")
    results = []
    for q in percentiles:
        quantile = np.true_divide(q, 100)
        virtual = (count - 1) * quantile
        below = math.floor(virtual)
        fraction = virtual - below
        lower, upper = (min(max(int(k), 0), count - 1) for k in (below, below + 1))
        a, b = (float(values[np.searchsorted(cumulative, k, side="right")]) for k in (lower, upper))
        difference = b - a
        results.append(b - difference * (1 - fraction) if fraction >= 0.5 else a + difference * fraction)
    return results


def amplitude_db() -> np.ndarray:
    """dB of every uint16 amplitude (20 log10 a); bin 0 is NaN (no data)."""
    with np.errstate(divide="ignore"):
        db = 20.0 * np.log10(np.arange(BINS, dtype=np.float64))
    db[0] = np.nan
    return db


def stretch_lut(values: np.ndarray, low: float, high: float, *, gamma: float = 1.0) -> np.ndarray:
    """uint8 lookup table: ``values`` (per uint16 bin) stretched linearly from [low, high] to 1..255 after
    ``x ** (1 / gamma)``; bin 0 maps to 0 (no data)."""
    scale = high - low if high > low else 1.0
    x = np.clip((values - low) / scale, 0.0, 1.0)
    if gamma != 1.0:
        x = x ** (1.0 / gamma)
    lut = np.rint(1.0 + 254.0 * x)
    lut[0] = 0
    return np.nan_to_num(lut, nan=0.0).astype(np.uint8)


def check_output_size(width: int, height: int, what: str) -> None:
    if width <= 0 or height <= 0 or width * height > MAX_OUTPUT_PIXELS:
        raise InvalidInput(f"{what} would be {width} x {height} pixels; choose a coarser resolution",
                           code="output_too_large")


@contextmanager
def staging(destination: Path) -> Iterator[Path]:
    """A private temp folder beside ``destination`` (same filesystem), removed whatever happens."""
    folder = destination.parent / f"{TEMP_PREFIX}{uuid.uuid4().hex}"
    folder.mkdir(parents=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def scratch_profile(*, width: int, height: int, count: int, dtype: str, crs, transform, nodata=None) -> dict:  # noqa: ANN001
    """An uncompressed tiled GTiff for intermediate results."""
    return {"driver": "GTiff", "width": width, "height": height, "count": count, "dtype": dtype, "crs": crs,
            "transform": transform, "nodata": nodata, "tiled": True, "blockxsize": 512, "blockysize": 512,
            "interleave": "pixel", "BIGTIFF": "IF_SAFER"}


def publish_cog(source: Path, destination: Path, *, stage: Path, compress: str) -> int:
    """Copy ``source`` as a COG (overviews, tiles) into ``stage``, fsync, rename onto ``destination``; size."""
    part = stage / f"{TEMP_PREFIX}{destination.name}"
    options = {"driver": "COG", "COMPRESS": compress.upper() if compress != "none" else "NONE",
               "OVERVIEW_RESAMPLING": "AVERAGE", "BIGTIFF": "IF_SAFER"}
    raster_copy(str(source), str(part), **options)
    with open(part, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(part, destination)
    return destination.stat().st_size


def describe_written(path: Path, output: PlannedOutput, *, layout: str, stretch: list[BandStretch],
                     size: int) -> SafeOutput:
    """What was written at ``path``, read back from the file."""
    with rasterio.open(path) as written:
        return SafeOutput(
            name=output.name, path=str(path), product=output.product, title=output.title, bands=output.bands,
            band_layout=layout, crs=written.crs.to_string(), epsg=written.crs.to_epsg(), width=written.width,
            height=written.height, resolution=written.res, bounds=tuple(written.bounds), stretch=stretch, size=size,
        )
