"""Streaming multipart reception: file parts go straight into a hashed temp file in the data dir.

No copy of the upload is spooled elsewhere first, the size limit is enforced while reading, and the
temp file is removed on any failure.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from fastapi import Request
from python_multipart.multipart import MultipartParser, parse_options_header

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


async def receive_upload(request: Request, *, tmp_dir, max_bytes: int, file_field: str = "file") -> ReceivedUpload:
    """Parse a ``multipart/form-data`` body; at most one file part (``file_field``)."""
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or b"boundary" not in params:
        raise InvalidInput("expected a multipart/form-data body with a boundary", code="unsupported_media_type")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + MULTIPART_OVERHEAD:
        raise PayloadTooLarge(f"upload exceeds the limit of {max_bytes} bytes")

    result = ReceivedUpload()
    state: dict = {
        "headers": {}, "field": b"", "value": b"", "name": None, "target": None, "buffer": bytearray(), "ended": False,
    }
    pending = bytearray()

    def on_part_begin() -> None:
        state["headers"] = {}
        state["name"] = None
        state["target"] = None
        state["buffer"] = bytearray()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def on_header_end() -> None:
        state["headers"][state["field"].lower()] = state["value"]
        state["field"] = b""
        state["value"] = b""

    def on_headers_finished() -> None:
        _, options = parse_options_header(state["headers"].get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        state["name"] = name
        if b"filename" in options:
            if name != file_field or result.file is not None:
                raise InvalidInput(f"exactly one file part named {file_field!r} is accepted", code="bad_multipart")
            result.filename = options[b"filename"].decode("utf-8", "replace")
            result.file = TempWriter(tmp_dir, max_bytes=max_bytes)
            state["target"] = result.file

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["target"] is not None:
            pending.extend(data[start:end])
        else:
            state["buffer"] += data[start:end]
            if len(state["buffer"]) > MAX_FIELD_BYTES:
                raise InvalidInput("form field too large", code="bad_multipart")

    def on_part_end() -> None:
        if state["target"] is None and state["name"]:
            result.fields[state["name"]] = bytes(state["buffer"]).decode("utf-8", "replace")

    def on_end() -> None:
        state["ended"] = True

    parser = MultipartParser(
        params[b"boundary"],
        callbacks={
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
            "on_end": on_end,
        },
    )
    loop = asyncio.get_running_loop()
    in_flight: asyncio.Future | None = None

    async def flush(final: bool = False) -> None:
        """Hash and write the pending bytes in a thread while the next chunks are received."""
        nonlocal in_flight
        if in_flight is not None:
            await in_flight
            in_flight = None
        if pending and result.file is not None:
            block = bytes(pending)
            pending.clear()
            in_flight = loop.run_in_executor(None, result.file.write, block)
            if final:
                await in_flight
                in_flight = None

    try:
        async for chunk in request.stream():
            parser.write(chunk)
            if len(pending) >= FLUSH_BYTES:
                await flush()
        parser.finalize()
        await flush(final=True)
        if not state["ended"]:
            raise InvalidInput("incomplete multipart body (no closing boundary)", code="bad_multipart")
    except (InvalidInput, PayloadTooLarge):
        await _settle(in_flight)
        result.discard()
        raise
    except Exception as exc:
        await _settle(in_flight)
        result.discard()
        raise InvalidInput(f"malformed multipart body: {exc}", code="bad_multipart") from exc
    return result


async def _settle(future: asyncio.Future | None) -> None:
    """Wait for a write still running in a thread before its file is removed."""
    if future is not None:
        try:
            await future
        except Exception:  # noqa: BLE001
            pass
