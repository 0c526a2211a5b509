"""Small request bodies that come either as JSON or as form fields (DroneDB's clients send form fields holding JSON
text): read with a size limit, never more than that held in memory."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

from fastapi import Request
from python_multipart.multipart import parse_options_header

from georeg.api.multipart import MultipartReader, PartEnd, PartStart
from georeg.core.errors import InvalidInput, PayloadTooLarge

FORM_TYPES = (b"application/x-www-form-urlencoded", b"multipart/form-data")


@dataclass(frozen=True)
class SmallBody:
    """The body as sent (``raw``) and, for a form, its fields (the last value of a repeated one)."""

    raw: bytes
    fields: dict[str, bytes] | None = None

    @property
    def is_form(self) -> bool:
        return self.fields is not None


async def read_small_body(request: Request, *, max_bytes: int) -> SmallBody:
    """Read the body (``413`` past ``max_bytes``); parse it as form fields when its content type is a form."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"request body larger than {max_bytes} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise PayloadTooLarge(f"request body larger than {max_bytes} bytes")
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type == b"application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(bytes(body).decode("ascii"), keep_blank_values=True, strict_parsing=False,
                              encoding="utf-8", errors="surrogateescape")
        except (UnicodeDecodeError, ValueError) as exc:
            raise InvalidInput(f"malformed form body: {exc}", code="bad_form") from exc
        return SmallBody(raw=bytes(body), fields={name: value.encode("utf-8", "surrogateescape")
                                                  for name, value in pairs})
    if content_type == b"multipart/form-data":
        try:
            fields = _multipart_fields(bytes(body), params.get(b"boundary", b""))
        except InvalidInput:
            raise
        except Exception as exc:  # whatever a malformed body trips is the client's error
            raise InvalidInput(f"malformed multipart body: {exc}", code="bad_multipart") from exc
        return SmallBody(raw=bytes(body), fields=fields)
    return SmallBody(raw=bytes(body))


def _multipart_fields(body: bytes, boundary: bytes) -> dict[str, bytes]:
    reader = MultipartReader(boundary)
    fields: dict[str, bytes] = {}
    name, value = None, bytearray()
    for event in reader.feed(body):
        if isinstance(event, PartStart):
            name, value = event.name, bytearray()
        elif isinstance(event, PartEnd):
            if name is not None:
                fields[name] = bytes(value)
            name = None
        elif name is not None:
            value += event
    if not reader.complete:
        raise InvalidInput("incomplete multipart body (no closing boundary)", code="bad_multipart")
    return fields
