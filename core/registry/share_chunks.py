"""Chunked share uploads: large files sent as numbered chunks, in any order, to any API process.

State lives in the database (a ``BatchFile`` per upload, a ``BatchChunk`` per received chunk) and in the batch's
staging directory (``chunks/<batch file id>/<index>``), never in a process's memory, so an upload survives an API
restart. A resent chunk replaces the earlier one. When the last missing chunk arrives exactly one process claims the
assembly (a conditional UPDATE) and streams the chunks, in order, into the staged file, checking its size against
the announced ``totalFileSize``.
"""

from __future__ import annotations

import hashlib
import re
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from pydantic import Field
from sqlalchemy import delete, update
from sqlmodel import Session, select

from georeg.core.config import Settings
from georeg.core.errors import Conflict, InvalidInput, PayloadTooLarge
from georeg.core.models import BatchChunk, BatchFile, CamelModel, UploadBatch
from georeg.core.registry import batches as batch_repo
from georeg.core.registry.share import ASSEMBLING, ShareEntry, add_row, check_path, check_quota, staged_file
from georeg.core.storage import TempWriter, remove_tree

MAX_CHUNKS = 100_000
READ_BYTES = 8 * 1024 * 1024
_MD5 = re.compile(r"^[0-9a-fA-F]{32}$")
_FILE_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


class ChunkReceived(CamelModel):
    file_id: str
    received_chunks: list[int] = Field(description="the chunk indexes received so far (all of them once complete)")
    complete: bool
    entry: ShareEntry | None = Field(default=None, description="the assembled file, when this chunk completed it")


def _invalid(message: str, code: str = "invalid_chunk") -> InvalidInput:
    return InvalidInput(message, code=code)


def validate_announcement(*, settings: Settings, file_id: str, index: int, total_chunks: int, total_size: int,
                          chunk_size: int, chunk_md5: str | None, chunk_path: str) -> None:
    """The chunk's own fields (``400`` for each inconsistency; the md5 is checked on the received bytes)."""
    if not _FILE_ID.fullmatch(file_id):
        raise _invalid("fileId must be 1-128 letters, digits, '.', '_' or '-'")
    if not 1 <= total_chunks <= MAX_CHUNKS:
        raise _invalid(f"totalChunks must be between 1 and {MAX_CHUNKS}")
    if not 0 <= index < total_chunks:
        raise _invalid(f"chunkIndex {index} is not below totalChunks {total_chunks}")
    if total_size <= 0 or total_size > total_chunks * settings.share_max_chunk_bytes:
        raise _invalid(f"totalFileSize must be positive and at most totalChunks x {settings.share_max_chunk_bytes}")
    if chunk_size > total_size:
        raise _invalid(f"the chunk ({chunk_size} bytes) is bigger than the whole file ({total_size})",
                       code="chunk_too_large")
    if chunk_md5:
        if not _MD5.fullmatch(chunk_md5):
            raise _invalid("chunkMd5 must be 32 hex digits")
        digest = hashlib.md5(usedforsecurity=False)
        with open(chunk_path, "rb") as handle:
            while piece := handle.read(READ_BYTES):
                digest.update(piece)
        if digest.hexdigest() != chunk_md5.lower():
            raise _invalid("the chunk's md5 is not chunkMd5", code="chunk_md5_mismatch")


def _upload_row(session: Session, *, batch: UploadBatch, file_id: str, path: str, total_chunks: int,
                total_size: int) -> BatchFile:
    """The upload ``file_id`` of the batch, created by its first chunk; later chunks must announce the same."""
    row = session.exec(select(BatchFile).where(BatchFile.batch_token == batch.token,
                                               BatchFile.file_id == file_id)).first()
    if row is None:
        if session.exec(select(BatchFile.id).where(BatchFile.batch_token == batch.token,
                                                   BatchFile.path == path)).first():
            raise Conflict(f"{path!r} is already part of this share", code="path_in_batch")
        check_path(session, batch=batch, path=path)
        return add_row(session, row=BatchFile(batch_token=batch.token, path=path, file_id=file_id,
                                                           total_chunks=total_chunks, total_size=total_size))
    if (row.path, row.total_chunks, row.total_size) != (path, total_chunks, total_size):
        raise _invalid(f"upload {file_id!r} was announced as {row.path!r} in {row.total_chunks} chunks of "
                       f"{row.total_size} bytes in all", code="chunk_mismatch")
    if row.sha256 is not None:
        raise Conflict(f"upload {file_id!r} is {'being assembled' if row.sha256 == ASSEMBLING else 'complete'}",
                       code="upload_complete")
    return row


def receive_chunk(session: Session, *, settings: Settings, batch: UploadBatch, file_id: str, index: int,
                  total_chunks: int, total_size: int, path: str, chunk_md5: str | None,
                  upload: TempWriter) -> ChunkReceived:
    """Keep chunk ``index`` of the upload ``file_id`` (replacing one sent before); assemble the file when it was the
    last one missing. ``400`` for inconsistent fields or a chunk that would make the upload exceed its announced
    size, ``409`` for a path clash, ``429`` over the quota; nothing is kept when it fails (the caller discards the
    temp file)."""
    validate_announcement(settings=settings, file_id=file_id, index=index, total_chunks=total_chunks,
                          total_size=total_size, chunk_size=upload.size, chunk_md5=chunk_md5,
                          chunk_path=str(upload.path))
    row = _upload_row(session, batch=batch, file_id=file_id, path=path, total_chunks=total_chunks,
                      total_size=total_size)
    chunks = {chunk.chunk_index: chunk for chunk in session.exec(select(BatchChunk).where(
        BatchChunk.batch_file_id == row.id))}
    others = sum(chunk.size for i, chunk in chunks.items() if i != index)
    if others + upload.size > total_size:
        raise _invalid(f"chunk {index} makes the upload bigger than totalFileSize {total_size}",
                       code="chunk_too_large")
    check_quota(session, batch=batch, incoming=0)
    chunk = chunks.get(index) or BatchChunk(batch_file_id=row.id, chunk_index=index)
    chunk.size = upload.size
    session.add(chunk)
    batch_repo.touch(batch)
    session.add(batch)
    session.flush()
    # a resent chunk replaces the file atomically; chunks are not fsynced (the assembled file is, and its size is
    # checked against totalFileSize, so a chunk cut short by a machine crash fails the assembly instead of passing)
    upload.finish(_chunk_dir(settings, row) / str(index), durable=False)
    session.commit()
    received = sorted(session.exec(select(BatchChunk.chunk_index).where(BatchChunk.batch_file_id == row.id)).all())
    if len(received) < total_chunks:
        return ChunkReceived(file_id=file_id, received_chunks=received, complete=False)
    claimed = session.execute(update(BatchFile).where(BatchFile.id == row.id, BatchFile.sha256.is_(None))
                              .values(sha256=ASSEMBLING))
    session.commit()
    if claimed.rowcount != 1:  # another request assembles it
        return ChunkReceived(file_id=file_id, received_chunks=received, complete=False)
    entry = _assemble(session, settings=settings, row=row)
    return ChunkReceived(file_id=file_id, received_chunks=received, complete=True, entry=entry)


def _chunk_dir(settings: Settings, row: BatchFile) -> Path:
    return batch_repo.staging_dir(settings, row.batch_token) / "chunks" / str(row.id)


def _concatenate(writer: TempWriter, files: list[Path]) -> None:
    """Append ``files`` in order to ``writer``: sha256 and the write of each piece run in two threads, side by side,
    while the next piece is read (hashlib and file writes release the GIL)."""
    with ThreadPoolExecutor(2, thread_name_prefix="georeg-share-assemble") as pool:
        pending: list[Future] = []
        for file in files:
            with open(file, "rb") as handle:
                while piece := handle.read(READ_BYTES):
                    for future in pending:
                        future.result()
                    writer.reserve(len(piece))
                    pending = [pool.submit(writer.hash_pieces, [piece]), pool.submit(writer.append_pieces, [piece])]
        for future in pending:
            future.result()


def _assemble(session: Session, *, settings: Settings, row: BatchFile) -> ShareEntry:
    """Stream the chunks in order into the staged file; ``400 size_mismatch`` (the upload and its chunks are
    dropped) when the result is not ``totalFileSize`` bytes."""
    directory = _chunk_dir(settings, row)
    writer = TempWriter(settings.tmp_dir, max_bytes=row.total_size)
    try:
        _concatenate(writer, [directory / str(index) for index in range(row.total_chunks)])
        if writer.size != row.total_size:
            raise PayloadTooLarge("short")
        stored = writer.finish(staged_file(settings, row))
    except (PayloadTooLarge, FileNotFoundError):
        writer.discard()
        session.rollback()
        session.execute(delete(BatchFile).where(BatchFile.id == row.id))
        session.commit()
        remove_tree(directory)
        raise _invalid(f"the chunks of {row.path!r} do not add up to totalFileSize {row.total_size}; send the "
                       "file again", code="size_mismatch") from None
    except BaseException:
        writer.discard()
        session.rollback()
        session.execute(update(BatchFile).where(BatchFile.id == row.id).values(sha256=None))
        session.commit()
        raise
    session.execute(update(BatchFile).where(BatchFile.id == row.id).values(sha256=stored.sha256, size=stored.size))
    session.execute(delete(BatchChunk).where(BatchChunk.batch_file_id == row.id))
    session.commit()
    remove_tree(directory)
    return ShareEntry(path=row.path, hash=stored.sha256, size=stored.size)
