"""File storage under the data dir: safe paths and atomic, hashed writes.

Content is written to a temporary file in ``<data_dir>/tmp`` (same filesystem as the storage),
fsynced, then renamed into place, so an interrupted write never leaves a partial file. A full file system
(ENOSPC, EDQUOT) raises :class:`InsufficientStorage` after the temp file is removed. A writer holds a shared lock
on its temp file while it has it open (shared: readers that lock, like HDF5, still open it), so the temp files of
writers killed mid-write (``kill -9``, the OOM killer) are told apart and removed by
:func:`remove_orphan_temp_files` when an API process starts.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import os
import re
import shutil
import stat
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from georeg.core.errors import InsufficientStorage, InvalidPath, PayloadTooLarge

MAX_PATH_LENGTH = 1024
MAX_SEGMENT_BYTES = 255  # NAME_MAX of the file systems the storage lives on
TEMP_PREFIX = ".georeg-tmp-"
WRITER_PREFIX = f"{TEMP_PREFIX}w-"  # a TempWriter's file (locked while open); TEMP_PREFIX alone: other temp files
_WRITER_NAME = re.compile(rf"{re.escape(WRITER_PREFIX)}[0-9a-f]{{32}}")
CHUNK_SIZE = 1024 * 1024
WRITEBACK_BYTES = 8 * 1024 * 1024
_SYNC_FILE_RANGE_WRITE = 2
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
NO_SPACE_MESSAGE = "the server's storage is full; nothing was stored (retry when space has been freed)"


def is_no_space(exc: BaseException) -> bool:
    """Whether ``exc`` says the file system is full or the disk quota is used up."""
    return isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS


def no_space_error() -> InsufficientStorage:
    return InsufficientStorage(NO_SPACE_MESSAGE)


def _load_sync_file_range():  # noqa: ANN202
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    return function


_sync_file_range = _load_sync_file_range()


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing a range to disk now (Linux), so a later fsync has less to do."""
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def normalize_entry_path(raw: str | None, *, allow_root: bool = False) -> str:
    """A clean relative POSIX path ``a/b/c``; traversal and tricks raise :class:`InvalidPath`.

    Rejects absolute paths, ``..`` segments, backslashes, NUL and control characters, drive letters
    over-long paths and over-long file or folder names. ``""`` (the dataset root) is allowed only with ``allow_root``.
    """
    value = (raw or "").strip()
    if any(ord(ch) < 32 or ch == "\x7f" for ch in value):
        raise InvalidPath("path contains control characters")
    if "\\" in value:
        raise InvalidPath("path must use '/' separators, not backslashes")
    if len(value) > MAX_PATH_LENGTH:
        raise InvalidPath(f"path longer than {MAX_PATH_LENGTH} characters")
    if value.startswith("/") or (len(value) >= 2 and value[1] == ":"):
        raise InvalidPath("path must be relative to the dataset")
    parts = [part for part in value.split("/") if part not in ("", ".")]
    if any(part == ".." for part in parts):
        raise InvalidPath("path must not contain '..'")
    if any(part.startswith(TEMP_PREFIX) or part.strip() != part for part in parts):
        raise InvalidPath("path segment is not allowed")
    if any(len(part.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES for part in parts):
        raise InvalidPath(f"a path segment (file or folder name) is longer than {MAX_SEGMENT_BYTES} bytes")
    normalized = "/".join(parts)
    if not normalized and not allow_root:
        raise InvalidPath("path is empty")
    return normalized


def parent_paths(path: str) -> list[str]:
    """``a/b/c`` -> ``["a", "a/b"]``."""
    parents = PurePosixPath(path).parents
    return [str(parent) for parent in reversed(parents) if str(parent) != "."]


@dataclass(frozen=True)
class StoredFile:
    path: Path
    size: int
    sha256: str


def dataset_dir(storage_root: Path, org_slug: str, dataset_slug: str) -> Path:
    return storage_root / org_slug / dataset_slug


def resolve_inside(root: Path, relative: str) -> Path:
    """``root/relative`` after checking it stays inside ``root`` (symlinks resolved)."""
    target = (root / relative).resolve()
    root_resolved = root.resolve()
    if target != root_resolved and root_resolved not in target.parents:
        raise InvalidPath("path escapes the dataset")
    return target


class TempWriter:
    """Incremental writer into a temp file that hashes and counts bytes and enforces a size limit.

    ``write``/``write_many`` do everything in order. A caller that wants hashing and writing to run
    side by side calls :meth:`reserve` for each batch, then :meth:`hash_pieces` and :meth:`append_pieces`
    on it, possibly in two threads at once, each of the two taking the batches in their order."""

    def __init__(self, tmp_dir: Path, *, max_bytes: int | None) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._written = 0
        self._flushed = 0
        self._hash = hashlib.sha256()
        self._out_of_space = False
        self.path = tmp_dir / f"{WRITER_PREFIX}{uuid.uuid4().hex}"
        try:
            tmp_dir.mkdir(parents=True, exist_ok=True)
            while True:
                self._file = open(self.path, "wb", buffering=0)  # noqa: SIM115
                if _lock(self._file.fileno(), shared=True) and os.fstat(self._file.fileno()).st_nlink == 0:
                    self._file.close()  # removed as an orphan between open and lock: another name
                    self.path = tmp_dir / f"{WRITER_PREFIX}{uuid.uuid4().hex}"
                    continue
                break
        except OSError as exc:
            if is_no_space(exc):
                self.path.unlink(missing_ok=True)
                raise no_space_error() from exc
            raise

    def write(self, data: bytes | memoryview) -> None:
        self.write_many([data])

    def write_many(self, pieces: list[bytes | memoryview]) -> None:
        """Hash and append ``pieces`` in order (the size limit is checked before anything is written)."""
        self.reserve(sum(len(piece) for piece in pieces))
        self.hash_pieces(pieces)
        self.append_pieces(pieces)

    def reserve(self, incoming: int) -> None:
        """Count ``incoming`` more bytes into :attr:`size`; :class:`PayloadTooLarge` past the limit."""
        self.size += incoming
        if self.max_bytes is not None and self.size > self.max_bytes:
            raise PayloadTooLarge(f"upload exceeds the limit of {self.max_bytes} bytes")

    def hash_pieces(self, pieces: list[bytes | memoryview]) -> None:
        """Feed reserved ``pieces`` to the sha256 (releases the GIL; may overlap :meth:`append_pieces`)."""
        for piece in pieces:
            self._hash.update(piece)

    def append_pieces(self, pieces: list[bytes | memoryview]) -> None:
        """Append reserved ``pieces`` to the file, starting disk writeback every few MiB. A full file system
        removes the temp file (its space is free again at once) and raises :class:`InsufficientStorage`, as does
        every later append."""
        if self._out_of_space:
            raise no_space_error()
        try:
            for piece in pieces:
                view = memoryview(piece)
                while view:
                    view = view[self._file.write(view) :]
                self._written += len(piece)
        except OSError as exc:
            if is_no_space(exc):
                self._give_up_space()
                raise no_space_error() from exc
            raise
        if self._written - self._flushed >= WRITEBACK_BYTES:
            start_writeback(self._file.fileno(), self._flushed, self._written - self._flushed)
            self._flushed = self._written

    def finish(self, destination: Path, *, durable: bool = True) -> StoredFile:
        """fsync (unless not ``durable``: a temporary part whose whole is checked later), atomically move into
        ``destination`` and close. The file is closed (its lock released) only once it left the temp dir: finished in
        place (``destination`` is :attr:`path`), it stays open until :meth:`discard`."""
        if self._out_of_space:
            raise no_space_error()
        if self._written != self.size:
            raise RuntimeError(f"{self._written} of {self.size} reserved bytes written")
        try:
            if durable:
                os.fsync(self._file.fileno())  # may report ENOSPC of delayed allocation or a network file system
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.path, destination)  # still open, so still locked: no orphan sweep removes it meanwhile
            if destination != self.path:
                self._file.close()
        except OSError as exc:
            if is_no_space(exc):
                self._give_up_space()
                raise no_space_error() from exc
            raise
        return StoredFile(path=destination, size=self.size, sha256=self._hash.hexdigest())

    def _give_up_space(self) -> None:
        self._out_of_space = True
        self.discard()

    def discard(self) -> None:
        if not self._file.closed:
            try:
                self._file.close()
            except OSError:  # a close that reports a failed write-back (ENOSPC on NFS): the file goes anyway
                pass
        self.path.unlink(missing_ok=True)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


def _lock(fd: int, *, shared: bool) -> bool:
    """A lock on the open file ``fd`` (released when every descriptor of that open is closed, also by the kernel when
    the process dies): a writer's shared one, waiting for a sweep's exclusive one, or that exclusive one at once;
    False when the lock is held elsewhere, or when locks are not supported."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def remove_orphan_temp_files(tmp_dir: Path) -> int:
    """Remove the temp files of :class:`TempWriter` s that died without removing them (killed mid-upload): the ones no
    open file holds a lock on. Other temp files wait for the ``cleanup`` flow's TTL. The number removed."""
    try:
        names = [name for name in os.listdir(tmp_dir) if _WRITER_NAME.fullmatch(name)]
    except FileNotFoundError:
        return 0
    removed = 0
    for name in names:
        try:
            fd = os.open(tmp_dir / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode) and _lock(fd, shared=False):
                (tmp_dir / name).unlink(missing_ok=True)
                removed += 1
        finally:
            os.close(fd)
    return removed


@contextmanager
def temp_writer(tmp_dir: Path, *, max_bytes: int | None) -> Iterator[TempWriter]:
    """A :class:`TempWriter` whose temp file is removed unless ``finish`` moved it."""
    writer = TempWriter(tmp_dir, max_bytes=max_bytes)
    try:
        yield writer
    finally:
        writer.discard()


def write_atomically(chunks: Iterable[bytes], destination: Path, *, tmp_dir: Path, max_bytes: int | None) -> StoredFile:
    with temp_writer(tmp_dir, max_bytes=max_bytes) as writer:
        for chunk in chunks:
            writer.write(chunk)
        return writer.finish(destination)


def sha256_file(path: Path) -> tuple[int, str]:
    """Size and sha256 of a file, streamed."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def remove_tree(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink(missing_ok=True)


def prune_empty_parents(path: Path, *, stop: Path) -> None:
    """Remove empty directories from ``path`` upwards, never ``stop`` itself."""
    current = path
    while current != stop and stop in current.parents:
        try:
            current.rmdir()
        except OSError:
            return
        current = current.parent
