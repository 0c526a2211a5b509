"""Plan and run the processing of one SAFE product: :func:`prepare` (no side effects), :func:`execute`,
and :func:`process_safe` (both in one call, the entry point task tools use)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import rasterio

from georeg.core.progress import ProgressCallback
from georeg.core.sentinel import s1, s2
from georeg.core.sentinel.archive import SafeArchive
from georeg.core.sentinel.models import SafeOutput, SafeParameters, SafePlan
from georeg.core.sentinel.products import parse_product

GDAL_CACHE_MB = 64


def _family(kind: str):  # noqa: ANN202
    return s1 if kind.startswith("S1") else s2


def prepare(safe_path: Path, *, products: Sequence[str] | None = None,
            parameters: SafeParameters | None = None) -> SafePlan:
    """The plan for ``safe_path`` (a ``<PRODUCT>.zip`` or ``<PRODUCT>.SAFE``): what it reads and writes.

    Reads only the zip's directory and the SAFE's file list; raises the domain errors of a run (not a SAFE,
    broken zip, unsupported product, unknown product selection, missing band/measurement) before any work.
    ``products``: polarisations (``VV`` ... or ``amplitude_vv``) for S1, combination names for S2; all by default.
    """
    params = parameters or SafeParameters()
    archive = SafeArchive.open(safe_path)
    parsed = parse_product(archive.product)
    outputs = _family(parsed.kind).plan_outputs(archive, parsed, list(products) if products else None, params)
    return SafePlan(
        product=parsed.name, product_type=parsed.kind, platform=parsed.platform, acquired_at=parsed.acquired_at,
        safe_path=str(safe_path), archive=archive.kind, inputs=sorted({m for o in outputs for m in o.inputs}),
        outputs=outputs, parameters=params,
    )


def execute(plan: SafePlan, output_dir: Path, progress: ProgressCallback | None = None) -> list[SafeOutput]:
    """Write every output of ``plan`` into ``output_dir``; each file appears only complete (temp + rename), and
    when one output fails the ones already written by this call are removed before the error propagates.

    GDAL's block cache is held to ``GDAL_CACHE_MB`` while it runs (unless ``GDAL_CACHEMAX`` is set in the
    environment): strips read each JPEG 2000 tile once, so a bigger cache only holds decoded tiles longer."""
    with rasterio.Env(**({} if "GDAL_CACHEMAX" in os.environ else {"GDAL_CACHEMAX": GDAL_CACHE_MB})):
        return _execute(plan, output_dir, progress)


def _execute(plan: SafePlan, output_dir: Path, progress: ProgressCallback | None) -> list[SafeOutput]:
    archive = SafeArchive.open(Path(plan.safe_path))
    family = _family(plan.product_type)
    output_dir.mkdir(parents=True, exist_ok=True)
    report = progress or (lambda percent, phase, message: None)
    written: list[SafeOutput] = []
    count = len(plan.outputs)
    try:
        for index, output in enumerate(plan.outputs):
            def step(fraction: float, phase: str, index: int = index, name: str = output.name) -> None:
                report(100.0 * (index + fraction) / count, phase, name)

            step(0.0, "reading")
            written.append(family.process(archive, output, output_dir / output.name, plan.parameters, step))
            step(1.0, "written")
    except BaseException:
        for done in written:
            Path(done.path).unlink(missing_ok=True)
        raise
    return written


def process_safe(safe_path: Path, *, products: Sequence[str] | None = None, output_dir: Path,
                 parameters: SafeParameters | None = None,
                 progress: ProgressCallback | None = None) -> list[SafeOutput]:
    """Prepare and execute: the quicklooks (S1) or RGB combinations (S2) of one SAFE as COGs in ``output_dir``."""
    return execute(prepare(safe_path, products=products, parameters=parameters), output_dir, progress)
