"""Streaming downloads: a single file (Range via FileResponse) or several as a zip stream."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

from fastapi.responses import FileResponse, StreamingResponse
from starlette.background import BackgroundTask

from georeg.core.storage import CHUNK_SIZE


class _ChunkSink:
    """A write-only file object collecting what zipfile writes, drained by the generator."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.position = 0

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        return None

    def drain(self) -> Iterator[bytes]:
        chunks, self.chunks = self.chunks, []
        yield from chunks


def zip_stream(files: list[tuple[str, Path]]) -> Iterator[bytes]:
    """Yield a zip archive of ``(name in archive, file on disk)`` pairs without buffering it whole."""
    sink = _ChunkSink()
    with zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, path in files:
            with open(path, "rb") as source, archive.open(name, mode="w", force_zip64=True) as target:
                while chunk := source.read(CHUNK_SIZE):
                    target.write(chunk)
                    yield from sink.drain()
            yield from sink.drain()
    yield from sink.drain()


class LargeChunkFileResponse(FileResponse):
    """FileResponse sending 4 MiB pieces: each piece costs a thread hop for the read and a wake-up
    of the event loop, so Starlette's 64 KiB (1600 per 100 MB) is mostly overhead."""

    chunk_size = 4 * CHUNK_SIZE


def file_response(path: Path, *, filename: str, media_type: str | None = None) -> FileResponse:
    return LargeChunkFileResponse(path, filename=filename, media_type=media_type, content_disposition_type="attachment")


def zip_response(files: list[tuple[str, Path]], *, filename: str,
                 background: BackgroundTask | None = None) -> StreamingResponse:
    """A zip stream of ``files``; ``background`` runs once it is sent (or the client went away)."""
    return StreamingResponse(
        zip_stream(files),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        background=background,
    )
