"""PNG files of the rebuildable caches (thumbnails, tiles): written atomically but not fsynced, checked when read.

A cache entry is only a copy of something georeg can draw again, so paying an fsync per tile (tens of
milliseconds on a busy disk, thousands of times in a seeding job) buys nothing: after a crash an entry may be
empty or cut short, and the reader treats anything that is not a whole PNG as missing and draws it again.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from georeg.core.storage import TEMP_PREFIX, is_no_space

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_END = b"IEND\xaeB`\x82"  # the IEND chunk's type and CRC close every complete PNG


def read_cached_png(path: Path) -> bytes | None:
    """The cached PNG at ``path``, or None when it is missing or not a complete PNG."""
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    return data if data.startswith(PNG_SIGNATURE) and data.endswith(PNG_END) else None


def write_cached_png(png: bytes, destination: Path, *, tmp_dir: Path) -> None:
    """Write ``png`` to a temp file in ``tmp_dir`` and rename it over ``destination`` (no fsync). A full disk only
    means nothing is cached: the picture is still served."""
    temp = tmp_dir / f"{TEMP_PREFIX}{uuid.uuid4().hex}"
    try:
        tmp_dir.mkdir(parents=True, exist_ok=True)
        with open(temp, "wb") as handle:
            handle.write(png)
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temp, destination)
    except OSError as exc:
        if not is_no_space(exc):
            raise
    finally:
        temp.unlink(missing_ok=True)
