"""Streaming multipart reception into a hashed temp file: many batches (buffers reused) through the
hash/write threads, and nothing left behind (temp file, threads) when the body is refused midway."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time

import pytest
from starlette.requests import Request

from georeg.api import uploads
from georeg.api.uploads import receive_upload
from georeg.core.errors import InvalidInput, PayloadTooLarge

BOUNDARY = "0123456789abcdef0123456789abcdef"


def multipart(content: bytes) -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="path"\r\n\r\ndir/a.bin\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + content + f"\r\n--{BOUNDARY}--\r\n".encode()


def request_for(body: bytes, chunk_sizes: list[int], *, content_length: bool = False) -> Request:
    """A request whose body arrives in pieces of the given sizes (cycled)."""
    pieces, start, index = [], 0, 0
    while start < len(body):
        size = chunk_sizes[index % len(chunk_sizes)]
        pieces.append(body[start : start + size])
        start, index = start + size, index + 1
    messages = iter(pieces)

    async def receive() -> dict:
        piece = next(messages, None)
        return {"type": "http.request", "body": piece or b"", "more_body": piece is not None}

    headers = [(b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode())]
    if content_length:
        headers.append((b"content-length", str(len(body)).encode()))
    return Request({"type": "http", "method": "POST", "headers": headers}, receive)


def upload_threads() -> list[str]:
    """The upload threads still alive once they had a moment to end (they are not joined)."""
    deadline = time.monotonic() + 5
    while True:
        alive = [thread for thread in threading.enumerate() if thread.name.startswith("georeg-upload")]
        if not alive or time.monotonic() > deadline:
            return [thread.name for thread in alive]
        alive[0].join(0.05)


@pytest.fixture
def small_batches(monkeypatch):
    """Batches of 64 KiB so that a few MB go through many of them, with the in-flight limit reached."""
    monkeypatch.setattr(uploads, "FLUSH_BYTES", 64 * 1024)
    monkeypatch.setattr(uploads, "MAX_BATCHES_IN_FLIGHT", 2)


@pytest.mark.parametrize(
    ("size", "chunk_sizes", "content_length"),
    [(3 * 1024 * 1024 + 17, [256 * 1024], False), (3 * 1024 * 1024 + 17, [1, 7000, 65536, 333, 100_000], True),
     (5000, [1000], True), (0, [100], True)],
)
def test_many_batches_hash_and_write_every_byte_in_order(tmp_path, small_batches, size, chunk_sizes, content_length):
    content = os.urandom(size)
    request = request_for(multipart(content), chunk_sizes, content_length=content_length)
    received = asyncio.run(receive_upload(request, tmp_dir=tmp_path, max_bytes=len(content)))
    try:
        assert received.fields == {"path": "dir/a.bin"} and received.filename == "a.bin"
        assert received.file.size == len(content)
        assert received.file.sha256 == hashlib.sha256(content).hexdigest()
        stored = received.file.finish(tmp_path / "out.bin")
        assert stored.path.read_bytes() == content
    finally:
        received.discard()
    assert upload_threads() == []
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out.bin"]


def test_oversize_midstream_leaves_no_temp_file_and_no_thread(tmp_path, small_batches):
    content = os.urandom(2 * 1024 * 1024)
    with pytest.raises(PayloadTooLarge):
        asyncio.run(receive_upload(request_for(multipart(content), [50_000]), tmp_dir=tmp_path,
                                   max_bytes=len(content) - 1))
    assert list(tmp_path.iterdir()) == []
    assert upload_threads() == []


def test_truncated_body_leaves_no_temp_file_and_no_thread(tmp_path, small_batches):
    body = multipart(os.urandom(1024 * 1024))[:-30]
    with pytest.raises(InvalidInput, match="incomplete multipart"):
        asyncio.run(receive_upload(request_for(body, [40_000]), tmp_dir=tmp_path, max_bytes=10**9))
    assert list(tmp_path.iterdir()) == []
    assert upload_threads() == []


def test_client_gone_midway_leaves_no_temp_file_and_no_thread(tmp_path, small_batches):
    pieces = iter([multipart(os.urandom(1024 * 1024))[: 600 * 1024]])

    async def receive() -> dict:
        piece = next(pieces, None)
        if piece is None:
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": piece, "more_body": True}

    headers = [(b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode())]
    request = Request({"type": "http", "method": "POST", "headers": headers}, receive)
    with pytest.raises(InvalidInput):
        asyncio.run(receive_upload(request, tmp_dir=tmp_path, max_bytes=10**9))
    assert list(tmp_path.iterdir()) == []
    assert upload_threads() == []


def test_cancelled_upload_leaves_no_temp_file_and_no_thread(tmp_path, small_batches):
    first = multipart(os.urandom(1024 * 1024))[: 700 * 1024]
    sent = []

    async def receive() -> dict:
        if not sent:
            sent.append(True)
            return {"type": "http.request", "body": first, "more_body": True}
        await asyncio.sleep(3600)  # the rest never comes: the server shuts down and cancels
        return {}

    headers = [(b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode())]
    request = Request({"type": "http", "method": "POST", "headers": headers}, receive)

    async def cancel_midway() -> None:
        task = asyncio.ensure_future(receive_upload(request, tmp_dir=tmp_path, max_bytes=10**9))
        while not sent or not list(tmp_path.iterdir()):
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_midway())
    assert list(tmp_path.iterdir()) == []
    assert upload_threads() == []
