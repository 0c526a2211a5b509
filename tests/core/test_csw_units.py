"""Pure parts of the CSW client: reference classification, filters, times, endpoint allow-list, profiles."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from georeg.core.catalog.csw import (
    CswQuery,
    allowed_endpoint,
    build_constraints,
    classify_reference,
    iso_utc,
    normalize_time,
)
from georeg.core.config import Settings
from georeg.core.errors import InvalidInput
from georeg.core.fetch import host_allowed
from georeg.core.rasters.profiles import detect_platform, profile_for


@pytest.mark.parametrize(("scheme", "url", "kind"), [
    ("download", "https://x/a.zip", "download"),
    ("WWW:DOWNLOAD-1.0-http--download", "https://x/a.tif", "download"),
    ("OPeNDAP:OPeNDAP", "https://x/thredds/dodsC/a.nc", "opendap"),
    ("OPENDAP:OPENDAP", "https://x/a.nc", "opendap"),
    ("ogc:wms", "https://x/wms", "wms"),
    ("OGC:WMS", "https://x/wms", "wms"),
    ("WWW:LINK-1.0-http--link", "https://x/page", "other"),
    (None, "https://x/thredds/dodsC/a.nc", "opendap"),
    (None, "https://x/thredds/fileServer/a.zip", "download"),
    (None, "https://x/landing", "other"),
])
def test_reference_schemes_are_classified_case_insensitively(scheme, url, kind):
    assert classify_reference(scheme, url) == kind


@pytest.mark.parametrize(("text", "platform"), [
    ("S1A_IW_GRDH_1SDV_20260115T052300_20260115T052325_012345_0ABCDE_1234", "S1A"),
    ("S2C_MSIL2A_20260111T105401_N0511_R051_T33WXR_20260111T130000", "S2C"),
    ("https://nbs.met.no/thredds/fileServer/nbsArchive/S1D/2026/01/15/IW/x.zip", "S1D"),
    ("S3B_OL_1_EFR____20260101T100000", "S3B"),
    ("S5P_OFFL_L2__NO2____20260101", "S5P"),
    ("no.met.nbs:5f0c2c9e-8b7a-5d1e-9f00-000000000001", None),
])
def test_platform_detection(text, platform):
    assert detect_platform(text) == platform


def test_profiles_by_family():
    assert profile_for("S1C").point_query_variables == ["Amplitude_VH", "Amplitude_VV"]
    assert profile_for("S2A").id == "sentinel-2"
    assert profile_for("S5P").id == "sentinel-5p"
    assert profile_for(None).id == "generic"


def test_each_field_is_one_top_level_constraint():
    query = CswQuery(keywords=["sentinel", "s2"], start_datetime="2026-01-01T00:00:00Z",
                     end_datetime="2026-01-31T23:59:59Z", bbox={"minx": 10, "miny": 60, "maxx": 11, "maxy": 61},
                     anytext="ice")
    assert len(build_constraints(query)) == 6
    assert build_constraints(CswQuery()) == []


def test_antimeridian_bbox_becomes_one_or_constraint():
    from owslib import fes

    (constraint,) = build_constraints(CswQuery(bbox={"minx": 170, "miny": 60, "maxx": -170, "maxy": 70}))
    assert isinstance(constraint, fes.Or)


@pytest.mark.parametrize("body", [
    {"limit": 101}, {"limit": 0}, {"offset": -1}, {"keywords": [""]},
    {"bbox": {"minx": 0, "miny": 10, "maxx": 1, "maxy": 5}}, {"bbox": {"minx": 0, "miny": 0, "maxx": 200, "maxy": 1}},
    {"start_datetime": "2026-02-01T00:00:00Z", "end_datetime": "2026-01-01T00:00:00Z"},
    {"start_datetime": "not a time"},
])
def test_bad_queries_are_rejected(body):
    with pytest.raises(ValidationError):
        CswQuery(**body)


def test_times_are_full_iso_utc():
    assert iso_utc(datetime(2026, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1)))) == "2026-01-01T00:00:00Z"
    assert iso_utc(datetime(2026, 1, 1)) == "2026-01-01T00:00:00Z"
    assert normalize_time("2026-01-15T05:23:00.123Z") == "2026-01-15T05:23:00Z"
    assert normalize_time("2026-01-15") == "2026-01-15T00:00:00Z"
    assert normalize_time(None) is None


def test_only_configured_endpoints_are_allowed():
    settings = Settings(csw_endpoints=["http://a.example/csw", "http://b.example/csw/"])
    assert allowed_endpoint(settings, None) == "http://a.example/csw"
    assert allowed_endpoint(settings, "http://b.example/csw") == "http://b.example/csw"
    with pytest.raises(InvalidInput) as raised:
        allowed_endpoint(settings, "http://169.254.169.254/latest")
    assert raised.value.code == "endpoint_not_allowed"


def test_download_hosts():
    allowed = ["nbs.met.no", "127.0.0.1:8080"]
    assert host_allowed("https://NBS.met.no/thredds/a.tif", allowed)
    assert host_allowed("http://127.0.0.1:8080/a.tif", allowed)
    assert not host_allowed("http://127.0.0.1:9090/a.tif", allowed)
    assert not host_allowed("file:///etc/passwd", allowed)
    assert not host_allowed("http://nbs.met.no.evil.example/a.tif", allowed)
