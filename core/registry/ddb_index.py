"""The dataset index (DroneDB's ``.ddb``): a portable SQLite copy of a dataset's entries and metadata, plus its stamp.

``index.sqlite`` holds the tables DroneDB's clients read: ``entries(path, hash, type, size, mtime, properties)`` and
``entries_meta(id, path, key, data, mtime)``. Types are DroneDB's integer codes (``ENTRY_TYPE_CODES``); times are
Unix seconds; ``properties`` and ``data`` are JSON text. ``stamp.json`` is the dataset's stamp, as ``GET .../stamp``
answers it, so a client can start syncing from the index alone.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from sqlmodel import Session, select

from georeg.core.models import Dataset, DatasetMeta, Entry, EntryType
from georeg.core.registry.datasets import dataset_stamp

INDEX_NAME = "index.sqlite"
STAMP_NAME = "stamp.json"
# DroneDB's EntryType codes; NetCDF has none of its own and is a generic file there
ENTRY_TYPE_CODES = {EntryType.directory: 1, EntryType.generic: 2, EntryType.raster: 4, EntryType.pointcloud: 5,
                    EntryType.image: 6, EntryType.netcdf: 2}
_SCHEMA = """
CREATE TABLE entries (path TEXT PRIMARY KEY, hash TEXT NOT NULL, type INTEGER NOT NULL, size INTEGER NOT NULL,
                      mtime INTEGER NOT NULL, properties TEXT NOT NULL);
CREATE TABLE entries_meta (id TEXT PRIMARY KEY, path TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL,
                           mtime INTEGER NOT NULL);
CREATE INDEX ix_entries_meta_path_key ON entries_meta (path, key);
"""
_BATCH = 5000


def _type_code(value: str) -> int:
    try:
        return ENTRY_TYPE_CODES[EntryType(value)]
    except ValueError:
        return 0  # DroneDB's Undefined


def write_index(session: Session, *, dataset: Dataset, directory: Path) -> list[tuple[str, Path]]:
    """Write ``index.sqlite`` and ``stamp.json`` of ``dataset`` into ``directory``; the ``(name, file)`` pairs of the
    archive. Rows are read and written in batches, so a large dataset is never held in memory at once."""
    index_path, stamp_path = directory / INDEX_NAME, directory / STAMP_NAME
    stamp = dataset_stamp(session, dataset=dataset)
    stamp_path.write_text(json.dumps(stamp.model_dump(mode="json", by_alias=True)))
    connection = sqlite3.connect(index_path)
    try:
        connection.executescript(_SCHEMA)
        entries = session.exec(select(Entry).where(Entry.dataset_id == dataset.id).order_by(Entry.path)
                               .execution_options(yield_per=_BATCH)).partitions(_BATCH)
        for part in entries:
            connection.executemany("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?)", [
                (entry.path, entry.sha256 or "", _type_code(entry.type), entry.size, int(entry.mtime.timestamp()),
                 json.dumps(entry.properties or {})) for entry in part])
        values = session.exec(select(DatasetMeta).where(DatasetMeta.dataset_id == dataset.id)
                              .order_by(DatasetMeta.id).execution_options(yield_per=_BATCH)).partitions(_BATCH)
        for part in values:
            connection.executemany("INSERT INTO entries_meta VALUES (?, ?, ?, ?, ?)", [
                (value.id, value.path, value.key, json.dumps(value.data), int(value.mtime.timestamp()))
                for value in part])
        connection.commit()
    finally:
        connection.close()
    return [(INDEX_NAME, index_path), (STAMP_NAME, stamp_path)]
