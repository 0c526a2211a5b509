"""A full disk: uploads that run out of space answer ``507 insufficient_storage``, keep nothing (no temp file, no row)
and the service keeps answering reads; once space is freed the same upload succeeds.

The data dir is a real, small tmpfs (``mount -t tmpfs``, which needs root) filled up to a few hundred KiB by a
filler file: the kernel answers ENOSPC exactly where a real full disk would. Where no tmpfs can be mounted, the
files core.storage writes get ENOSPC past a simulated size instead."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlmodel import Session, select

from georeg.api.app import create_app
from georeg.core import storage
from georeg.core.db import make_engine
from georeg.core.errors import InsufficientStorage
from georeg.core.models import BatchChunk, BatchFile, Entry, Raster
from georeg.core.registry import entries as entry_repo
from georeg.core.storage import TempWriter, write_atomically
from tests.helpers import ADMIN_PASSWORD, assert_error, create_dataset, login, upload_object

BASE = "/orgs/admin/ds/d"
DISK_BYTES = 8 * 1024 * 1024
KiB = 1024
PAYLOAD = os.urandom(1024 * KiB)  # bigger than what is left on the full disk


class TmpfsDisk:
    """A real tmpfs of ``DISK_BYTES`` mounted on the data dir, and a filler file that uses up all but ``leave`` bytes
    of it: the kernel answers ENOSPC exactly where a full disk would."""

    kind = "tmpfs"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.filler = root / "filler"

    def free(self) -> int:
        stat = os.statvfs(self.root)
        return stat.f_bavail * stat.f_frsize

    def fill(self, *, leave: int) -> None:
        with open(self.filler, "ab") as handle:
            missing = self.free() - leave
            while missing > 0:
                handle.write(b"\0" * min(missing, 256 * KiB))
                handle.flush()
                missing = self.free() - leave
        assert leave - 16 * KiB <= self.free() <= leave, self.free()

    def empty(self) -> None:
        self.filler.unlink(missing_ok=True)


class SimulatedDisk:
    """Where no tmpfs can be mounted (not root, no CAP_SYS_ADMIN): the files core.storage writes see a disk as large
    as what the data dir holds plus ``leave`` bytes, and get a short write, then ENOSPC, past it, as from the kernel.
    Deleted files free their space (the disk's use is measured, not counted)."""

    kind = "simulated"

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.capacity: int | None = None
        monkeypatch.setattr(storage, "open", self._open, raising=False)  # the name core.storage opens files by

    def used(self) -> int:
        return sum(path.stat().st_size for path in self.root.rglob("*") if path.is_file())

    def free(self) -> int:
        return 1 << 40 if self.capacity is None else max(0, self.capacity - self.used())

    def fill(self, *, leave: int) -> None:
        self.capacity = self.used() + leave

    def empty(self) -> None:
        self.capacity = None

    def _open(self, *args: Any, **kwargs: Any) -> _BudgetedFile:
        return _BudgetedFile(open(*args, **kwargs), self)


class _BudgetedFile:
    def __init__(self, raw: Any, disk: SimulatedDisk) -> None:
        self.raw, self.disk = raw, disk

    def write(self, data: bytes | memoryview) -> int:
        free = self.disk.free()
        if free <= 0 and len(data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.raw.write(memoryview(data)[:free])

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


@contextmanager
def small_disk(directory: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> Iterator[Any]:
    """A small disk at ``directory``: ``kind`` "tmpfs" (skipped when this process may not mount one), "simulated"
    (:class:`SimulatedDisk`) or "auto" (a tmpfs if possible, else simulated)."""
    directory.mkdir(parents=True, exist_ok=True)
    reason = "not root" if os.geteuid() != 0 else None
    if kind != "simulated" and reason is None:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES},mode=0700", "georeg-full-disk",
                                  str(directory)], capture_output=True, text=True, check=False)
        reason = mounted.stderr.strip() if mounted.returncode else None
        if reason is None:
            try:
                yield TmpfsDisk(directory)
            finally:
                subprocess.run(["umount", "--lazy", str(directory)], check=True)
            return
    if kind == "tmpfs":
        pytest.skip(f"cannot mount a tmpfs: {reason}")
    yield SimulatedDisk(directory, monkeypatch)


def _temp_files(settings) -> list[Path]:
    return sorted(path for path in settings.tmp_dir.rglob("*") if path.is_file())


def _rows(settings) -> dict[str, int]:
    engine = make_engine(settings.effective_database_url)
    try:
        with Session(engine) as session:
            return {model.__name__: session.exec(select(func.count()).select_from(model)).one()
                    for model in (Entry, BatchFile, BatchChunk, Raster)}
    finally:
        engine.dispose()


# --- the storage writers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tmpfs", "simulated"])
def test_writers_raise_insufficient_storage_and_leave_no_temp_file(tmp_path, monkeypatch, kind):
    with small_disk(tmp_path / "disk", monkeypatch, kind) as disk:
        root, tmp_dir = disk.root, disk.root / "tmp"
        disk.fill(leave=256 * KiB)
        with pytest.raises(InsufficientStorage) as raised:
            write_atomically([PAYLOAD[:300 * KiB], PAYLOAD[300 * KiB:]], root / "out.bin", tmp_dir=tmp_dir,
                             max_bytes=None)
        assert raised.value.code == "insufficient_storage"
        assert list(tmp_dir.iterdir()) == [] and not (root / "out.bin").exists()

        writer = TempWriter(tmp_dir, max_bytes=None)  # the pipelined way: reserve, hash and append apart
        writer.reserve(len(PAYLOAD))
        writer.hash_pieces([PAYLOAD])
        with pytest.raises(InsufficientStorage):
            writer.append_pieces([PAYLOAD])
        assert not writer.path.exists()  # removed at once: its space is free for others
        with pytest.raises(InsufficientStorage):
            writer.append_pieces([b"more"])  # a batch queued behind the failed one fails the same way
        with pytest.raises(InsufficientStorage):
            writer.finish(root / "out.bin")
        writer.discard()
        assert list(tmp_dir.iterdir()) == [] and disk.free() >= 240 * KiB

        disk.empty()
        stored = write_atomically([PAYLOAD], root / "out.bin", tmp_dir=tmp_dir, max_bytes=None)
        assert stored.sha256 == hashlib.sha256(PAYLOAD).hexdigest() and list(tmp_dir.iterdir()) == []


# --- uploads through the API -----------------------------------------------------------------------------------


@pytest.fixture(params=["tmpfs", "simulated"])
def full_disk(request, settings, monkeypatch) -> Iterator[tuple[TestClient, dict[str, str], Any]]:
    """The app on a data dir that is a small disk (a tmpfs, skipped where none can be mounted, or simulated), the
    admin's headers, the dataset ``admin/d`` and the disk."""
    with small_disk(settings.data_dir, monkeypatch, request.param) as disk, TestClient(create_app(settings)) as client:
        headers = login(client, "admin", ADMIN_PASSWORD)
        create_dataset(client, headers)
        yield client, headers, disk


def _full(response) -> None:
    body = assert_error(response, 507, "insufficient_storage")
    assert "Traceback" not in body["error"] and "Errno" not in body["error"]
    assert response.headers["x-content-type-options"] == "nosniff"


def test_uploads_on_a_full_disk_answer_507_and_keep_nothing(full_disk, settings):
    client, headers, disk = full_disk
    assert upload_object(client, headers, "kept.txt", b"kept").status_code == 201
    share = client.post("/share/init", data={"tag": "admin/d"}, headers=headers).json()["token"]
    stamp = {"entries": [{"kept.txt": hashlib.sha256(b"kept").hexdigest()},
                         {"pushed.bin": hashlib.sha256(PAYLOAD).hexdigest()}]}
    checksum = client.get(f"{BASE}/stamp", headers=headers).json()["checksum"]
    push = client.post(f"{BASE}/push/init", data={"checksum": checksum, "stamp": json.dumps(stamp)}, headers=headers)
    assert push.status_code == 200 and push.json()["neededFiles"] == ["pushed.bin"], push.text
    rows = _rows(settings)

    disk.fill(leave=256 * KiB)
    uploads = {
        "POST .../obj": lambda: upload_object(client, headers, "big.bin", PAYLOAD),
        "share upload": lambda: client.post(f"/share/{share}/upload", data={"path": "shared.bin"},
                                            files={"file": ("shared.bin", PAYLOAD)}, headers=headers),
        "share chunked": lambda: client.post(f"/share/{share}/upload/chunked", files={"chunk": ("c", PAYLOAD)},
                                             data={"fileId": "f1", "chunkIndex": "0", "totalChunks": "1",
                                                   "totalFileSize": str(len(PAYLOAD)), "path": "chunked.bin"},
                                             headers=headers),
        "push upload": lambda: client.post(f"{BASE}/push/upload", data={"token": push.json()["token"],
                                                                       "path": "pushed.bin"},
                                           files={"file": ("pushed.bin", PAYLOAD)}, headers=headers),
        "POST /datasets": lambda: client.post("/datasets", files={"file": ("r.tif", PAYLOAD, "image/tiff")},
                                              headers=headers),
    }
    for name, send in uploads.items():
        _full(send())
        assert _temp_files(settings) == [], name
        assert _rows(settings) == rows, name
        assert disk.free() >= 240 * KiB, name  # nothing partial holds space either

    # reads keep working on the full disk
    assert [entry["path"] for entry in client.get(f"{BASE}/list", headers=headers).json()] == ["kept.txt"]
    assert client.get(f"{BASE}/download", params={"path": "kept.txt"}, headers=headers).content == b"kept"
    assert client.get("/datasets", headers=headers).json()["total"] == 0
    shared = client.get(f"/share/{share}", headers=headers).json()
    assert (shared["entries"], shared["uploads"]) == ([], [])
    assert client.get(f"{BASE}/obj", params={"path": "big.bin"}, headers=headers).status_code == 404

    disk.empty()  # space freed: the same uploads go through
    for name in ("POST .../obj", "share upload", "share chunked", "push upload"):
        response = uploads[name]()
        assert response.status_code in (200, 201), (name, response.text)
    assert _temp_files(settings) == []
    assert client.post(f"/share/{share}/commit", headers=headers).status_code == 200
    paths = {entry["path"] for entry in client.get(f"{BASE}/list", headers=headers).json()}
    assert paths == {"kept.txt", "big.bin", "shared.bin", "chunked.bin"}


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_chunk_assembly_on_a_full_disk_keeps_the_chunks_to_retry(full_disk, settings):
    """The chunks fit, their assembly into one file does not: 507, no temp file, the chunks stay, and the last chunk
    sent again once there is room assembles the file."""
    client, headers, disk = full_disk
    token = client.post("/share/init", data={"tag": "admin/d"}, headers=headers).json()["token"]
    half = len(PAYLOAD) // 4
    data = PAYLOAD[: 2 * half]

    def chunk(index: int):
        return client.post(f"/share/{token}/upload/chunked", files={"chunk": ("c", data[index * half:][:half])},
                           data={"fileId": "big", "chunkIndex": str(index), "totalChunks": "2",
                                 "totalFileSize": str(len(data)), "path": "big.bin"}, headers=headers)

    disk.fill(leave=2 * half + 128 * KiB)
    assert chunk(0).json()["complete"] is False
    _full(chunk(1))  # both chunks are kept, the assembled copy does not fit
    assert _temp_files(settings) == []
    assert _rows(settings)["BatchChunk"] == 2
    assert client.post(f"/share/{token}/commit", headers=headers).status_code == 409  # still incomplete

    disk.empty()
    assembled = chunk(1)
    assert assembled.status_code == 200 and assembled.json()["complete"] is True, assembled.text
    assert client.post(f"/share/{token}/commit", headers=headers).status_code == 200
    assert client.get(f"{BASE}/download", params={"path": "big.bin"}, headers=headers).content == data
    assert _temp_files(settings) == []


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_enospc_outside_the_storage_writers_is_507_other_os_errors_500(client, ds, monkeypatch):
    """A write that does not go through core.storage (a cache, a library) failing for space is still a 507; any
    other OSError stays an unexpected 500 without details."""
    quiet = TestClient(client.app, raise_server_exceptions=False)
    for number, status, code in ((errno.ENOSPC, 507, "insufficient_storage"), (errno.EDQUOT, 507,
                                 "insufficient_storage"), (errno.EACCES, 500, "internal_error")):
        def failing(*args: object, number: int = number, **kwargs: object) -> None:
            raise OSError(number, os.strerror(number), "/srv/secret/path")

        monkeypatch.setattr(entry_repo, "list_children", failing)
        response = quiet.get(f"{BASE}/list", headers=ds)
        body = assert_error(response, status, code)
        assert "/srv/secret/path" not in body["error"]
