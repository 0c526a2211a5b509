"""A small streaming ``multipart/form-data`` reader.

Part bodies are located with ``bytes.find`` on the delimiter, so file content passes through at
memory speed; header blocks are bounded. Events: :class:`PartStart`, ``bytes``/``memoryview``
(body data, valid until the next feed), :class:`PartEnd`; :attr:`MultipartReader.complete` tells
whether the closing delimiter was seen.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from python_multipart.multipart import parse_options_header

from georeg.core.errors import InvalidInput

MAX_HEADER_BYTES = 16 * 1024


@dataclass(frozen=True)
class PartStart:
    name: str
    filename: str | None
    content_type: str | None


@dataclass(frozen=True)
class PartEnd:
    pass


class MultipartReader:
    """Feed body chunks in order; iterate the events each chunk completes."""

    _PREAMBLE, _AFTER_DELIMITER, _HEADERS, _BODY, _DONE = range(5)

    def __init__(self, boundary: bytes) -> None:
        if not boundary or len(boundary) > 200:
            raise InvalidInput("invalid multipart boundary", code="bad_multipart")
        self.delimiter = b"\r\n--" + boundary
        self.buffer = bytearray(b"\r\n")
        self.state = self._PREAMBLE

    @property
    def complete(self) -> bool:
        return self.state == self._DONE

    def feed(self, chunk: bytes) -> Iterator[PartStart | PartEnd | bytes | memoryview]:
        if self.state == self._DONE:
            return
        keep = len(self.delimiter) - 1
        if self.state == self._BODY and len(self.buffer) <= keep and len(chunk) > 4 * keep:
            fast = self._body_fast_path(chunk, keep)
            if fast is not None:
                yield from fast
                return
        self.buffer += chunk
        while True:
            if self.state == self._BODY:
                index = self.buffer.find(self.delimiter)
                if index < 0:
                    if len(self.buffer) > keep:
                        cut = len(self.buffer) - keep
                        yield bytes(self.buffer[:cut])
                        del self.buffer[:cut]
                    return
                if index:
                    yield bytes(self.buffer[:index])
                del self.buffer[: index + len(self.delimiter)]
                yield PartEnd()
                self.state = self._AFTER_DELIMITER
            elif self.state == self._PREAMBLE:
                index = self.buffer.find(self.delimiter)
                if index < 0:
                    del self.buffer[: max(0, len(self.buffer) - keep)]
                    return
                del self.buffer[: index + len(self.delimiter)]
                self.state = self._AFTER_DELIMITER
            elif self.state == self._AFTER_DELIMITER:
                if len(self.buffer) < 2:
                    return
                marker = bytes(self.buffer[:2])
                del self.buffer[:2]
                if marker == b"--":
                    self.state = self._DONE
                    self.buffer.clear()
                    return
                if marker != b"\r\n":
                    raise InvalidInput("malformed multipart delimiter", code="bad_multipart")
                self.state = self._HEADERS
            elif self.state == self._HEADERS:
                index = self.buffer.find(b"\r\n\r\n")
                if index < 0:
                    if len(self.buffer) > MAX_HEADER_BYTES:
                        raise InvalidInput("multipart part headers too large", code="bad_multipart")
                    return
                block = bytes(self.buffer[:index])
                del self.buffer[: index + 4]
                yield self._part_start(block)
                self.state = self._BODY
            else:
                return

    def _body_fast_path(self, chunk: bytes, keep: int) -> list[bytes | memoryview] | None:
        """Body data without copying the chunk when no delimiter starts in it; None otherwise."""
        if (bytes(self.buffer) + chunk[:keep]).find(self.delimiter) >= 0 or chunk.find(self.delimiter) >= 0:
            return None
        pieces: list[bytes | memoryview] = [bytes(self.buffer)] if self.buffer else []
        pieces.append(memoryview(chunk)[: len(chunk) - keep])
        self.buffer = bytearray(chunk[len(chunk) - keep :])
        return pieces

    @staticmethod
    def _part_start(block: bytes) -> PartStart:
        headers = {}
        for line in block.split(b"\r\n"):
            name, sep, value = line.partition(b":")
            if not sep:
                raise InvalidInput("malformed multipart header line", code="bad_multipart")
            headers[name.strip().lower()] = value.strip()
        disposition, options = parse_options_header(headers.get(b"content-disposition", b""))
        if disposition != b"form-data" or b"name" not in options:
            raise InvalidInput("multipart part without a form-data name", code="bad_multipart")
        filename = options.get(b"filename")
        content_type = headers.get(b"content-type")
        return PartStart(
            name=options[b"name"].decode("utf-8", "replace"),
            filename=filename.decode("utf-8", "replace") if filename is not None else None,
            content_type=content_type.decode("latin-1") if content_type else None,
        )
