"""The ``sentinel-safe`` tool in-process, on a real registry database (SQLite and PostgreSQL): registration
with source ``csw``, duplicates, profile defaults, and failures that leave no registration and no file."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlmodel import Session, select

from georeg.core.bootstrap import bootstrap
from georeg.core.db import make_engine
from georeg.core.errors import PermissionDenied
from georeg.core.models import Raster
from georeg.core.rasters.service import raster_file, registry_location
from georeg.core.sentinel.errors import BrokenArchive, InvalidSafe, MissingBand, SafeNotFound
from georeg.core.tasks.model import ToolContext
from georeg.core.tasks.tools.sentinel_safe import SENTINEL_SAFE, SentinelSafeParams, plan_for
from tests.sentinel_fixtures import S1_PRODUCT, sentinel_archive  # noqa: F401

IDENTIFIER = "1b0d7a5e-1111-4222-8333-444455556666"


@pytest.fixture
def context(settings, sentinel_archive, tmp_path):  # noqa: F811
    settings.safe_roots = [sentinel_archive.root]
    engine = make_engine(settings.effective_database_url)
    bootstrap(settings, engine)
    with Session(engine) as session:
        org, dataset = registry_location(session)
        session.commit()
        ids = (org.slug, dataset.id, dataset.slug)
    reports: list[tuple] = []
    tool_context = ToolContext(task_id="t-1", settings=settings, engine=engine, org_slug=ids[0], dataset_id=ids[1],
                               dataset_slug=ids[2], dataset_root=settings.storage_dir / ids[0] / ids[2], path=None,
                               work_dir=tmp_path / "work", report=lambda *report: reports.append(report))
    tool_context.reports = reports
    yield tool_context
    engine.dispose()


def run(context: ToolContext, **parameters) -> dict:
    return SENTINEL_SAFE.run(context, SentinelSafeParams(identifier=IDENTIFIER, **parameters)).result


def rasters_in(context: ToolContext) -> list[Raster]:
    with Session(context.engine) as session:
        return list(session.exec(select(Raster).order_by(Raster.id)).all())


def stored_files(context: ToolContext) -> list[Path]:
    return [p for p in context.settings.storage_dir.rglob("*") if p.is_file()]


def test_outputs_are_registered_as_csw_rasters(context, sentinel_archive):  # noqa: F811
    result = run(context, product=S1_PRODUCT, title=S1_PRODUCT, endpoint="https://nbs.csw.met.no/csw")
    assert [d["product"] for d in result["datasets"]] == ["amplitude_vv", "amplitude_vh"]
    assert all(d["created"] for d in result["datasets"])
    records = rasters_in(context)
    assert [r.public_id for r in records] == [d["dataset_id"] for d in result["datasets"]]
    for record in records:
        assert (record.source, record.source_identifier, record.platform, record.profile) == \
            ("csw", IDENTIFIER, "S1A", "sentinel-1")
        assert record.acquired_at.isoformat().startswith("2026-01-15T05:23:00") and record.owned
        assert record.epsg == 32661 and record.band_count == 2 and record.dtype == "uint8"
        assert record.meta["csw_endpoint"] == "https://nbs.csw.met.no/csw" and record.meta["stretch"][0]["unit"] == "dB"
        with Session(context.engine) as session:
            assert raster_file(session, context.settings, record).is_file()
    percents = [report[0] for report in context.reports]
    assert percents == sorted(percents) and percents[-1] == 100
    assert [report[1] for report in context.reports].count("registering") == 2

    again = run(context, product=f"{S1_PRODUCT}.zip")
    assert [d["duplicate_of"] for d in again["datasets"]] == [r.public_id for r in records]
    assert len(rasters_in(context)) == 2 and len(stored_files(context)) == 2

    l1c = sentinel_archive.paths["l1c_zip"].relative_to(sentinel_archive.root).as_posix()
    s2 = run(context, safe_path=l1c, products=["true_color_vegetation"], platform="S2B",
             acquired_at="2026-01-12T10:54:01Z", processing={"gamma": 1.0})
    (rgb,) = s2["datasets"]
    assert rgb["product_bands"] == ["B04", "B03", "B02"] and rgb["bands"] == 3
    assert rgb["platform"] == "S2B" and rgb["crs"]["epsg"] == 32633
    assert s2["parameters"]["gamma"] == 1.0 and s2["parameters"]["s2_percentiles"] == [0.5, 99.5]
    assert len(rasters_in(context)) == 3


def test_profile_defaults_and_parameters(context, sentinel_archive):  # noqa: F811
    s1 = plan_for(context.settings, SentinelSafeParams(identifier="x", product=S1_PRODUCT))
    assert (s1.parameters.target_crs, s1.parameters.resolution, s1.parameters.s1_percentiles) == \
        ("EPSG:32661", 40.0, (1.0, 99.0))
    s2 = plan_for(context.settings, SentinelSafeParams(identifier="x", product=sentinel_archive.products["l2a_zip"]))
    assert (s2.parameters.s2_percentiles, s2.parameters.gamma, len(s2.outputs)) == ((0.5, 99.5), 0.7, 3)
    assert rasters_in(context) == [] and stored_files(context) == []
    for bad in ({}, {"product": S1_PRODUCT, "safe_path": "x.zip"}, {"product": S1_PRODUCT, "platform": "../x"},
                {"product": S1_PRODUCT, "processing": {"resolution": -1}}, {"product": S1_PRODUCT, "extra": 1}):
        with pytest.raises(ValidationError):
            SentinelSafeParams(identifier="x", **bad)


@pytest.mark.parametrize(("parameters", "error"), [
    ({"role": "broken_zip"}, BrokenArchive),
    ({"role": "missing_band"}, MissingBand),
    ({"role": "s1_missing"}, MissingBand),
    ({"role": "corrupt_zip", "products": ["VH", "VV"]}, InvalidSafe),
    ({"safe_path": "../../../../../etc/passwd"}, PermissionDenied),
    ({"product": S1_PRODUCT.replace("_1234", "_0000")}, SafeNotFound),
], ids=["broken", "missing-band", "missing-measurement", "corrupt-midway", "escape", "not-found"])
def test_failures_register_nothing(context, sentinel_archive, parameters, error):  # noqa: F811
    role = parameters.pop("role", None)
    if role:
        parameters["product"] = sentinel_archive.products[role]
    with pytest.raises(error):
        run(context, **parameters)
    assert rasters_in(context) == [] and stored_files(context) == []
    assert not (context.work_dir / "outputs").exists() or list((context.work_dir / "outputs").iterdir()) == []


def test_registration_failure_removes_earlier_registrations(context):
    """The second output vanishes while the first is being registered: the first registration is undone."""
    seen = []

    def report(percent: float, phase: str, message: str) -> None:
        if phase == "registering" and not seen:
            seen.append(message)
            (context.work_dir / "outputs" / f"{S1_PRODUCT}_amplitude_vh.tif").unlink()

    context.report = report
    with pytest.raises(FileNotFoundError):
        run(context, product=S1_PRODUCT)
    assert seen == [f"{S1_PRODUCT}_amplitude_vv.tif"]
    assert rasters_in(context) == [] and stored_files(context) == []
