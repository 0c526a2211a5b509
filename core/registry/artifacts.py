"""Where build artifacts live, and removing the ones no entry needs any more.

Artifacts are keyed by content: ``<data>/builds/<sha256>/<artifact path>``. An entry moved or copied keeps its
build, a new version of a file gets a new one, and a build is an orphan once no entry of any dataset holds its
content (the content may live on in another dataset, so orphans are told by the whole registry, never by one
dataset alone).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from sqlmodel import Session, select

from georeg.core.config import Settings
from georeg.core.models import Entry
from georeg.core.storage import remove_tree, resolve_inside

BUILDS_DIR = "builds"
BUILD_TOOL_ID = "build"
"""The id of the task tool that writes builds (its records name the contents a dataset had built)."""
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_BATCH = 500


def builds_root(settings: Settings) -> Path:
    return settings.resolved_data_dir / BUILDS_DIR


def build_dir(settings: Settings, sha256: str) -> Path:
    """Where the artifacts of content ``sha256`` live."""
    return builds_root(settings) / sha256


def artifact_file(settings: Settings, sha256: str, path: str) -> Path:
    """The artifact ``path`` of build ``sha256``, kept inside its folder (``400`` for a path leaving it)."""
    return resolve_inside(build_dir(settings, sha256), path)


def _tree_size(path: Path) -> int:
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def remove_orphan_artifacts(session: Session, *, settings: Settings,
                            hashes: Iterable[str] | None = None) -> tuple[list[str], int]:
    """Remove the builds of contents no entry holds: of ``hashes`` only, or of every build folder when None.
    Returns the removed hashes (sorted) and the bytes freed."""
    root = builds_root(settings)
    if hashes is None:
        candidates = sorted(item.name for item in root.iterdir()) if root.is_dir() else []
    else:
        candidates = sorted(set(hashes))
    candidates = [sha for sha in candidates if _SHA256.match(sha) and (root / sha).is_dir()]
    removed: list[str] = []
    freed = 0
    for start in range(0, len(candidates), _BATCH):
        batch = candidates[start:start + _BATCH]
        held = set(session.exec(select(Entry.sha256).where(Entry.sha256.in_(batch)).distinct()).all())
        for sha in batch:
            if sha in held:
                continue
            folder = root / sha
            freed += _tree_size(folder)
            remove_tree(folder)
            removed.append(sha)
    return removed, freed
