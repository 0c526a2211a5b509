"""Push (``/orgs/{org}/ds/{ds}/push``): a sync client (tests/sync_client.py) pushes folders over HTTP; stamps agree
after every push; only what the registry lacks is uploaded; racing pushes: one wins, the other gets 409 and nothing
applied; metadata dump/restore through push; hostile inputs leave nothing staged; a failed commit applies nothing."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from georeg.core.db import make_engine
from georeg.core.errors import Conflict
from georeg.core.models import BatchFile, UploadBatch
from georeg.core.rasters.entries import describe_entry
from georeg.core.registry import access, push
from georeg.core.registry.actor import Actor
from georeg.core.registry.batches import STAGING_DIR_NAME
from tests.helpers import assert_error, upload_object
from tests.rasters import write_geotiff
from tests.sync_client import PullRequired, SyncClient, local_stamp

BASE = "/orgs/admin/ds/p"


def _write(folder: Path, files: dict[str, bytes]) -> None:
    for path, content in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(content)


def _stamp(client, headers, base: str = BASE) -> dict:
    response = client.get(f"{base}/stamp", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def _folder(tmp_path: Path, name: str, files: dict[str, bytes]) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    _write(folder, files)
    return folder


def test_push_a_folder_then_only_the_changes(client, admin_headers, tmp_path):
    files = {f"d{i % 5}/f{i:03}.txt": f"file {i}".encode() for i in range(200)}
    folder = _folder(tmp_path, "local", files)
    sync = SyncClient(client, admin_headers, BASE, folder)
    stamp = sync.push()
    assert sorted(sync.uploaded) == sorted(files)
    assert stamp == _stamp(client, admin_headers) == sync.stamp()

    changed = ["d0/f000.txt", "d1/f001.txt", "d2/f002.txt"]
    _write(folder, {path: b"changed " + path.encode() for path in changed})
    for path in ("d3/f003.txt", "d4/f004.txt"):
        (folder / path).unlink()
    _write(folder, {"new/added.txt": b"added"})
    stamp = sync.push()
    assert sorted(sync.uploaded) == sorted([*changed, "new/added.txt"])
    assert stamp == _stamp(client, admin_headers) == sync.stamp()
    response = client.get(f"{BASE}/download", params={"path": "d1/f001.txt"}, headers=admin_headers)
    assert response.content == b"changed d1/f001.txt"
    assert_error(client.get(f"{BASE}/obj", params={"path": "d3/f003.txt"}, headers=admin_headers), 404)

    answer = sync.init()  # nothing changed: nothing needed
    assert (answer["neededFiles"], answer["neededMeta"]) == ([], [])
    assert sync.commit(answer) == stamp


def test_rename_only_uploads_nothing_and_moves_content(client, admin_headers, tmp_path, settings):
    folder = _folder(tmp_path, "local", {"a/x.bin": b"x" * 1000, "b.bin": b"b"})
    sync = SyncClient(client, admin_headers, BASE, folder)
    sync.push()
    (folder / "c").mkdir()
    (folder / "a/x.bin").rename(folder / "c/y.bin")
    (folder / "a").rmdir()
    stamp = sync.push()
    assert sync.uploaded == []
    assert stamp == _stamp(client, admin_headers) == sync.stamp()
    assert client.get(f"{BASE}/download", params={"path": "c/y.bin"}, headers=admin_headers).content == b"x" * 1000
    storage = settings.storage_dir / "admin" / "p"
    assert sorted(p.relative_to(storage).as_posix() for p in storage.rglob("*")) == ["b.bin", "c", "c/y.bin"]
    assert not (settings.data_dir / STAGING_DIR_NAME).exists() or not any((settings.data_dir / STAGING_DIR_NAME)
                                                                          .iterdir())


def test_first_push_onto_a_dataset_with_content_requires_a_pull(client, admin_headers, tmp_path):
    client.post("/orgs/admin/ds", json={"slug": "p"}, headers=admin_headers)
    assert upload_object(client, admin_headers, "server.txt", b"s", dataset=BASE).status_code == 201
    sync = SyncClient(client, admin_headers, BASE, _folder(tmp_path, "local", {"a.txt": b"a"}))
    with pytest.raises(PullRequired):
        sync.push()
    assert [next(iter(e)) for e in _stamp(client, admin_headers)["entries"]] == ["server.txt"]
    sync.checksum = _stamp(client, admin_headers)["checksum"]  # as after a pull
    assert sync.push() == sync.stamp()


def test_racing_pushes_one_commits_the_other_gets_409(client, admin_headers, tmp_path, settings):
    first = SyncClient(client, admin_headers, BASE, _folder(tmp_path, "one", {"a.txt": b"one"}))
    second = SyncClient(client, admin_headers, BASE, _folder(tmp_path, "two", {"b.txt": b"two"}))
    answers = [first.init(), second.init()]
    first.send(answers[0])
    second.send(answers[1])
    assert first.commit(answers[0]) == _stamp(client, admin_headers)
    response = client.post(f"{BASE}/push/commit", data={"token": answers[1]["token"]}, headers=admin_headers)
    assert_error(response, 409, "dataset_changed")
    assert _stamp(client, admin_headers) == first.stamp()
    assert not (settings.data_dir / STAGING_DIR_NAME / answers[1]["token"]).exists()
    response = client.post(f"{BASE}/push/commit", data={"token": answers[1]["token"]}, headers=admin_headers)
    assert_error(response, 409, "batch_not_running")


def test_concurrent_commits_exactly_one_applies(client, admin_headers, tmp_path, settings):
    """Two commits at the same moment, each in its own thread and database session: one wins, the other 409."""
    clients = [SyncClient(client, admin_headers, BASE, _folder(tmp_path, name, {f"{name}.txt": name.encode() * 10}))
               for name in ("one", "two")]
    answers = [sync.init() for sync in clients]
    for sync, answer in zip(clients, answers, strict=True):
        sync.send(answer)
    engine = make_engine(settings.effective_database_url)
    barrier, outcomes = threading.Barrier(2), {}

    def commit(index: int) -> None:
        with Session(engine, expire_on_commit=False) as session:
            from georeg.core.registry import users

            admin = users.find_user(session, username="admin")
            target = access.load_dataset(session, actor=Actor(user=admin, is_admin=True), org_slug="admin",
                                         ds_slug="p", need=access.Permission.write)
            batch = session.get(UploadBatch, answers[index]["token"])
            barrier.wait()
            try:
                outcomes[index] = push.commit_push(session, settings=settings, org=target.org, dataset=target.dataset,
                                                   batch=batch, describe=describe_entry)
            except Conflict as exc:
                outcomes[index] = exc

    threads = [threading.Thread(target=commit, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    engine.dispose()
    winners = [i for i, outcome in outcomes.items() if not isinstance(outcome, Exception)]
    assert len(winners) == 1 and len(outcomes) == 2, outcomes
    loser = outcomes[1 - winners[0]]
    assert isinstance(loser, Conflict) and loser.code == "dataset_changed"
    assert _stamp(client, admin_headers) == clients[winners[0]].stamp()


def test_meta_dump_restore_through_push(client, admin_headers, tmp_path):
    files = {"a.txt": b"a", "sub/b.txt": b"b"}
    source = SyncClient(client, admin_headers, "/orgs/admin/ds/src", _folder(tmp_path, "src", files))
    source.push()
    meta = "/orgs/admin/ds/src/meta"
    for url, value, params in ((f"{meta}/name/set", "Survey", None), (f"{meta}/tags", "one", None),
                               (f"{meta}/tags", {"two": 2}, None), (f"{meta}/note/set", [1, 2], {"path": "sub/b.txt"})):
        response = client.post(url, content=json.dumps(value), params=params,
                               headers={**admin_headers, "Content-Type": "application/json"})
        assert response.status_code == 200, response.text
    dump = client.post(f"{meta}/dump", headers=admin_headers).json()
    assert len(dump) == 4

    copy = SyncClient(client, admin_headers, "/orgs/admin/ds/copy", _folder(tmp_path, "copy", files))
    copy.meta = dump
    stamp = copy.push()
    assert stamp == _stamp(client, admin_headers, "/orgs/admin/ds/copy") == copy.stamp()
    assert stamp == _stamp(client, admin_headers, "/orgs/admin/ds/src")
    assert client.post("/orgs/admin/ds/copy/meta/dump", headers=admin_headers).json() == dump

    copy.meta = [record for record in dump if record["key"] != "tags"]  # removes go through push too
    assert copy.push() == copy.stamp()
    assert [r["key"] for r in client.post("/orgs/admin/ds/copy/meta/dump", headers=admin_headers).json()] == \
        ["name", "note"]


def _staged(settings) -> tuple[int, list[str]]:
    """Rows of batch_files and files under the staging directories."""
    engine = make_engine(settings.effective_database_url)
    try:
        with Session(engine) as session:
            rows = session.exec(select(func.count()).select_from(BatchFile)).one()
    finally:
        engine.dispose()
    root = settings.data_dir / STAGING_DIR_NAME
    return rows, sorted(str(p) for p in root.rglob("*")) if root.exists() else []


HASH = hashlib.sha256(b"a").hexdigest()
BAD_STAMPS = {
    "not json": "{",
    "an array": "[1]",
    "entries not a list": '{"entries": "x"}',
    "two paths in one object": json.dumps({"entries": [{"a": HASH, "b": HASH}]}),
    "short hash": json.dumps({"entries": [{"a.txt": "abc"}]}),
    "uppercase hash": json.dumps({"entries": [{"a.txt": HASH.upper()}]}),
    "traversal": json.dumps({"entries": [{"../a.txt": HASH}]}),
    "absolute": json.dumps({"entries": [{"/etc/passwd": HASH}]}),
    "dot segments": json.dumps({"entries": [{"x/../a.txt": HASH}]}),
    "parent not a folder": json.dumps({"entries": [{"x/a.txt": HASH}]}),
    "meta id not a uuid": json.dumps({"entries": [], "meta": ["nope"]}),
}


@pytest.mark.parametrize("stamp", list(BAD_STAMPS.values()), ids=list(BAD_STAMPS))
def test_hostile_stamps_are_400_and_create_nothing(client, admin_headers, stamp):
    response = client.post(f"{BASE}/push/init", data={"checksum": "", "stamp": stamp}, headers=admin_headers)
    assert assert_error(response, 400)["code"] in ("invalid_stamp", "invalid_path", "invalid_meta_id")
    assert_error(client.get(f"{BASE}/stamp", headers=admin_headers), 404)  # the dataset was not created


def test_hostile_push_requests_leave_nothing_staged(client, admin_headers, make_user, settings):
    meta_id = "7d3f1c9e-0000-4000-8000-000000000001"
    stamp = {"entries": [{"a.txt": HASH}, {"b.txt": hashlib.sha256(b"b").hexdigest()}], "meta": [meta_id]}
    answer = client.post(f"{BASE}/push/init", data={"checksum": "", "stamp": json.dumps(stamp)},
                         headers=admin_headers).json()
    token = answer["token"]
    assert (answer["neededFiles"], answer["neededMeta"]) == (["a.txt", "b.txt"], [meta_id])
    upload = f"{BASE}/push/upload"
    assert client.post(upload, data={"token": token, "path": "a.txt"}, files={"file": ("a", b"a")},
                       headers=admin_headers).status_code == 200
    before, empty = _staged(settings), _stamp(client, admin_headers)
    record = {"id": meta_id, "path": "", "key": "name", "data": "x", "mtime": 1700000000}
    other = make_user("mallory")
    client.post("/orgs/mallory/ds", json={"slug": "p"}, headers=other)
    cases = [
        (upload, {"token": token, "path": "../a.txt"}, b"a", admin_headers, 400, "invalid_path"),
        (upload, {"token": token, "path": "c.txt"}, b"a", admin_headers, 400, "file_not_needed"),
        (upload, {"token": token, "path": "b.txt"}, b"not b", admin_headers, 400, "hash_mismatch"),
        (upload, {"token": "0" * 32, "path": "b.txt"}, b"b", admin_headers, 404, "batch_not_found"),
        (upload, {"token": token, "path": "b.txt"}, None, admin_headers, 400, None),  # no file part
        (f"{BASE}/push/meta", {"token": token, "meta": json.dumps([{**record, "key": "Name"}])}, None, admin_headers,
         400, "invalid_meta_key"),
        (f"{BASE}/push/meta", {"token": token, "meta": "[{"}, None, admin_headers, 400, None),
        (f"{BASE}/push/meta", {"token": token, "meta": json.dumps([record, {**record, "id": str(meta_id[:-1] + "2")}])},
         None, admin_headers, 400, "meta_not_needed"),
        (f"{BASE}/push/meta", {"token": token, "meta": json.dumps([{**record, "path": "zzz.txt"}])}, None,
         admin_headers, 400, "entry_not_found"),
        (f"{BASE}/push/commit", {"token": token}, None, admin_headers, 400, "missing_files"),
        ("/orgs/mallory/ds/p/push/commit", {"token": token}, None, other, 403, "forbidden"),
    ]
    for url, data, content, headers, status, code in cases:
        files = {"file": ("f", content)} if content is not None else None
        response = client.post(url, data=data, files=files, headers=headers)
        body = assert_error(response, status, code)
        assert _staged(settings) == before, (url, data)
        assert _stamp(client, admin_headers) == empty
        if code == "missing_files":
            assert "b.txt" in body["error"] and "a.txt" not in body["error"]
    # another user's token on a dataset they may write: 403
    client.put("/users/mallory/orgs", json=[{"slug": "admin", "permission": "write"}], headers=admin_headers)
    assert_error(client.post(f"{BASE}/push/commit", data={"token": token}, headers=other), 403)

    assert client.post(upload, data={"token": token, "path": "b.txt"}, files={"file": ("b", b"b")},
                       headers=admin_headers).status_code == 200
    assert client.post(f"{BASE}/push/meta", data={"token": token, "meta": json.dumps([record])},
                       headers=admin_headers).status_code == 200
    committed = client.post(f"{BASE}/push/commit", data={"token": token}, headers=admin_headers)
    assert committed.status_code == 200, committed.text
    assert committed.json()["meta"] == [meta_id]
    assert_error(client.post(f"{BASE}/push/commit", data={"token": token}, headers=admin_headers), 409,
                 "batch_not_running")
    assert _staged(settings)[1] == []


def test_a_failed_commit_applies_nothing_and_puts_files_back(client, admin_headers, tmp_path, settings, monkeypatch):
    folder = _folder(tmp_path, "local", {"a.txt": b"v1", "b.txt": b"b", "d/e.txt": b"e"})
    sync = SyncClient(client, admin_headers, BASE, folder)
    before = sync.push()
    _write(folder, {"a.txt": b"v2", "c.txt": b"b"})  # a changed, c reuses b's content, b goes
    (folder / "b.txt").unlink()
    answer = sync.init()
    sync.send(answer)

    def broken(*_args, **_kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(push, "_apply_meta", broken)
    with pytest.raises(RuntimeError):
        sync.commit(answer)
    storage = settings.storage_dir / "admin" / "p"
    assert _stamp(client, admin_headers) == before
    assert {p.relative_to(storage).as_posix(): p.read_bytes() for p in storage.rglob("*") if p.is_file()} == \
        {"a.txt": b"v1", "b.txt": b"b", "d/e.txt": b"e"}
    monkeypatch.undo()
    assert sync.commit(answer) == _stamp(client, admin_headers) == sync.stamp()
    assert {p.relative_to(storage).as_posix(): p.read_bytes() for p in storage.rglob("*") if p.is_file()} == \
        {"a.txt": b"v2", "c.txt": b"b", "d/e.txt": b"e"}


def test_local_stamp_matches_the_servers_algorithm(tmp_path):
    folder = _folder(tmp_path, "x", {"b/c.txt": b"c", "a.txt": b"a"})
    stamp = local_stamp(folder, ["2", "1"])
    assert stamp["entries"] == [{"a.txt": HASH}, {"b": ""}, {"b/c.txt": hashlib.sha256(b"c").hexdigest()}]
    assert stamp["meta"] == ["1", "2"]


def test_pushed_rasters_are_described_like_uploads(client, admin_headers, tmp_path):
    folder = tmp_path / "local"
    write_geotiff(folder / "maps" / "a.tif")
    sync = SyncClient(client, admin_headers, BASE, folder)
    sync.push()
    (folder / "maps" / "a.tif").rename(folder / "maps" / "b.tif")  # reused content keeps its description
    sync.push()
    assert sync.uploaded == []
    entry = client.get(f"{BASE}/obj", params={"path": "maps/b.tif"}, headers=admin_headers).json()
    assert entry["type"] == "raster" and entry["crs"] and entry["footprint"]


def test_an_unreadable_raster_fails_the_commit_and_applies_nothing(client, admin_headers, tmp_path):
    sync = SyncClient(client, admin_headers, BASE, _folder(tmp_path, "local", {"ok.txt": b"ok", "bad.tif": b"nope"}))
    answer = sync.init()
    sync.send(answer)
    response = client.post(f"{BASE}/push/commit", data={"token": answer["token"]}, headers=admin_headers)
    assert_error(response, 400, "invalid_raster")
    assert _stamp(client, admin_headers)["entries"] == []
