"""Organizations and datasets: CRUD, totals, rename, chattr, stamp, ex, cascade deletes."""

from __future__ import annotations

from tests.helpers import assert_error


def test_org_crud_and_totals(client, admin_headers, make_user):
    user = make_user("uma")
    created = client.post("/orgs", json={"slug": "geo", "name": "Geo", "isPublic": True}, headers=user)
    assert created.status_code == 201
    assert created.json()["owner"] == "uma" and created.json()["isPublic"] is True
    assert_error(client.post("/orgs", json={"slug": "geo", "name": "Again"}, headers=user), 409, "org_exists")
    assert_error(client.post("/orgs", json={"slug": "Not A Slug", "name": "x"}, headers=user), 400,
                 "invalid_organization_slug")
    assert_error(client.post("/orgs", json={"slug": "x"}, headers=user), 422, "validation_error")
    assert_error(client.post("/orgs", json={"slug": "anon", "name": "x"}), 401)

    public = client.get("/orgs/public").json()
    assert public["total"] == 1 and public["items"][0]["slug"] == "geo"
    mine = client.get("/orgs", headers=user).json()
    assert {o["slug"] for o in mine["items"]} == {"geo", "uma"} and mine["total"] == 2
    everything = client.get("/orgs", headers=admin_headers).json()
    assert everything["total"] == 4
    paged = client.get("/orgs", params={"skip": 1, "take": 2}, headers=admin_headers).json()
    assert paged["total"] == 4 and len(paged["items"]) == 2 and paged["skip"] == 1
    assert_error(client.get("/orgs", params={"take": 0}, headers=admin_headers), 422)

    updated = client.put("/orgs/geo", json={"name": "Geo team", "isPublic": False}, headers=user).json()
    assert updated["name"] == "Geo team" and updated["isPublic"] is False
    assert client.delete("/orgs/geo", headers=user).status_code == 204
    assert_error(client.get("/orgs/geo", headers=user), 404, "org_not_found")
    assert_error(client.delete("/orgs/uma", headers=user), 400, "personal_org")


def test_dataset_lifecycle(client, admin_headers, settings):
    created = client.post("/orgs/admin/ds", json={"slug": "survey", "name": "Survey 2026", "visibility": "unlisted"},
                          headers=admin_headers)
    assert created.status_code == 201
    assert created.json()["visibility"] == "unlisted" and created.json()["entries"] == 0
    assert_error(client.post("/orgs/admin/ds", json={"slug": "survey"}, headers=admin_headers), 409, "dataset_exists")
    assert_error(client.post("/orgs/admin/ds", json={"slug": "../x"}, headers=admin_headers), 400)
    assert_error(client.post("/orgs/admin/ds", json={"slug": "ok", "visibility": "secret"}, headers=admin_headers), 422)

    client.post("/orgs/admin/ds/survey/obj", files={"file": ("a.txt", b"abc")}, data={"path": "a.txt"},
                headers=admin_headers)
    info = client.get("/orgs/admin/ds/survey/ex", headers=admin_headers).json()
    assert info["entries"] == 1 and info["size"] == 3
    assert info["permissions"] == {"canRead": True, "canWrite": True, "canDelete": True}
    assert [e["path"] for e in client.get("/orgs/admin/ds/survey", headers=admin_headers).json()] == ["a.txt"]
    stamp = client.get("/orgs/admin/ds/survey/stamp", headers=admin_headers).json()
    assert len(stamp["checksum"]) == 64 and [list(e) for e in stamp["entries"]] == [["a.txt"]] and stamp["meta"] == []

    renamed = client.post("/orgs/admin/ds/survey/rename", json={"slug": "survey-2026"}, headers=admin_headers)
    assert renamed.status_code == 200 and renamed.json()["slug"] == "survey-2026"
    assert (settings.storage_dir / "admin" / "survey-2026" / "a.txt").read_bytes() == b"abc"
    assert not (settings.storage_dir / "admin" / "survey").exists()
    assert_error(client.get("/orgs/admin/ds/survey", headers=admin_headers), 404)
    client.post("/orgs/admin/ds", json={"slug": "other"}, headers=admin_headers)
    assert_error(client.post("/orgs/admin/ds/other/rename", json={"slug": "survey-2026"}, headers=admin_headers), 409)

    changed = client.post("/orgs/admin/ds/survey-2026/chattr", json={"visibility": "public"}, headers=admin_headers)
    assert changed.json()["visibility"] == "public"
    assert_error(client.post("/orgs/admin/ds/survey-2026/chattr", json={"visibility": "world"},
                             headers=admin_headers), 422)
    assert client.put("/orgs/admin/ds/survey-2026", json={"description": "d", "meta": {"k": 1}},
                      headers=admin_headers).json()["meta"] == {"k": 1}

    listing = client.get("/orgs/admin/ds", headers=admin_headers).json()
    assert listing["total"] == 2 and [d["slug"] for d in listing["items"]] == ["other", "survey-2026"]

    assert client.delete("/orgs/admin/ds/survey-2026", headers=admin_headers).status_code == 204
    assert not (settings.storage_dir / "admin" / "survey-2026").exists()
    assert_error(client.get("/orgs/admin/ds/survey-2026/list", headers=admin_headers), 404)


def test_deleting_an_org_removes_datasets_entries_and_files(client, admin_headers, settings):
    client.post("/orgs", json={"slug": "tmp-org", "name": "Tmp"}, headers=admin_headers)
    client.post("/orgs/tmp-org/ds", json={"slug": "d"}, headers=admin_headers)
    client.post("/orgs/tmp-org/ds/d/obj", files={"file": ("a.txt", b"abc")}, headers=admin_headers)
    assert (settings.storage_dir / "tmp-org" / "d" / "a.txt").exists()
    assert client.delete("/orgs/tmp-org", headers=admin_headers).status_code == 204
    assert not (settings.storage_dir / "tmp-org").exists()
    client.post("/orgs", json={"slug": "tmp-org", "name": "Tmp"}, headers=admin_headers)
    client.post("/orgs/tmp-org/ds", json={"slug": "d"}, headers=admin_headers)
    assert client.get("/orgs/tmp-org/ds/d/list", headers=admin_headers).json() == []
