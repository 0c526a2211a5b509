"""Streaming multipart reception: the file part goes straight into a hashed temp file in the data dir.

No copy of the upload is spooled elsewhere first, the size limit is enforced while reading, hashing and
writing run in a thread while the next chunks arrive, and the temp file is removed on any failure.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Request
from python_multipart.multipart import parse_options_header

from georeg.api.multipart import MultipartReader, PartEnd, PartStart
from georeg.core.errors import InvalidInput, PayloadTooLarge
from georeg.core.storage import TempWriter

MAX_FIELD_BYTES = 64 * 1024
MULTIPART_OVERHEAD = 64 * 1024
FLUSH_BYTES = 1024 * 1024


@dataclass
class ReceivedUpload:
    fields: dict[str, str] = field(default_factory=dict)
    file: TempWriter | None = None
    filename: str | None = None

    def discard(self) -> None:
        if self.file is not None:
            self.file.discard()


class _PipelinedWrites:
    """Hands batches of pieces to the writer in a thread, one batch in flight, so receiving and
    writing overlap; pieces are hashed and written as they are, without joining them."""

    def __init__(self, writer: TempWriter):
        self.writer = writer
        self.pending: list[bytes | memoryview] = []
        self.pending_bytes = 0
        self.in_flight: asyncio.Future | None = None

    async def add(self, data: bytes | memoryview) -> None:
        self.pending.append(data)
        self.pending_bytes += len(data)
        if self.pending_bytes >= FLUSH_BYTES:
            await self.flush()

    async def flush(self, *, wait: bool = False) -> None:
        if self.in_flight is not None:
            await self.in_flight
            self.in_flight = None
        if self.pending:
            batch, self.pending, self.pending_bytes = self.pending, [], 0
            self.in_flight = asyncio.get_running_loop().run_in_executor(None, self.writer.write_many, batch)
        if wait and self.in_flight is not None:
            await self.in_flight
            self.in_flight = None

    async def settle(self) -> None:
        """Wait for a write still running before its file is removed."""
        if self.in_flight is not None:
            try:
                await self.in_flight
            except Exception:  # noqa: BLE001
                pass
            self.in_flight = None


async def receive_upload(request: Request, *, tmp_dir: Path, max_bytes: int, file_field: str = "file") -> ReceivedUpload:
    """Parse a ``multipart/form-data`` body: text fields plus at most one file part (``file_field``)."""
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or b"boundary" not in params:
        raise InvalidInput("expected a multipart/form-data body with a boundary", code="unsupported_media_type")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + MULTIPART_OVERHEAD:
        raise PayloadTooLarge(f"upload exceeds the limit of {max_bytes} bytes")

    result = ReceivedUpload()
    reader = MultipartReader(params[b"boundary"])
    writes: _PipelinedWrites | None = None
    current: PartStart | None = None
    field_value = bytearray()
    try:
        async for chunk in request.stream():
            for event in reader.feed(chunk):
                if isinstance(event, PartStart):
                    current, field_value = event, bytearray()
                    if event.filename is not None:
                        if event.name != file_field or result.file is not None:
                            raise InvalidInput(f"exactly one file part named {file_field!r} is accepted",
                                               code="bad_multipart")
                        result.filename = event.filename
                        result.file = TempWriter(tmp_dir, max_bytes=max_bytes)
                        writes = _PipelinedWrites(result.file)
                elif isinstance(event, PartEnd):
                    if current is not None and current.filename is None:
                        result.fields[current.name] = field_value.decode("utf-8", "replace")
                    current = None
                elif current is not None and current.filename is not None:
                    await writes.add(event)
                else:
                    field_value += event
                    if len(field_value) > MAX_FIELD_BYTES:
                        raise InvalidInput("form field too large", code="bad_multipart")
        if not reader.complete:
            raise InvalidInput("incomplete multipart body (no closing boundary)", code="bad_multipart")
        if writes is not None:
            await writes.flush(wait=True)
    except (InvalidInput, PayloadTooLarge):
        if writes is not None:
            await writes.settle()
        result.discard()
        raise
    except Exception as exc:
        if writes is not None:
            await writes.settle()
        result.discard()
        raise InvalidInput(f"malformed multipart body: {exc}", code="bad_multipart") from exc
    return result
