"""The streaming multipart reader: events across arbitrary chunk boundaries."""

from __future__ import annotations

import os

import pytest

from georeg.api.multipart import MultipartReader, PartEnd, PartStart
from georeg.core.errors import InvalidInput

BOUNDARY = b"----georeg-boundary"


def body(file_bytes: bytes) -> bytes:
    return (
        b"preamble to ignore\r\n"
        b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="path"\r\n\r\ndir/a.bin\r\n'
        b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + file_bytes + b"\r\n--" + BOUNDARY + b"--\r\nepilogue"
    )


def collect(payload: bytes, chunk: int):
    reader = MultipartReader(BOUNDARY)
    parts, current = {}, None
    for start in range(0, len(payload), chunk):
        for event in reader.feed(payload[start : start + chunk]):
            if isinstance(event, PartStart):
                current = event
                parts[event.name] = (event.filename, bytearray())
            elif isinstance(event, PartEnd):
                current = None
            else:
                parts[current.name][1].extend(event)
    return reader.complete, {name: (filename, bytes(data)) for name, (filename, data) in parts.items()}


@pytest.mark.parametrize("chunk", [1, 7, 23, 64, 1000, 65536, 10**7])
def test_parts_survive_any_chunking(chunk):
    content = os.urandom(50_000) + b"\r\n--" + BOUNDARY[:-1] + b"\r\n-" + os.urandom(1000)
    complete, parts = collect(body(content), chunk)
    assert complete
    assert parts == {"path": (None, b"dir/a.bin"), "file": ("a.bin", content)}


def test_missing_closing_delimiter_is_incomplete():
    complete, _ = collect(body(b"abc")[:-20], 64)
    assert not complete


@pytest.mark.parametrize(
    "payload",
    [b"--" + BOUNDARY + b"XX", b"--" + BOUNDARY + b"\r\nno colon here\r\n\r\n",
     b"--" + BOUNDARY + b'\r\nContent-Disposition: attachment; name="x"\r\n\r\n',
     b"--" + BOUNDARY + b"\r\nX-Long: " + b"a" * 20000],
)
def test_malformed_parts_are_rejected(payload):
    reader = MultipartReader(BOUNDARY)
    with pytest.raises(InvalidInput):
        list(reader.feed(payload))
