"""Share: init, uploads (plain and chunked), commit, rollback, listing, hostile inputs and the stale-batch cleanup."""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlmodel import Session, select

from georeg.api.app import create_app
from georeg.core.db import make_engine
from georeg.core.models import BatchChunk, BatchFile, UploadBatch
from georeg.core.registry.batches import staging_dir
from georeg.core.timeutil import utcnow
from tests.helpers import assert_error, upload_object

MB = 1024 * 1024


def _init(client: TestClient, headers: dict, **fields: str) -> str:
    response = client.post("/share/init", data=fields, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["token"]


def _chunk(client: TestClient, headers: dict, token: str, *, file_id: str, index: int, total: int, size: int,
           path: str, data: bytes, md5: str | None = None, **extra: str):
    fields = {"fileId": file_id, "chunkIndex": str(index), "totalChunks": str(total), "totalFileSize": str(size),
              "path": path, **({"chunkMd5": md5} if md5 else {}), **extra}
    return client.post(f"/share/{token}/upload/chunked", data=fields, files={"chunk": ("blob", data)},
                       headers=headers)


def _rows(settings, token: str) -> tuple[list[BatchFile], list[BatchChunk]]:
    engine = make_engine(settings.effective_database_url)
    try:
        with Session(engine) as session:
            files = list(session.exec(select(BatchFile).where(BatchFile.batch_token == token)))
            chunks = list(session.exec(select(BatchChunk).where(BatchChunk.batch_file_id.in_([f.id for f in files]))))
            return files, chunks
    finally:
        engine.dispose()


def _staged(settings, token: str) -> list[str]:
    root = staging_dir(settings, token)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_share_into_existing_dataset_chunked_out_of_order_then_commit(client, ds, settings):
    token = _init(client, ds, tag="admin/d")
    response = client.post(f"/share/{token}/upload", data={"path": "docs/a.txt"}, files={"file": ("a", b"hello")},
                           headers=ds)
    assert response.status_code == 200, response.text
    assert response.json() == {"path": "docs/a.txt", "hash": hashlib.sha256(b"hello").hexdigest(), "size": 5}
    assert_error(client.post(f"/share/{token}/upload", data={"path": "docs/a.txt"}, files={"file": ("a", b"x")},
                             headers=ds), 409, "path_in_batch")
    assert client.get("/orgs/admin/ds/d/list", headers=ds).json() == []  # a running batch never changes the dataset

    content = os.urandom(10_000)
    pieces = [content[i:i + 4096] for i in range(0, len(content), 4096)]
    md5 = hashlib.md5(pieces[2], usedforsecurity=False).hexdigest()
    body = _chunk(client, ds, token, file_id="f1", index=2, total=3, size=len(content), path="big.bin",
                  data=pieces[2], md5=md5).json()
    assert body == {"fileId": "f1", "receivedChunks": [2], "complete": False, "entry": None}
    _chunk(client, ds, token, file_id="f1", index=0, total=3, size=len(content), path="big.bin", data=b"z" * 4096)
    assert_error(client.post(f"/share/{token}/commit", headers=ds), 409, "incomplete_uploads")
    info = client.get(f"/share/{token}", headers=ds).json()
    assert info["status"] == "running" and info["userName"] == "admin"
    assert [e["path"] for e in info["entries"]] == ["docs/a.txt"]
    assert info["uploads"] == [{"fileId": "f1", "path": "big.bin", "totalChunks": 3, "receivedChunks": [0, 2],
                                "totalFileSize": len(content)}]
    _chunk(client, ds, token, file_id="f1", index=0, total=3, size=len(content), path="big.bin", data=pieces[0])
    body = _chunk(client, ds, token, file_id="f1", index=1, total=3, size=len(content), path="big.bin",
                  data=pieces[1]).json()
    assert body["complete"] and body["receivedChunks"] == [0, 1, 2]
    assert body["entry"] == {"path": "big.bin", "hash": hashlib.sha256(content).hexdigest(), "size": len(content)}
    assert not (staging_dir(settings, token) / "chunks").exists() or not any((staging_dir(settings, token) /
                                                                             "chunks").rglob("*"))

    response = client.post(f"/share/{token}/commit", headers=ds)
    assert response.status_code == 200, response.text
    assert response.json() == {"url": "/r/admin/d", "tag": "admin/d"}
    assert client.get("/orgs/admin/ds/d/download", params={"path": "big.bin"}, headers=ds).content == content
    assert client.get("/orgs/admin/ds/d/download", params={"path": "docs/a.txt"}, headers=ds).content == b"hello"
    assert not staging_dir(settings, token).exists()
    assert_error(client.post(f"/share/{token}/commit", headers=ds), 409, "batch_not_running")
    assert client.get(f"/share/{token}", headers=ds).json()["status"] == "committed"
    listing = client.get("/orgs/admin/ds/d/batches", headers=ds).json()
    assert listing["total"] == 1
    assert listing["items"][0] | {"start": None, "end": None} == {
        "token": token, "userName": "admin", "status": "committed", "files": 2, "size": 5 + len(content),
        "start": None, "end": None}


def test_rollback_leaves_a_preexisting_dataset_as_it_was(client, ds, settings):
    assert upload_object(client, ds, "a.txt", b"original").status_code == 201
    before = client.get("/orgs/admin/ds/d/list", headers=ds).json()
    token = _init(client, ds, tag="admin/d")
    client.post(f"/share/{token}/upload", data={"path": "a.txt"}, files={"file": ("a", b"replacement")}, headers=ds)
    client.post(f"/share/{token}/upload", data={"path": "b.txt"}, files={"file": ("b", b"new")}, headers=ds)
    _chunk(client, ds, token, file_id="c", index=0, total=2, size=8, path="c.bin", data=b"1234")
    assert client.post(f"/share/{token}/rollback", headers=ds).status_code == 200
    assert client.get("/orgs/admin/ds/d/list", headers=ds).json() == before
    assert client.get("/orgs/admin/ds/d/download", params={"path": "a.txt"}, headers=ds).content == b"original"
    assert not staging_dir(settings, token).exists()
    assert _rows(settings, token) == ([], [])
    assert client.get(f"/share/{token}", headers=ds).json()["status"] == "rolledback"
    assert_error(client.post(f"/share/{token}/rollback", headers=ds), 409, "batch_not_running")

    # no tag: a new private dataset with a generated slug in the caller's organization; rollback removes it
    token = _init(client, ds, datasetName="Holiday")
    client.post(f"/share/{token}/upload", data={"path": "x.txt"}, files={"file": ("x", b"x")}, headers=ds)
    datasets = client.get("/orgs/admin/ds", headers=ds).json()["items"]
    created = next(d for d in datasets if d["slug"] != "d")
    assert (created["name"], created["visibility"]) == ("Holiday", "private")
    client.post(f"/share/{token}/rollback", headers=ds)
    assert [d["slug"] for d in client.get("/orgs/admin/ds", headers=ds).json()["items"]] == ["d"]

    # a second init of the same user on the same dataset rolls the first back
    first = _init(client, ds, tag="admin/d")
    second = _init(client, ds, tag="admin/d")
    assert client.get(f"/share/{first}", headers=ds).json()["status"] == "rolledback"
    assert client.get(f"/share/{second}", headers=ds).json()["status"] == "running"


def test_hostile_inputs_get_clear_errors_and_leave_nothing(client, ds, settings, make_user):
    token = _init(client, ds, tag="admin/d")
    for path in ("../evil.txt", "/etc/passwd", "a/../../b", "a\\b"):
        assert_error(client.post(f"/share/{token}/upload", data={"path": path}, files={"file": ("a", b"x")},
                                 headers=ds), 400)
        assert_error(_chunk(client, ds, token, file_id="t", index=0, total=1, size=1, path=path, data=b"x"), 400)
    assert_error(_chunk(client, ds, token, file_id="f", index=3, total=3, size=9, path="f", data=b"abc"), 400,
                 "invalid_chunk")
    assert_error(_chunk(client, ds, token, file_id="f", index=0, total=1, size=2, path="f", data=b"abc"), 400,
                 "chunk_too_large")
    assert_error(_chunk(client, ds, token, file_id="f", index=0, total=2, size=4, path="f", data=b"abc",
                        md5="0" * 32), 400, "chunk_md5_mismatch")
    for name in ("chunkIndex", "totalChunks", "totalFileSize"):
        response = _chunk(client, ds, token, file_id="f", index=0, total=2, size=4, path="f", data=b"ab",
                          **{name: "x1"})
        assert_error(response, 400, "invalid_chunk")
    assert_error(client.post(f"/share/{token}/upload/chunked", data={"fileId": "f"}, headers=ds), 400)
    settings.share_max_chunk_bytes = 1024  # the running app's settings
    assert_error(_chunk(client, ds, token, file_id="f", index=0, total=2, size=4000, path="f", data=b"a" * 2000), 400,
                 "chunk_too_large")
    settings.share_max_chunk_bytes = 256 * MB
    # a first chunk fixes the announcement; a later one that differs or overflows is refused and not kept
    assert _chunk(client, ds, token, file_id="g", index=0, total=2, size=4, path="g", data=b"ab").status_code == 200
    assert_error(_chunk(client, ds, token, file_id="g", index=1, total=3, size=4, path="g", data=b"ab"), 400,
                 "chunk_mismatch")
    assert_error(_chunk(client, ds, token, file_id="g", index=1, total=2, size=4, path="g", data=b"abc"), 400,
                 "chunk_too_large")
    # the last chunk completes a file smaller than announced: the upload is dropped
    assert _chunk(client, ds, token, file_id="h", index=0, total=2, size=6, path="h", data=b"ab").status_code == 200
    assert_error(_chunk(client, ds, token, file_id="h", index=1, total=2, size=6, path="h", data=b"ab"), 400,
                 "size_mismatch")
    files, chunks = _rows(settings, token)
    assert [(f.path, f.file_id) for f in files] == [("g", "g")]
    assert [(c.chunk_index, c.size) for c in chunks] == [(0, 2)]
    assert _staged(settings, token) == [f"chunks/{files[0].id}/0"]
    assert not any(settings.tmp_dir.iterdir())

    # path clashes with the dataset
    assert upload_object(client, ds, "folder/in.txt", b"1").status_code == 201
    assert_error(client.post(f"/share/{token}/upload", data={"path": "folder"}, files={"file": ("a", b"x")},
                             headers=ds), 409, "path_conflict")
    assert_error(client.post(f"/share/{token}/upload", data={"path": "folder/in.txt/x"},
                             files={"file": ("a", b"x")}, headers=ds), 409, "path_conflict")

    # quota: the announced total counts at once
    other = make_user("sharer")
    client.put("/users/sharer", json={"storageQuota": 1000}, headers=ds)
    mine = _init(client, other)
    assert_error(_chunk(client, other, mine, file_id="q", index=0, total=2, size=5000, path="q", data=b"ab"), 429)
    assert _rows(settings, mine) == ([], [])

    # tokens: another user's, unknown, not running
    assert_error(client.get(f"/share/{token}", headers=other), 403)
    assert_error(client.post(f"/share/{token}/upload", data={"path": "z"}, files={"file": ("a", b"x")},
                             headers=other), 403)
    assert_error(client.post(f"/share/{token}/commit", headers=other), 403)
    assert_error(client.get("/share/nope", headers=ds), 404, "batch_not_found")
    assert_error(client.post("/share/nope/rollback", headers=ds), 404, "batch_not_found")
    assert_error(client.post("/share/init", data={"tag": "no-slash"}, headers=ds), 400)
    assert_error(client.post("/share/init", data={"tag": "admin/d"}), 401)
    assert not any(settings.tmp_dir.iterdir())


def test_stale_batches_are_rolled_back_by_sys_cleanupbatches(client, ds, settings, make_user):
    stale = _init(client, ds, tag="admin/d")
    _chunk(client, ds, stale, file_id="c", index=0, total=2, size=8, path="c.bin", data=b"1234")
    created = _init(client, ds, tag="admin/fresh-new")
    fresh = _init(client, ds, datasetName="kept")
    orphan = staging_dir(settings, "orphan-dir") / "files" / "1"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"x")
    engine = make_engine(settings.effective_database_url)
    with Session(engine) as session:
        session.execute(update(UploadBatch).where(UploadBatch.token.in_([stale, created]))
                        .values(last_activity_at=utcnow() - timedelta(minutes=61)))
        session.commit()
    engine.dispose()
    assert_error(client.post("/sys/cleanupbatches", headers=make_user("plain")), 403)
    report = client.post("/sys/cleanupbatches", headers=ds).json()
    assert report == {"removedBatches": 2, "removedDirs": 1, "removeBatchErrors": []}
    assert not staging_dir(settings, stale).exists() and not orphan.exists()
    assert client.get(f"/share/{stale}", headers=ds).json()["status"] == "rolledback"
    assert_error(client.get("/orgs/admin/ds/fresh-new", headers=ds), 404)  # created by the stale batch, empty
    assert client.get(f"/share/{fresh}", headers=ds).json()["status"] == "running"


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_300mb_in_16mb_chunks_out_of_order_with_a_resend_and_a_restart(client, ds, settings):
    size, chunk = 300 * MB, 16 * MB
    content = os.urandom(size)
    total = -(-size // chunk)
    order = [5, 0, 18, 3, 1, 7, 2, 4, 6, 17, 8, 16, 9, 15, 10, 14, 11, 13, 12]
    assert sorted(order) == list(range(total))
    token = _init(client, ds, tag="admin/d")

    def send(test_client: TestClient, index: int, data: bytes | None = None) -> dict:
        piece = content[index * chunk:(index + 1) * chunk] if data is None else data
        response = _chunk(test_client, ds, token, file_id="big", index=index, total=total, size=size,
                          path="big.bin", data=piece)
        assert response.status_code == 200, response.text
        return response.json()

    for index in order[:9]:
        send(client, index)
    send(client, 4, os.urandom(chunk))  # garbage, resent below
    with TestClient(create_app(settings)) as restarted:  # a restart: a new app over the same database and data dir
        info = restarted.get(f"/share/{token}", headers=ds).json()
        assert info["uploads"][0]["receivedChunks"] == sorted(order[:9])
        send(restarted, 4)
        for index in order[9:-1]:
            send(restarted, index)
        body = send(restarted, order[-1])
        assert body["complete"] and body["entry"]["hash"] == hashlib.sha256(content).hexdigest()
        assert restarted.post(f"/share/{token}/commit", headers=ds).status_code == 200
        download = restarted.get("/orgs/admin/ds/d/download", params={"path": "big.bin"}, headers=ds)
        assert download.status_code == 200 and download.content == content
