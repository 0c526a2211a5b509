"""``GET /orgs/{org}/ds/{ds}/ddb``: the dataset index as a zip (index.sqlite + stamp.json), read back with sqlite3."""

from __future__ import annotations

import io
import json
import sqlite3
import zipfile

import pytest

from tests.helpers import assert_error, upload_object

BASE = "/orgs/admin/ds/d"


@pytest.fixture
def backend() -> str:
    """The index is written from ORM rows the other tests cover on both databases: SQLite only here."""
    return "sqlite"


def _index(client, headers, tmp_path) -> tuple[sqlite3.Connection, dict]:
    response = client.get(f"{BASE}/ddb", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert 'filename="admin-d-ddb.zip"' in response.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert sorted(archive.namelist()) == ["index.sqlite", "stamp.json"]
        (tmp_path / "index.sqlite").write_bytes(archive.read("index.sqlite"))
        stamp = json.loads(archive.read("stamp.json"))
    return sqlite3.connect(tmp_path / "index.sqlite"), stamp


def test_index_holds_every_entry_and_meta_value_and_the_stamp(client, ds, tmp_path, settings):
    a = upload_object(client, ds, "a.txt", b"alpha").json()
    b = upload_object(client, ds, "dir/sub/b.bin", b"\x00" * 1000).json()
    name = client.post(f"{BASE}/meta/name/set", json={"en": "Survey"}, headers=ds).json()
    tag = client.post(f"{BASE}/meta/tags", params={"path": "a.txt"}, json="coast", headers=ds).json()

    connection, stamp = _index(client, ds, tmp_path)
    with connection:
        rows = connection.execute("SELECT path, hash, type, size, mtime, properties FROM entries ORDER BY path")
        entries = {row[0]: row[1:] for row in rows}
        meta = {row[0]: row[1:] for row in connection.execute(
            "SELECT id, path, key, data, mtime FROM entries_meta")}
    assert list(entries) == ["a.txt", "dir", "dir/sub", "dir/sub/b.bin"]
    assert entries["a.txt"][:3] == (a["hash"], 2, 5) and entries["dir/sub/b.bin"][:3] == (b["hash"], 2, 1000)
    assert entries["dir"][:3] == ("", 1, 0)
    assert all(isinstance(row[3], int) and row[3] > 1_700_000_000 for row in entries.values())
    assert all(isinstance(json.loads(row[4]), dict) for row in entries.values())
    assert meta[name["id"]][:3] == ("", "name", json.dumps({"en": "Survey"}))
    assert meta[tag["id"]][:3] == ("a.txt", "tags", '"coast"')
    assert stamp == client.get(f"{BASE}/stamp", headers=ds).json()
    assert not any(settings.tmp_dir.glob("ddb-*")), "the index's temporary files are removed after sending"


def test_index_of_an_empty_dataset_and_access_rules(client, ds, tmp_path, make_user):
    connection, stamp = _index(client, ds, tmp_path)
    with connection:
        assert connection.execute("SELECT count(*) FROM entries").fetchone() == (0,)
    assert stamp["entries"] == [] and stamp["meta"] == [] and len(stamp["checksum"]) == 64
    assert_error(client.get(f"{BASE}/ddb"), 401)
    assert_error(client.get(f"{BASE}/ddb", headers=make_user("outsider")), 404)
    assert_error(client.get("/orgs/admin/ds/missing/ddb", headers=ds), 404)
