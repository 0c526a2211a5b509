"""``/sys`` administration: move datasets (halt / overwrite / rename), merge organizations, empty datasets,
visibility from metadata, purging old task records, reconciling a dataset with its files; admins only."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, select

from georeg.core.db import make_engine
from georeg.core.models import Dataset, Task
from georeg.core.registry.artifacts import build_dir
from georeg.core.timeutil import utcnow
from tests.helpers import assert_error, create_dataset, upload_object


def _org(client, headers, slug: str) -> None:
    assert client.post("/orgs", json={"slug": slug, "name": slug}, headers=headers).status_code == 201


def _files(client, headers, org: str, ds: str) -> list[str]:
    response = client.get(f"/orgs/{org}/ds/{ds}/list", headers=headers)
    assert response.status_code == 200, response.text
    return sorted(entry["path"] for entry in response.json())


def test_move_datasets_halt_overwrite_and_rename(client, admin_headers, settings):
    for org in ("src", "dst"):
        _org(client, admin_headers, org)
    for slug in ("a", "b", "c"):
        create_dataset(client, admin_headers, org="src", slug=slug)
        upload_object(client, admin_headers, f"{slug}.txt", slug.encode(), dataset=f"/orgs/src/ds/{slug}")
    client.post("/orgs/src/ds/a/meta/name/set", json="Alpha", headers=admin_headers)
    create_dataset(client, admin_headers, org="dst", slug="b")
    upload_object(client, admin_headers, "old.txt", b"old", dataset="/orgs/dst/ds/b")

    halted = client.post("/sys/move-datasets", json={"sourceOrgSlug": "src", "datasetSlugs": ["a", "b", "c"],
                                                     "destinationOrgSlug": "dst"}, headers=admin_headers)
    assert halted.status_code == 200, halted.text
    assert [(r["originalSlug"], r["success"]) for r in halted.json()] == [("a", True), ("b", False), ("c", False)]
    assert "already exists" in halted.json()[1]["error"] and "halted" in halted.json()[2]["error"]
    assert _files(client, admin_headers, "dst", "a") == ["a.txt"]
    assert client.get("/orgs/dst/ds/a/meta/name", headers=admin_headers).json()["data"] == "Alpha"
    assert client.get("/orgs/dst/ds/a/download?path=a.txt", headers=admin_headers).content == b"a"
    assert_error(client.get("/orgs/src/ds/a", headers=admin_headers), 404)
    assert not (settings.storage_dir / "src" / "a").exists()

    renamed = client.post("/sys/move-datasets", json={"sourceOrgSlug": "src", "datasetSlugs": ["b"],
                                                      "destinationOrgSlug": "dst", "conflictResolution": "rename"},
                          headers=admin_headers).json()
    assert renamed == [{"originalSlug": "b", "newSlug": "b-1", "success": True, "error": None}]
    assert _files(client, admin_headers, "dst", "b") == ["old.txt"]
    assert _files(client, admin_headers, "dst", "b-1") == ["b.txt"]

    create_dataset(client, admin_headers, org="dst", slug="c")
    overwritten = client.post("/sys/move-datasets", json={"sourceOrgSlug": "src", "datasetSlugs": ["c", "nope"],
                                                          "destinationOrgSlug": "dst",
                                                          "conflictResolution": "overwrite"},
                              headers=admin_headers).json()
    assert [(r["originalSlug"], r["success"]) for r in overwritten] == [("c", True), ("nope", False)]
    assert _files(client, admin_headers, "dst", "c") == ["c.txt"]


def test_merge_organizations_moves_datasets_members_and_deletes_the_source(client, admin_headers, make_user):
    _org(client, admin_headers, "old")
    _org(client, admin_headers, "new")
    make_user("alice")
    make_user("bob")
    client.put("/users/alice/orgs", json=[{"slug": "old", "permission": "write"}], headers=admin_headers)
    client.put("/users/bob/orgs", json=[{"slug": "old", "permission": "admin"}, {"slug": "new", "permission": "read"}],
               headers=admin_headers)
    for slug in ("x", "y"):
        create_dataset(client, admin_headers, org="old", slug=slug)
    create_dataset(client, admin_headers, org="new", slug="y")
    kept = client.post("/sys/merge-organizations", json={"sourceOrgSlug": "old", "destinationOrgSlug": "new",
                                                         "deleteSourceOrganization": True}, headers=admin_headers)
    assert kept.status_code == 200, kept.text
    body = kept.json()
    assert [(r["originalSlug"], r["success"]) for r in body["datasets"]] == [("x", True), ("y", False)]
    assert body["membersMerged"] == 2 and body["sourceDeleted"] is False, "a failed move keeps the source"
    assert client.get("/orgs/old", headers=admin_headers).status_code == 200
    done = client.post("/sys/merge-organizations", json={"sourceOrgSlug": "old", "destinationOrgSlug": "new",
                                                         "conflictResolution": "rename",
                                                         "deleteSourceOrganization": True},
                       headers=admin_headers).json()
    assert done["datasets"][0]["newSlug"] == "y-1" and done["sourceDeleted"] is True
    assert_error(client.get("/orgs/old", headers=admin_headers), 404)
    orgs = {o["slug"]: o for o in client.get("/users/bob/orgs", headers=admin_headers).json()}
    assert "new" in orgs


def test_cleanups_visibility_and_task_records(client, admin_headers, settings):
    create_dataset(client, admin_headers, org="admin", slug="empty")
    create_dataset(client, admin_headers, org="admin", slug="full")
    upload_object(client, admin_headers, "f.txt", b"f", dataset="/orgs/admin/ds/full")
    upload_object(client, admin_headers, "g.txt", b"g", dataset="/orgs/admin/ds/full")
    create_dataset(client, admin_headers, org="admin", slug="tagged")
    client.post("/orgs/admin/ds/tagged/meta/visibility/set", json=2, headers=admin_headers)

    removed = client.post("/sys/cleanupdatasets", headers=admin_headers).json()["removed"]
    assert "admin/empty" in removed and "admin/full" not in removed and "admin/tagged" not in removed
    assert client.post("/sys/migratevisibility", headers=admin_headers).json() == {"migrated": ["admin/tagged"]}
    assert client.get("/orgs/admin/ds/tagged/ex").status_code == 200, "public now: anonymous can read"

    (settings.storage_dir / "admin" / "full" / "g.txt").unlink()
    report = client.post("/sys/cleanup", params={"orgSlug": "admin", "dsSlug": "full"}, headers=admin_headers)
    assert report.json() == {"removedEntries": ["g.txt"], "removedArtifacts": [], "freedBytes": 0}
    assert _files(client, admin_headers, "admin", "full") == ["f.txt"]

    engine = make_engine(settings.effective_database_url)
    try:
        with Session(engine) as session:
            dataset = session.exec(select(Dataset).where(Dataset.slug == "full")).one()
            for age, state in ((90, "Succeeded"), (90, "Processing"), (5, "Failed")):
                session.add(Task(tool_id="zip", tool_version="1", dedup_key="k", org_id=dataset.org_id,
                                 dataset_id=dataset.id, state=state, parameters={},
                                 created_at=utcnow() - timedelta(days=age),
                                 finished_at=None if state == "Processing" else utcnow() - timedelta(days=age)))
            session.commit()
    finally:
        engine.dispose()
    assert client.post("/sys/cleanup-jobindices", headers=admin_headers).json() == {"deleted": 1}
    assert client.post("/sys/cleanup-jobindices", params={"retentionDays": 1},
                       headers=admin_headers).json() == {"deleted": 1}


def test_administration_is_for_admins_and_refuses_bad_input(client, admin_headers, make_user):
    user = make_user("carol")
    for path in ("/sys/cleanupdatasets", "/sys/migratevisibility", "/sys/cleanup-jobindices"):
        assert_error(client.post(path), 401)
        assert_error(client.post(path, headers=user), 403)
    body = {"sourceOrgSlug": "admin", "datasetSlugs": ["d"], "destinationOrgSlug": "admin"}
    assert_error(client.post("/sys/move-datasets", json=body, headers=user), 403)
    assert_error(client.post("/sys/move-datasets", json=body, headers=admin_headers), 400, "same_organization")
    assert_error(client.post("/sys/move-datasets", json={**body, "destinationOrgSlug": "missing"},
                             headers=admin_headers), 404)
    assert_error(client.post("/sys/move-datasets", json={**body, "conflictResolution": "merge"},
                             headers=admin_headers), 422)
    assert_error(client.post("/sys/move-datasets", json={**body, "datasetSlugs": []}, headers=admin_headers), 422)
    _org(client, admin_headers, "other")
    traversal = client.post("/sys/move-datasets", json={**body, "destinationOrgSlug": "other",
                                                        "datasetSlugs": ["../../etc"]}, headers=admin_headers)
    assert traversal.status_code == 200 and traversal.json()[0]["success"] is False
    assert_error(client.post("/sys/cleanup-jobindices", params={"retentionDays": 0}, headers=admin_headers), 422)
    assert_error(client.post("/sys/cleanup", params={"orgSlug": "admin", "dsSlug": "nope"}, headers=admin_headers),
                 404)
    assert_error(client.post("/sys/cleanup", params={"orgSlug": "admin"}, headers=admin_headers), 422,
                 "dataset_incomplete")
    assert_error(client.post("/sys/cleanup", params={"dsSlug": "../x"}, headers=admin_headers), 422)
    assert_error(client.post("/sys/cleanup", headers=user), 403)


def _fake_build(settings, sha256: str, size: int = 100) -> None:
    artifact = build_dir(settings, sha256) / "cog" / "cog.tif"
    artifact.parent.mkdir(parents=True, exist_ok=True)
    artifact.write_bytes(b"x" * size)


def test_dataset_cleanup_removes_builds_no_entry_holds(client, admin_headers, settings):
    """A build stays while any entry of any dataset holds its content; the dataset's cleanup removes the builds of
    the rows it removed and of contents it had built earlier that are gone everywhere."""
    for slug in ("one", "two"):
        create_dataset(client, admin_headers, org="admin", slug=slug)
    gone = upload_object(client, admin_headers, "gone.txt", b"gone", dataset="/orgs/admin/ds/one").json()["hash"]
    shared = upload_object(client, admin_headers, "shared.txt", b"shared", dataset="/orgs/admin/ds/one").json()["hash"]
    upload_object(client, admin_headers, "copy.txt", b"shared", dataset="/orgs/admin/ds/two")
    deleted = upload_object(client, admin_headers, "old.txt", b"old", dataset="/orgs/admin/ds/one").json()["hash"]
    for sha in (gone, shared, deleted):
        _fake_build(settings, sha)
    engine = make_engine(settings.effective_database_url)
    try:
        with Session(engine) as session:
            dataset = session.exec(select(Dataset).where(Dataset.slug == "one")).one()
            session.add(Task(tool_id="build", tool_version="1", dedup_key="b", org_id=dataset.org_id,
                             dataset_id=dataset.id, state="Succeeded", parameters={"hash": deleted}, path="old.txt"))
            session.commit()
    finally:
        engine.dispose()
    assert client.delete("/orgs/admin/ds/one/obj", params={"path": "old.txt"}, headers=admin_headers).status_code < 300
    (settings.storage_dir / "admin" / "one" / "gone.txt").unlink()
    (settings.storage_dir / "admin" / "one" / "shared.txt").unlink()

    report = client.post("/sys/cleanup", params={"orgSlug": "admin", "dsSlug": "one"}, headers=admin_headers).json()
    assert report["removedEntries"] == ["gone.txt", "shared.txt"]
    assert sorted(report["removedArtifacts"]) == sorted([gone, deleted]) and report["freedBytes"] == 200
    assert not build_dir(settings, gone).exists() and not build_dir(settings, deleted).exists()
    assert build_dir(settings, shared).is_dir(), "admin/two still holds that content"
    again = client.post("/sys/cleanup", params={"orgSlug": "admin", "dsSlug": "one"}, headers=admin_headers).json()
    assert again == {"removedEntries": [], "removedArtifacts": [], "freedBytes": 0}
