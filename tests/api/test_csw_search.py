"""POST /datasets/csw-search and GET /datasets/profiles against a real pycsw loaded with NBS-shaped records."""

from __future__ import annotations

import pytest
from owslib import fes
from owslib.catalogue.csw2 import CatalogueServiceWeb

from georeg.core.catalog.csw import CRS84, GMD

pytestmark = pytest.mark.usefixtures("csw_url")


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    """csw-search does not touch the registry: one backend is enough."""
    return request.param


@pytest.fixture
def csw_settings(settings, csw_url, csw_exception_url, csw_slow_url):
    settings.csw_endpoints = [csw_url, csw_exception_url, csw_slow_url]
    settings.csw_timeout_seconds = 2.0
    return settings


@pytest.fixture
def search(client, csw_settings):
    def _search(expected_status: int = 200, **body):
        response = client.post("/datasets/csw-search", json=body)
        assert response.status_code == expected_status, response.text
        return response.json()

    return _search


def ids(records) -> list[str]:
    return [record.identifier for record in records]


def test_default_search_pages_the_whole_catalogue_in_identifier_order(search, nbs_catalogue):
    page = search()
    assert page["total"] == len(nbs_catalogue)
    assert (page["limit"], page["offset"], page["returned"]) == (25, 0, 25)
    assert page["next_offset"] == 25 and page["prev_offset"] is None
    assert page["constraints_applied"] == 0
    assert [item["identifier"] for item in page["items"]] == ids(nbs_catalogue.sorted_by(nbs_catalogue))[:25]


def test_paging_returns_every_record_exactly_once(search, nbs_catalogue):
    seen, offset, pages = [], 0, 0
    while offset is not None:
        page = search(limit=7, offset=offset)
        assert page["returned"] == len(page["items"]) <= 7
        assert page["prev_offset"] == (None if offset == 0 else max(0, offset - 7))
        seen += [item["identifier"] for item in page["items"]]
        offset, pages = page["next_offset"], pages + 1
    assert pages == -(-len(nbs_catalogue) // 7)
    assert sorted(seen) == sorted(ids(nbs_catalogue)) and len(seen) == len(set(seen))


def test_offset_past_the_end_is_an_empty_last_page(search, nbs_catalogue):
    page = search(offset=len(nbs_catalogue) + 5)
    assert page["items"] == [] and page["next_offset"] is None and page["total"] == len(nbs_catalogue)


FILTERS = {
    "keywords": ({"keywords": ["Sentinel-2"]}, {"keywords": ["Sentinel-2"]}),
    "two keywords": ({"keywords": ["Sentinel-1", "EW"]}, {"keywords": ["Sentinel-1", "EW"]}),
    "start": ({"start_datetime": "2026-01-10T00:00:00Z"}, {"start": "2026-01-10T00:00:00Z"}),
    "end": ({"end_datetime": "2025-12-31T23:59:59+00:00"}, {"end": "2025-12-31T23:59:59Z"}),
    "start in another zone": ({"start_datetime": "2026-01-10T01:00:00+01:00"}, {"start": "2026-01-10T00:00:00Z"}),
    "bbox": ({"bbox": {"minx": 10, "miny": 60, "maxx": 11, "maxy": 61}}, {"bbox": (10, 60, 11, 61)}),
    "polar bbox": ({"bbox": {"minx": -180, "miny": 80, "maxx": 180, "maxy": 90}}, {"bbox": (-180, 80, 180, 90)}),
    "antimeridian bbox": ({"bbox": {"minx": 170, "miny": 50, "maxx": -170, "maxy": 75}},
                          {"bbox": (170, 50, -170, 75)}),
    "anytext": ({"anytext": "Kongsfjorden"}, {"anytext": "Kongsfjorden"}),
    "combined": ({"keywords": ["Sentinel-1"], "start_datetime": "2026-01-01T00:00:00Z",
                  "end_datetime": "2026-01-31T23:59:59Z", "bbox": {"minx": 5, "miny": 58, "maxx": 30, "maxy": 72},
                  "anytext": "GRD"},
                 {"keywords": ["Sentinel-1"], "start": "2026-01-01T00:00:00Z", "end": "2026-01-31T23:59:59Z",
                  "bbox": (5, 58, 30, 72), "anytext": "GRD"}),
}


@pytest.mark.parametrize("name", list(FILTERS))
def test_each_filter_matches_the_catalogue(search, nbs_catalogue, name):
    body, expected_filter = FILTERS[name]
    expected = nbs_catalogue.sorted_by(nbs_catalogue.select(**expected_filter))
    page = search(limit=100, **body)
    assert page["total"] == len(expected) > 0
    assert [item["identifier"] for item in page["items"]] == ids(expected)
    keywords = len(body.get("keywords", []))
    assert page["constraints_applied"] == keywords + len(body) - ("keywords" in body)


def test_results_equal_a_direct_owslib_query(search, csw_url):
    body = {"keywords": ["Sentinel-1"], "bbox": {"minx": 5, "miny": 58, "maxx": 30, "maxy": 72},
            "start_datetime": "2026-01-01T00:00:00Z"}
    csw = CatalogueServiceWeb(csw_url, skip_caps=True)
    csw.getrecords2(constraints=[fes.And([
        fes.PropertyIsLike("dc:subject", "%Sentinel-1%", wildCard="%"),
        fes.PropertyIsGreaterThanOrEqualTo("apiso:TempExtent_begin", "2026-01-01T00:00:00Z"),
        fes.BBox([5, 58, 30, 72], crs=CRS84),
    ])], sortby=fes.SortBy([fes.SortProperty("dc:identifier", "ASC")]), typenames="gmd:MD_Metadata", esn="full",
        outputschema=GMD, maxrecords=100)
    page = search(limit=100, **body)
    assert page["total"] == csw.results["matches"]
    assert [item["identifier"] for item in page["items"]] == list(csw.records)


def test_items_are_normalized_records(search, nbs_catalogue):
    page = search(limit=100)
    by_id = {item["identifier"]: item for item in page["items"]}
    for record in nbs_catalogue:
        item = by_id[record.identifier]
        assert item["title"] == record.title
        assert item["abstract"] == record.abstract
        assert item["subjects"] == list(record.subjects)
        assert item["temporal_extent"] == {"start": record.begin, "end": record.end}
        assert item["parent_identifier"] == record.parent_identifier
        assert item["platform"] == record.platform
        if record.bbox:
            assert item["bbox"] == pytest.approx(list(record.bbox))
        assert [(ref["scheme"], ref["url"], ref["kind"]) for ref in item["references"]] == [
            (ref.scheme, ref.url, ref.category) for ref in record.references]


def test_children_of_a_parent_are_found_through_search(search, nbs_catalogue):
    (parent,) = nbs_catalogue.of_kind("hyspex-parent")
    children = nbs_catalogue.children_of(parent.identifier)
    page = search(anytext=parent.identifier, limit=100)
    found = {item["identifier"] for item in page["items"] if item["parent_identifier"] == parent.identifier}
    assert found == {child.identifier for child in children}


@pytest.mark.parametrize("body", [
    {"limit": 101}, {"limit": 0}, {"offset": -1}, {"keywords": ["  "]}, {"keywords": "sentinel"},
    {"bbox": {"minx": 10, "miny": 61, "maxx": 11, "maxy": 60}}, {"bbox": {"minx": 10, "miny": 60, "maxx": 11}},
    {"bbox": {"minx": -181, "miny": 0, "maxx": 0, "maxy": 1}}, {"start_datetime": "yesterday"},
    {"start_datetime": "2026-02-01T00:00:00Z", "end_datetime": "2026-01-01T00:00:00Z"},
])
def test_bad_bodies_are_422(search, body):
    answer = search(422, **body)
    assert answer["code"] == "validation_error" and answer["error"]


def test_endpoint_outside_the_allow_list_is_400_and_never_contacted(search, nbs_file_server):
    before = len(nbs_file_server.requests)
    answer = search(400, endpoint=nbs_file_server.url("/csw"))
    assert answer["code"] == "endpoint_not_allowed"
    assert len(nbs_file_server.requests) == before


def test_csw_down_is_502(client, settings, csw_down_url):
    settings.csw_endpoints = [csw_down_url]
    response = client.post("/datasets/csw-search", json={})
    assert response.status_code == 502
    assert response.json()["code"] == "csw_unavailable"


def test_csw_exception_report_is_502_with_the_upstream_message(search, csw_exception_url):
    answer = search(502, endpoint=csw_exception_url)
    assert answer["code"] == "csw_exception"
    assert "Repository temporarily unavailable" in answer["error"]


def test_slow_csw_is_504(search, csw_slow_url):
    answer = search(504, endpoint=csw_slow_url)
    assert answer["code"] == "csw_timeout"


def test_profiles_are_listed(client):
    response = client.get("/datasets/profiles")
    assert response.status_code == 200
    profiles = {item["id"]: item for item in response.json()["items"]}
    assert profiles["sentinel-1"]["point_query_variables"] == ["Amplitude_VH", "Amplitude_VV"]
    assert {"sentinel-2", "sentinel-3", "sentinel-5p", "generic"} <= set(profiles)
