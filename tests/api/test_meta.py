"""Dataset metadata (``/orgs/{org}/ds/{ds}/meta``): plural and singular keys, ids, list, get/add/set/delete, dump,
entry metadata through ``path`` (following moves, going with deletes), JSON bodies and DroneDB's form field ``data``,
hostile inputs that must leave nothing written, access rules, and the stamp."""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from georeg.core.db import make_engine
from georeg.core.models import DatasetMeta
from tests.helpers import assert_error, create_dataset, upload_object, upload_raster
from tests.rasters import write_geotiff

BASE = "/orgs/admin/ds/d"
META = f"{BASE}/meta"


def _ok(response, status: int = 200):
    assert response.status_code == status, response.text
    return response.json()


def _post_json(client, headers, url: str, value, path: str | None) -> dict:
    """POST ``value`` as the JSON body (``json=None`` would send no body at all)."""
    params = {"path": path} if path is not None else None
    return _ok(client.post(url, content=json.dumps(value), params=params,
                           headers={**headers, "Content-Type": "application/json"}))


def _set(client, headers, key: str, value, *, path: str | None = None) -> dict:
    return _post_json(client, headers, f"{META}/{key}/set", value, path)


def _add(client, headers, key: str, value, *, path: str | None = None) -> dict:
    return _post_json(client, headers, f"{META}/{key}", value, path)


def _dump(client, headers, base: str = BASE) -> list[dict]:
    return _ok(client.post(f"{base}/meta/dump", headers=headers))


def _meta_rows(settings) -> int:
    """Metadata rows in the whole registry database."""
    engine = make_engine(settings.effective_database_url)
    try:
        with Session(engine) as session:
            return session.exec(select(func.count()).select_from(DatasetMeta)).one()
    finally:
        engine.dispose()


def test_singular_key_set_replaces_and_get_answers_one_object(client, ds):
    first = _set(client, ds, "name", "Survey 2026")
    assert set(first) == {"id", "data", "mtime"} and first["data"] == "Survey 2026"
    assert str(uuid.UUID(first["id"])) == first["id"]
    assert _ok(client.get(f"{META}/name", headers=ds)) == first

    second = _set(client, ds, "name", {"en": "Survey", "nb": "Oppmåling"})
    assert second["id"] != first["id"]
    assert _ok(client.get(f"{META}/name", headers=ds)) == second
    assert _ok(client.get(f"{META}/list", headers=ds)) == [{"key": "name", "path": "", "count": 1}]

    body = assert_error(client.post(f"{META}/name", json="x", headers=ds), 400, "singular_key")
    assert "/set" in body["error"]
    assert_error(client.post(f"{META}/tags/set", json="x", headers=ds), 400, "plural_key")
    assert_error(client.get(f"{META}/license", headers=ds), 404, "meta_not_found")
    assert [row["id"] for row in _dump(client, ds)] == [second["id"]]


def test_plural_key_add_appends_and_get_answers_a_list(client, ds):
    values = [{"a": 1}, [1, 2], "text", 3.5, True, None]
    added = [_add(client, ds, "tags", value) for value in values]
    assert len({row["id"] for row in added}) == len(values)
    assert _ok(client.get(f"{META}/tags", headers=ds)) == added
    assert [row["data"] for row in added] == values
    _set(client, ds, "license", "CC-BY-4.0")
    assert _ok(client.get(f"{META}/list", headers=ds)) == [
        {"key": "license", "path": "", "count": 1}, {"key": "tags", "path": "", "count": 6}]

    assert _ok(client.delete(f"{META}/{added[1]['id']}", headers=ds)) == {"removed": 1}
    assert _ok(client.get(f"{META}/tags", headers=ds)) == [added[0], *added[2:]]
    assert _ok(client.delete(f"{META}/{added[1]['id']}", headers=ds)) == {"removed": 0}  # gone: now read as a key
    assert _ok(client.delete(f"{META}/{added[0]['id'].upper()}", headers=ds)) == {"removed": 1}  # any uuid spelling
    assert _ok(client.delete(f"{META}/tags", headers=ds)) == {"removed": 4}
    assert_error(client.get(f"{META}/tags", headers=ds), 404, "meta_not_found")
    assert _ok(client.delete(f"{META}/tags", headers=ds)) == {"removed": 0}
    assert _ok(client.get(f"{META}/list", headers=ds)) == [{"key": "license", "path": "", "count": 1}]


@pytest.mark.parametrize("value", [None, False, 0, -1.25e-7, "", "ünïcødé \u2603 a\u0000b", [], {},
                                   [{"a": [None, {"b": []}]}], 2**63 - 1, -(2**63), 1e308])
def test_any_json_value_round_trips(client, ds, value):
    stored = _set(client, ds, "value", value)
    assert stored["data"] == value
    assert _ok(client.get(f"{META}/value", headers=ds))["data"] == value


def test_droneddb_form_field_data(client, ds):
    """DroneDB's clients send the value as the form field ``data`` holding JSON text, urlencoded or multipart."""
    urlencoded = _ok(client.post(f"{META}/name/set", data={"data": '{"title": "a & b = c"}'}, headers=ds))
    assert urlencoded["data"] == {"title": "a & b = c"}
    multipart = _ok(client.post(f"{META}/tags", data={"data": '["x", 1]'}, files={"unused": (None, "")}, headers=ds))
    assert multipart["data"] == ["x", 1]
    text = _ok(client.post(f"{META}/tags", data={"data": '"plain"'}, headers=ds))
    assert _ok(client.get(f"{META}/tags", headers=ds)) == [multipart, text]

    assert upload_object(client, ds, "a.txt", b"1").status_code == 201
    entry = _ok(client.post(f"{META}/name/set", data={"data": "1", "path": "a.txt"}, headers=ds))  # DroneDB's path
    assert _ok(client.get(f"{META}/name", params={"path": "a.txt"}, headers=ds)) == entry
    assert_error(client.post(f"{META}/name/set", data={"data": "1", "path": "../a.txt"}, headers=ds), 400,
                 "invalid_path")
    assert_error(client.post(f"{META}/name/set", data={"data": "1", "path": "b.txt"}, headers=ds), 404,
                 "entry_not_found")

    assert_error(client.post(f"{META}/tags", data={"other": "1"}, headers=ds), 400, "invalid_meta_data")
    assert_error(client.post(f"{META}/tags", data={"data": "not json"}, headers=ds), 400, "invalid_meta_data")
    assert len(_dump(client, ds)) == 4


def test_entry_metadata_through_path(client, ds):
    assert upload_object(client, ds, "folder/a.txt", b"1").status_code == 201
    entry = _set(client, ds, "name", "the file", path="folder/a.txt")
    folder = _add(client, ds, "notes", "the folder", path="folder/")  # normalized to "folder"
    own = _set(client, ds, "name", "the dataset")

    assert _ok(client.get(f"{META}/name", params={"path": "folder/a.txt"}, headers=ds)) == entry
    assert _ok(client.get(f"{META}/name", headers=ds)) == own
    assert _ok(client.get(f"{META}/name", params={"path": ""}, headers=ds)) == own
    assert_error(client.get(f"{META}/name", params={"path": "folder"}, headers=ds), 404, "meta_not_found")
    assert _ok(client.get(f"{META}/list", params={"path": "folder"}, headers=ds)) == [
        {"key": "notes", "path": "folder", "count": 1}]
    assert _ok(client.get(f"{META}/list", params={"path": "folder/a.txt"}, headers=ds)) == [
        {"key": "name", "path": "folder/a.txt", "count": 1}]

    for call in (lambda p: client.get(f"{META}/list", params=p, headers=ds),
                 lambda p: client.get(f"{META}/name", params=p, headers=ds),
                 lambda p: client.post(f"{META}/name/set", json=1, params=p, headers=ds),
                 lambda p: client.post(f"{META}/tags", json=1, params=p, headers=ds),
                 lambda p: client.delete(f"{META}/name", params=p, headers=ds)):
        assert_error(call({"path": "folder/missing.tif"}), 404, "entry_not_found")
        assert_error(call({"path": "../d/folder/a.txt"}), 400, "invalid_path")
        assert_error(call({"path": "/etc/passwd"}), 400, "invalid_path")

    # the path of a value: dump tells every one
    dump = _dump(client, ds)
    assert [(row["path"], row["key"], row["data"]) for row in dump] == [
        ("", "name", "the dataset"), ("folder", "notes", "the folder"), ("folder/a.txt", "name", "the file")]
    assert {row["id"] for row in dump} == {entry["id"], folder["id"], own["id"]}
    # deleting by key is scoped to the path; by id the value goes wherever it is
    assert _ok(client.delete(f"{META}/name", params={"path": "folder/a.txt"}, headers=ds)) == {"removed": 1}
    assert _ok(client.delete(f"{META}/{folder['id']}", headers=ds)) == {"removed": 1}
    assert [row["id"] for row in _dump(client, ds)] == [own["id"]]


def test_metadata_follows_moves_and_goes_with_deletes(client, ds, settings):
    for path in ("survey/a.txt", "survey/sub/b.txt", "surveyor.txt"):
        assert upload_object(client, ds, path, path.encode()).status_code == 201
    for path in ("survey", "survey/a.txt", "survey/sub", "survey/sub/b.txt", "surveyor.txt"):
        _set(client, ds, "name", path, path=path)
    own = _set(client, ds, "name", "dataset")

    moved = client.put(f"{BASE}/obj", json={"source": "survey", "dest": "archive/2026"}, headers=ds)
    assert moved.status_code == 200, moved.text
    where = {row["path"]: row["data"] for row in _dump(client, ds)}
    assert where == {"": "dataset", "archive/2026": "survey", "archive/2026/a.txt": "survey/a.txt",
                     "archive/2026/sub": "survey/sub", "archive/2026/sub/b.txt": "survey/sub/b.txt",
                     "surveyor.txt": "surveyor.txt"}  # a sibling sharing the prefix stays where it is
    assert _ok(client.get(f"{META}/name", params={"path": "archive/2026/sub/b.txt"}, headers=ds))["data"] == \
        "survey/sub/b.txt"
    assert_error(client.get(f"{META}/name", params={"path": "survey/a.txt"}, headers=ds), 404, "entry_not_found")

    assert client.put(f"{BASE}/obj", json={"source": "surveyor.txt", "dest": "s.txt"}, headers=ds).status_code == 200
    assert _ok(client.get(f"{META}/name", params={"path": "s.txt"}, headers=ds))["data"] == "surveyor.txt"

    assert _ok(client.delete(f"{BASE}/obj", params={"path": "archive/2026"}, headers=ds)) == {"removed": 4}
    assert {row["path"] for row in _dump(client, ds)} == {"", "s.txt"}
    assert client.request("DELETE", f"{BASE}/obj/batch", json={"paths": ["s.txt"]}, headers=ds).status_code == 200
    # a new file at a deleted path starts without metadata
    assert upload_object(client, ds, "s.txt", b"new").status_code == 201
    assert _ok(client.get(f"{META}/list", params={"path": "s.txt"}, headers=ds)) == []
    assert [row["id"] for row in _dump(client, ds)] == [own["id"]]

    assert client.delete(BASE, headers=ds).status_code == 204
    assert _meta_rows(settings) == 0  # the dataset's metadata went with it
    create_dataset(client, ds)
    assert _dump(client, ds) == [] and _ok(client.get(f"{META}/list", headers=ds)) == []


def test_raster_delete_takes_its_entry_metadata(client, admin_headers, tmp_path):
    registered = upload_raster(client, admin_headers, write_geotiff(tmp_path / "scene.tif"))
    assert registered.status_code == 201, registered.text
    registry = "/orgs/default/ds/registry"
    files = client.post(f"{registry}/search", json={"query": "scene.tif"}, headers=admin_headers).json()
    path = files[0]["path"]
    folder = path.rsplit("/", 1)[0]
    for where in (path, folder):
        _ok(client.post(f"{registry}/meta/name/set", json=where, params={"path": where}, headers=admin_headers))
    assert len(_dump(client, admin_headers, registry)) == 2
    deleted = client.delete(f"/datasets/{registered.json()['dataset_id']}", headers=admin_headers)
    assert deleted.status_code in (200, 204), deleted.text
    assert _dump(client, admin_headers, registry) == []


def test_dump_with_and_without_ids(client, ds):
    assert upload_object(client, ds, "b.txt", b"1").status_code == 201
    rows = [_add(client, ds, "tags", 1, path="b.txt"), _add(client, ds, "tags", 2), _set(client, ds, "name", "n"),
            _add(client, ds, "tags", 3), _set(client, ds, "license", "l", path="b.txt")]
    everything = _dump(client, ds)
    assert [(row["path"], row["key"], row["data"]) for row in everything] == [
        ("", "name", "n"), ("", "tags", 2), ("", "tags", 3), ("b.txt", "license", "l"), ("b.txt", "tags", 1)]
    assert all(set(row) == {"id", "path", "key", "data", "mtime"} for row in everything)
    assert _ok(client.post(f"{META}/dump", json={}, headers=ds)) == everything
    assert _ok(client.post(f"{META}/dump", json={"ids": None}, headers=ds)) == everything

    wanted = [rows[3]["id"], rows[0]["id"], str(uuid.uuid4()), "not-an-id"]
    subset = _ok(client.post(f"{META}/dump", json={"ids": wanted}, headers=ds))
    assert [row["id"] for row in subset] == [rows[3]["id"], rows[0]["id"]]  # by path, key, mtime; unknown skipped
    assert _ok(client.post(f"{META}/dump", data={"ids": json.dumps(wanted)}, headers=ds)) == subset
    assert _ok(client.post(f"{META}/dump", json={"ids": []}, headers=ds)) == []

    assert_error(client.post(f"{META}/dump", json={"ids": "x"}, headers=ds), 400, "invalid_meta_ids")
    assert_error(client.post(f"{META}/dump", json=[1], headers=ds), 400, "invalid_meta_ids")
    assert_error(client.post(f"{META}/dump", json={"ids": [1]}, headers=ds), 400, "invalid_meta_ids")
    assert_error(client.post(f"{META}/dump", data={"ids": "[oops"}, headers=ds), 400, "invalid_meta_data")


def test_ids_of_another_dataset_are_keys_here(client, ds):
    create_dataset(client, ds, slug="e")
    other = _ok(client.post("/orgs/admin/ds/e/meta/tags", json="theirs", headers=ds))
    assert _ok(client.delete(f"{META}/{other['id']}", headers=ds)) == {"removed": 0}
    assert _ok(client.post(f"{META}/dump", json={"ids": [other["id"]]}, headers=ds)) == []
    assert [row["id"] for row in _dump(client, ds, "/orgs/admin/ds/e")] == [other["id"]]


def _raw(client, headers, key: str, content: bytes, *, suffix: str = "", content_type: str = "application/json"):
    return client.post(f"{META}/{key}{suffix}", content=content, headers={**headers, "Content-Type": content_type})


HOSTILE = [
    # (key, suffix, body, status, code)
    ("Name", "/set", b'"x"', 400, "invalid_meta_key"),
    ("TAGS", "", b'"x"', 400, "invalid_meta_key"),
    ("a" * 129, "/set", b'"x"', 400, "invalid_meta_key"),
    ("na me", "/set", b'"x"', 400, "invalid_meta_key"),
    ("name", "/set", b"{not json", 400, "invalid_meta_data"),
    ("name", "/set", b"", 400, "invalid_meta_data"),
    ("name", "/set", b"NaN", 400, "invalid_meta_data"),
    ("name", "/set", b"[1e999]", 400, "invalid_meta_data"),
    ("name", "/set", b"9223372036854775808", 400, "invalid_meta_data"),
    ("name", "/set", b'"\\ud800"', 400, "invalid_meta_data"),
    ("name", "/set", b"\xff\xfe\xfa", 400, "invalid_meta_data"),
    ("name", "/set", b"[" * 65 + b"]" * 65, 400, "invalid_meta_data"),
    ("name", "/set", b"[" * 100_000 + b"]" * 100_000, 400, "invalid_meta_data"),
    ("name", "/set", b'"' + b"x" * (1024 * 1024) + b'"', 413, "meta_too_large"),
    ("name", "/set", b" " * (4 * 1024 * 1024), 413, "payload_too_large"),
]


@pytest.mark.parametrize(("key", "suffix", "body", "status", "code"), HOSTILE,
                         ids=[f"{case[0][:8]}-{case[4]}-{len(case[2])}" for case in HOSTILE])
def test_hostile_inputs_write_nothing(client, ds, settings, key, suffix, body, status, code):
    assert_error(_raw(client, ds, key, body, suffix=suffix), status, code)
    assert _meta_rows(settings) == 0
    assert _ok(client.get(f"{BASE}/stamp", headers=ds))["meta"] == []


def test_hostile_paths_and_keys_elsewhere_write_nothing(client, ds, settings):
    assert upload_object(client, ds, "a.txt", b"1").status_code == 201
    for path in ("../a.txt", "a/../../a.txt", "/a.txt", "a\\b", "C:/a.txt"):
        assert_error(client.post(f"{META}/name/set", json=1, params={"path": path}, headers=ds), 400, "invalid_path")
    assert_error(client.post(f"{META}/name/set", json=1, params={"path": "b.txt"}, headers=ds), 404, "entry_not_found")
    assert_error(client.get(f"{META}/Name", headers=ds), 400, "invalid_meta_key")
    assert_error(client.delete(f"{META}/Name", headers=ds), 400, "invalid_meta_key")
    assert_error(client.post(f"{META}/name/set", data={"data": '"' + "x" * (1024 * 1024) + '"'}, headers=ds),
                 413, "meta_too_large")
    assert _meta_rows(settings) == 0


def test_access_rules(client, ds, make_user):
    """Another user's private dataset does not exist for them (404) nor for anonymous callers (401); a public one
    is readable by anyone and writable only with write permission (403)."""
    _set(client, ds, "name", "mine")
    bob = make_user("bob")
    for headers, status in ((bob, 404), ({}, 401)):
        assert_error(client.get(f"{META}/list", headers=headers), status)
        assert_error(client.get(f"{META}/name", headers=headers), status)
        assert_error(client.post(f"{META}/dump", headers=headers), status)
        assert_error(client.post(f"{META}/name/set", json="theirs", headers=headers), status)
        assert_error(client.post(f"{META}/tags", json="theirs", headers=headers), status)
        assert_error(client.delete(f"{META}/name", headers=headers), status)
    assert client.post(f"{BASE}/chattr", json={"visibility": "public"}, headers=ds).status_code == 200
    for headers in (bob, {}):
        assert _ok(client.get(f"{META}/name", headers=headers))["data"] == "mine"
        assert len(_ok(client.post(f"{META}/dump", headers=headers))) == 1
    assert_error(client.post(f"{META}/name/set", json="theirs", headers=bob), 403, "forbidden")
    assert_error(client.delete(f"{META}/name", headers=bob), 403, "forbidden")
    assert_error(client.post(f"{META}/name/set", json="theirs", headers={}), 401)
    assert [row["data"] for row in _dump(client, ds)] == ["mine"]


def _checksum(entries: list[dict[str, str]], meta_ids: list[str]) -> str:
    digest = hashlib.sha256()
    pairs = [pair for entry in entries for pair in entry.items()]
    assert [path for path, _ in pairs] == sorted(path for path, _ in pairs)
    for path, sha in pairs:
        digest.update(path.encode())
        digest.update(sha.encode())
    for meta_id in sorted(meta_ids):
        digest.update(meta_id.encode())
    return digest.hexdigest()


def test_stamp_lists_meta_ids_and_its_checksum_covers_them(client, ds):
    a = upload_object(client, ds, "a.txt", b"a").json()
    b = upload_object(client, ds, "dir/b.txt", b"b").json()
    empty = _ok(client.get(f"{BASE}/stamp", headers=ds))
    assert empty["entries"] == [{"a.txt": a["hash"]}, {"dir": ""}, {"dir/b.txt": b["hash"]}]
    assert empty["meta"] == [] and empty["checksum"] == _checksum(empty["entries"], [])

    ids = [_set(client, ds, "name", "n")["id"], _add(client, ds, "tags", 1, path="dir")["id"],
           _add(client, ds, "tags", 2, path="dir/b.txt")["id"]]
    stamp = _ok(client.get(f"{BASE}/stamp", headers=ds))
    assert stamp["meta"] == sorted(ids) and stamp["entries"] == empty["entries"]
    assert stamp["checksum"] == _checksum(stamp["entries"], ids) != empty["checksum"]

    assert _ok(client.delete(f"{META}/tags", params={"path": "dir"}, headers=ds)) == {"removed": 1}
    after = _ok(client.get(f"{BASE}/stamp", headers=ds))
    assert after["meta"] == sorted([ids[0], ids[2]])
    assert after["checksum"] == _checksum(after["entries"], after["meta"])
