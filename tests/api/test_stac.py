"""STAC API: browsed with pystac-client over real HTTP, every document validated offline against the STAC 1.1.0
JSON schemas pystac ships (plus the projection extension's, kept in tests/stac_schemas), visibility rules, the
antimeridian, search filters, paging to the end and hostile parameters."""

from __future__ import annotations

import json
from pathlib import Path

import pystac.validation
import pytest
from pystac.validation.stac_validator import JsonSchemaSTACValidator
from pystac_client import Client

from georeg.api.app import create_app
from tests.helpers import assert_error, create_dataset, upload_object, upload_raster
from tests.live import serve_app
from tests.rasters import write_geotiff

PROJECTION = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
SCHEMAS = Path(__file__).parent.parent / "stac_schemas"


@pytest.fixture(scope="module")
def validator() -> JsonSchemaSTACValidator:
    checker = JsonSchemaSTACValidator()
    checker.schema_cache[PROJECTION] = json.loads((SCHEMAS / "projection-v2.0.0.json").read_text())
    return checker


def _validate(document: dict, validator: JsonSchemaSTACValidator) -> None:
    pystac.validation.validate_dict(document, validator=validator)


@pytest.fixture
def catalogue(client, admin_headers, tmp_path, make_user):
    """acme/public (3 rasters, one across the antimeridian, plus a text file), acme/hidden (private, 1 raster),
    acme/link (unlisted, 1 raster), one raster registered through the Datasets API, and a member of nothing."""
    assert client.post("/orgs", json={"slug": "acme", "name": "Acme"}, headers=admin_headers).status_code == 201
    for slug, visibility in (("public", "public"), ("hidden", "private"), ("link", "unlisted")):
        create_dataset(client, admin_headers, org="acme", slug=slug)
        response = client.post(f"/orgs/acme/ds/{slug}/chattr", json={"visibility": visibility}, headers=admin_headers)
        assert response.status_code == 200, response.text
    files = {
        ("public", "oslo.tif"): dict(origin=(10.0, 61.0)),
        ("public", "dir/tromso.tif"): dict(origin=(18.0, 70.0), crs="EPSG:4326"),
        ("public", "fiji.tif"): dict(origin=(179.5, -17.0), pixel=0.02, width=50, height=25),
        ("hidden", "secret.tif"): dict(origin=(5.0, 60.0)),
        ("link", "unlisted.tif"): dict(origin=(6.0, 60.0)),
    }
    for (slug, path), options in files.items():
        content = write_geotiff(tmp_path / slug / path, **options).read_bytes()
        response = upload_object(client, admin_headers, path, content, dataset=f"/orgs/acme/ds/{slug}")
        assert response.status_code == 201, response.text
    assert upload_object(client, admin_headers, "notes.txt", b"not georeferenced",
                         dataset="/orgs/acme/ds/public").status_code == 201
    client.post("/orgs/acme/ds/public/meta/name/set", json="Public survey", headers=admin_headers)
    client.post("/orgs/acme/ds/public/meta/license/set", json="CC-BY-4.0", headers=admin_headers)
    registered = upload_raster(client, admin_headers, write_geotiff(tmp_path / "api.tif", origin=(11.0, 59.0)))
    assert registered.status_code in (200, 201), registered.text
    return {"admin": admin_headers, "outsider": make_user("outsider"), "raster": registered.json()}


def _ids(collection_page: dict) -> list[str]:
    return [feature["properties"]["title"] for feature in collection_page["features"]]


def test_pystac_client_walks_collections_searches_and_pages_to_the_end(settings, catalogue, validator, client):
    token = catalogue["admin"]["Authorization"]
    with serve_app(create_app(settings)) as url:
        stac = Client.open(f"{url}/stac", headers={"Authorization": token})
        _validate(stac.to_dict(), validator)
        collections = {collection.id: collection for collection in stac.get_collections()}
        assert set(collections) >= {"acme/hidden", "acme/link", "acme/public", "rasters"}, sorted(collections)
        public = collections["acme/public"]
        assert public.title == "Public survey" and public.license == "CC-BY-4.0"
        _validate(public.to_dict(), validator)
        west, south, east, north = public.extent.spatial.bboxes[0]
        assert (west, east) == (-180.0, 180.0) and south < -17 and north >= 70

        items = list(public.get_items())
        assert sorted(item.properties["title"] for item in items) == ["dir/tromso.tif", "fiji.tif", "oslo.tif"]
        for item in items:
            _validate(item.to_dict(), validator)
            assert item.datetime is not None and item.properties["proj:code"] == "EPSG:4326"
            assert item.properties["proj:shape"][0] > 0 and len(item.properties["proj:transform"]) == 6
            assert item.assets["data"].href.startswith(f"{url}/orgs/acme/ds/public/download?path=")
        fiji = next(item for item in items if item.properties["title"] == "fiji.tif")
        assert fiji.bbox[0] > fiji.bbox[2], "a box across the antimeridian has minx > maxx"
        assert fiji.geometry["type"] == "MultiPolygon"

        every = list(stac.search(limit=2, max_items=None).items())
        ids = [(item.collection_id, item.id) for item in every]
        assert len(ids) == len(set(ids)) == 7, "5 uploaded rasters, the Datasets API raster's entry and its raster"
        near_dateline = stac.search(bbox=[179.0, -18.0, -179.0, -16.0], max_items=None)
        assert [item.properties["title"] for item in near_dateline.items()] == ["fiji.tif"]
        by_intersects = stac.search(intersects={"type": "Point", "coordinates": [10.1, 60.9]},
                                    collections=["acme/public"], method="POST", limit=1, max_items=None)
        assert [item.properties["title"] for item in by_intersects.items()] == ["oslo.tif"]
        raster = catalogue["raster"]
        registered = list(stac.search(collections=["rasters"], max_items=None).items())
        assert [item.id for item in registered] == [raster.get("datasetId", raster.get("dataset_id"))]
        assert "thumbnail" in registered[0].assets
        _validate(registered[0].to_dict(), validator)


def test_anonymous_and_outsiders_see_public_datasets_only(client, catalogue):
    anonymous = client.get("/stac").json()
    children = sorted(link["href"].split("/stac/collections/")[1] for link in anonymous["links"]
                      if link["rel"] == "child")
    assert children == ["acme/public"]
    outsider = client.get("/stac/collections", headers=catalogue["outsider"]).json()
    assert sorted(c["id"] for c in outsider["collections"]) == ["acme/public", "rasters"]
    found = client.get("/stac/search", params={"limit": 100}).json()
    assert {f["collection"] for f in found["features"]} == {"acme/public"}
    assert_error(client.get("/stac/collections/acme/hidden"), 401)
    assert_error(client.get("/stac/collections/acme/hidden", headers=catalogue["outsider"]), 404)
    assert_error(client.get("/stac/collections/rasters"), 401)
    assert_error(client.get("/stac/search", params={"collections": "acme/hidden"},
                            headers=catalogue["outsider"]), 404)
    # an unlisted dataset is not listed, but its collection opens by id like its other routes
    assert client.get("/stac/collections/acme/link").status_code == 200
    assert client.get("/orgs/acme/ds/public/stac").json()["id"] == "acme/public"


def test_filters_by_datetime_ids_and_items_by_id(client, catalogue, validator):
    admin = catalogue["admin"]
    page = client.get("/stac/collections/acme/public/items", params={"limit": 1}, headers=admin).json()
    _validate(page["features"][0], validator)
    first = page["features"][0]
    assert [link["rel"] for link in page["links"]].count("next") == 1
    one = client.get(f"/stac/collections/acme/public/items/{first['id']}", headers=admin).json()
    assert one["id"] == first["id"] and one["links"][0]["rel"] == "self"
    assert client.get(one["links"][0]["href"].replace("http://testserver", ""), headers=admin).json()["id"] == one["id"]
    assert _ids(client.get("/stac/search", params={"ids": first["id"]}, headers=admin).json()) == \
        [first["properties"]["title"]]
    everything = client.get("/stac/search", params={"datetime": "2000-01-01T00:00:00Z/..", "limit": 100},
                            headers=admin).json()
    assert everything["numberReturned"] == 7
    assert client.get("/stac/search", params={"datetime": "../2000-01-01T00:00:00Z"},
                      headers=admin).json()["features"] == []
    assert_error(client.get("/stac/collections/acme/public/items/nope", headers=admin), 404, "item_not_found")


def test_registry_collection_pages_keep_each_entry_with_its_raster(client, admin_headers, tmp_path):
    """The Datasets API's rasters are entries of ``default/registry``: one item a page, every page past the first
    reached by its ``next`` token, each item still joined with its raster (its title and thumbnail)."""
    titles = [f"r{index}" for index in range(4)]
    for index, title in enumerate(titles):
        response = upload_raster(client, admin_headers, write_geotiff(tmp_path / f"{title}.tif",
                                                                      origin=(10.0 + index, 60.0)))
        assert response.status_code == 201, response.text
    url, seen = "/stac/collections/default/registry/items?limit=1", []
    while url:
        page = client.get(url.replace("http://testserver", ""), headers=admin_headers).json()
        assert page["numberReturned"] == len(page["features"]) == 1, page
        item = page["features"][0]
        assert "thumbnail" in item["assets"], item
        seen.append(item["assets"]["thumbnail"]["href"])
        url = next((link["href"] for link in page["links"] if link["rel"] == "next"), None)
    assert len(seen) == len(set(seen)) == len(titles)


HOSTILE_SEARCHES = [
    ({"bbox": "1,2,3"}, "invalid_bbox"),
    ({"bbox": "a,b,c,d"}, "invalid_bbox"),
    ({"bbox": "0,80,10,-80"}, "invalid_bbox"),
    ({"datetime": "yesterday"}, "invalid_datetime"),
    ({"datetime": "2020-01-01T00:00:00"}, "invalid_datetime"),
    ({"datetime": "../.."}, "invalid_datetime"),
    ({"datetime": "2021-01-01T00:00:00Z/2020-01-01T00:00:00Z"}, "invalid_datetime"),
    ({"intersects": "{not json"}, "invalid_intersects"),
    ({"intersects": '{"type": "Polygon", "coordinates": [[1, 2]]}'}, "invalid_intersects"),
    ({"token": "x' OR 1=1"}, "invalid_token"),
    ({"bbox": "0,0,1,1", "intersects": '{"type": "Point", "coordinates": [0, 0]}'}, "invalid_search"),
]


def test_hostile_search_parameters_are_clear_400s(client, admin_headers):
    for params, code in HOSTILE_SEARCHES:
        assert_error(client.get("/stac/search", params=params, headers=admin_headers), 400, code)


def test_hostile_post_search_bodies(client, admin_headers):
    assert_error(client.post("/stac/search", json={"limit": 0}, headers=admin_headers), 422)
    assert_error(client.post("/stac/search", json={"bbox": [0, 0, 1]}, headers=admin_headers), 422)
    assert_error(client.post("/stac/search", json={"intersects": {"type": "Nope"}}, headers=admin_headers), 400,
                 "invalid_intersects")
    assert_error(client.get("/stac/search", params={"limit": 100000}, headers=admin_headers), 422)
    assert_error(client.get("/stac/collections/acme", headers=admin_headers), 404)
