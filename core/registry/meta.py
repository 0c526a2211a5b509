"""Dataset metadata (DroneDB's ``meta``): JSON values under lowercase keys, of a dataset (path ``""``) or of one
of its entries (the entry's path).

A key ending in ``s`` is plural: it holds a list of values and ``add`` appends one. Any other key is singular: it
holds one value and ``set`` replaces it (the new value gets a new id). The keys ``name``, ``description`` and
``license`` of the dataset itself are meant for its STAC collection.

An entry's values follow the entry when it moves and go with it when it is deleted (``entries.move_subtree`` /
``delete_subtree``); a dataset's go with the dataset (foreign key cascade).
"""

from __future__ import annotations

import json
import math
import re
import uuid
from typing import Any

from sqlalchemy import delete, func
from sqlmodel import Session, select

from georeg.core.errors import InvalidInput, NotFound, PayloadTooLarge
from georeg.core.models import Dataset, DatasetMeta
from georeg.core.registry import datasets as dataset_repo
from georeg.core.registry import entries as entry_repo
from georeg.core.registry.schemas import MetaKeyCount, MetaRecord, MetaValue
from georeg.core.storage import normalize_entry_path
from georeg.core.timeutil import as_utc, utcnow

MAX_KEY_LENGTH = 128
KEY_PATTERN = rf"^[a-z0-9_.\-]{{1,{MAX_KEY_LENGTH}}}$"
KEY_RULES = (f"lowercase letters, digits, '_', '.' and '-' (at most {MAX_KEY_LENGTH}); a key ending in 's' is "
             "plural (a list of values), any other key holds one value")
MAX_DATA_BYTES = 1024 * 1024  # of a value's JSON text
MAX_DEPTH = 64  # nesting of arrays and objects in a value
MAX_IDS = 10_000  # ids one dump may ask for
_KEY = re.compile(KEY_PATTERN)


def validate_key(key: str) -> str:
    """``key`` if it is a valid metadata key, else ``400 invalid_meta_key``."""
    if not _KEY.fullmatch(key or ""):
        raise InvalidInput(f"metadata key {key[:MAX_KEY_LENGTH]!r} is invalid: {KEY_RULES}", code="invalid_meta_key")
    return key


def is_plural(key: str) -> bool:
    return key.endswith("s")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:32]} is out of range")
    return value


def _int64(text: str) -> int:
    """Integers beyond 64 bits would come back from SQLite as floats (its JSON column has numeric affinity)."""
    value = int(text)
    if not -(2**63) <= value < 2**63:
        raise ValueError(f"integer {text[:32]} does not fit in 64 bits")
    return value


def _check_value(value: Any) -> None:
    """Nesting at most ``MAX_DEPTH`` and text that is valid Unicode (no lone surrogates), else ValueError."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            item.encode("utf-8")  # UnicodeEncodeError (a ValueError) for a lone surrogate
        elif isinstance(item, list | dict):
            if depth > MAX_DEPTH:
                raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


def parse_data(text: str | bytes, *, what: str = "data", max_bytes: int = MAX_DATA_BYTES) -> Any:
    """The JSON value in ``text`` (any JSON: object, array, string, number, true, false, null).

    ``413 meta_too_large`` over ``max_bytes`` (``MAX_DATA_BYTES``); ``400 invalid_meta_data`` for text that is not
    JSON, for NaN and infinite numbers, integers beyond 64 bits, nesting deeper than ``MAX_DEPTH`` and strings that
    are not valid Unicode."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"{what} is larger than {max_bytes} bytes", code="meta_too_large")
    if not raw.strip():
        raise InvalidInput(f"{what} is empty: send a JSON value", code="invalid_meta_data")
    try:
        value = json.loads(raw, parse_constant=_reject_constant, parse_float=_finite_float, parse_int=_int64)
        _check_value(value)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InvalidInput(f"{what} is not valid JSON: {str(exc)[:200]}", code="invalid_meta_data") from exc
    return value


def meta_path(session: Session, *, dataset: Dataset, path: str | None) -> str:
    """The normalized ``path`` ("" = the dataset itself); any other must be an entry of the dataset
    (``404 entry_not_found``). Traversal and malformed paths are ``400 invalid_path``."""
    normalized = normalize_entry_path(path, allow_root=True)
    if normalized:
        entry_repo.get_entry(session, dataset=dataset, path=normalized)
    return normalized


def _value(row: DatasetMeta) -> MetaValue:
    return MetaValue(id=row.id, data=row.data, mtime=row.mtime)


def _record(row: DatasetMeta) -> MetaRecord:
    return MetaRecord(id=row.id, path=row.path, key=row.key, data=row.data, mtime=row.mtime)


def _rows(session: Session, *, dataset: Dataset, path: str, key: str) -> list[DatasetMeta]:
    """The values of ``key`` at ``path``, oldest first."""
    return list(session.exec(
        select(DatasetMeta)
        .where(DatasetMeta.dataset_id == dataset.id, DatasetMeta.path == path, DatasetMeta.key == key)
        .order_by(DatasetMeta.mtime, DatasetMeta.id)
    ).all())


def list_keys(session: Session, *, dataset: Dataset, path: str | None = "") -> list[MetaKeyCount]:
    """The keys at ``path`` with how many values each holds, by key."""
    where = meta_path(session, dataset=dataset, path=path)
    rows = session.exec(
        select(DatasetMeta.key, func.count())
        .where(DatasetMeta.dataset_id == dataset.id, DatasetMeta.path == where)
        .group_by(DatasetMeta.key)
    ).all()
    return [MetaKeyCount(key=key, path=where, count=count) for key, count in sorted(rows)]


def get_meta(session: Session, *, dataset: Dataset, key: str, path: str | None = "") -> MetaValue | list[MetaValue]:
    """The value of a singular ``key`` (the newest, should two have been set at once), or the list of values of a
    plural one, oldest first; ``404 meta_not_found`` when there is none."""
    validate_key(key)
    where = meta_path(session, dataset=dataset, path=path)
    rows = _rows(session, dataset=dataset, path=where, key=key)
    if not rows:
        raise NotFound(f"no metadata {key!r} at {where or 'the dataset'!r}", code="meta_not_found")
    return [_value(row) for row in rows] if is_plural(key) else _value(rows[-1])


def _insert(session: Session, *, dataset: Dataset, path: str, key: str, data: Any) -> MetaValue:
    row = DatasetMeta(dataset_id=dataset.id, path=path, key=key, data=data, mtime=utcnow())
    session.add(row)
    dataset_repo.touch(session, dataset=dataset)
    session.commit()
    return _value(row)


def add_meta(session: Session, *, dataset: Dataset, key: str, data: Any, path: str | None = "") -> MetaValue:
    """Append ``data`` to the plural ``key`` (``400 singular_key`` for a singular one: use set)."""
    validate_key(key)
    if not is_plural(key):
        raise InvalidInput(f"{key!r} is a singular key (it does not end in 's'): set it with POST .../meta/{key}/set",
                           code="singular_key")
    where = meta_path(session, dataset=dataset, path=path)
    return _insert(session, dataset=dataset, path=where, key=key, data=data)


def set_meta(session: Session, *, dataset: Dataset, key: str, data: Any, path: str | None = "") -> MetaValue:
    """Replace the value of the singular ``key`` with ``data`` under a new id (``400 plural_key`` for a plural
    one: add to it with POST .../meta/{key})."""
    validate_key(key)
    if is_plural(key):
        raise InvalidInput(f"{key!r} is a plural key (it ends in 's'): add values with POST .../meta/{key}",
                           code="plural_key")
    where = meta_path(session, dataset=dataset, path=path)
    session.execute(delete(DatasetMeta).where(DatasetMeta.dataset_id == dataset.id, DatasetMeta.path == where,
                                              DatasetMeta.key == key))
    return _insert(session, dataset=dataset, path=where, key=key, data=data)


def _as_id(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def remove_meta(session: Session, *, dataset: Dataset, key_or_id: str, path: str | None = "") -> int:
    """Remove the value whose id is ``key_or_id`` (anywhere in the dataset), else every value of the key
    ``key_or_id`` at ``path``; returns how many went (0 when there was none)."""
    where = meta_path(session, dataset=dataset, path=path)
    meta_id = _as_id(key_or_id)
    if meta_id is not None and session.exec(select(DatasetMeta.id).where(
            DatasetMeta.dataset_id == dataset.id, DatasetMeta.id == meta_id)).first() is not None:
        condition = DatasetMeta.id == meta_id
    else:
        condition = (DatasetMeta.path == where) & (DatasetMeta.key == validate_key(key_or_id))
    removed = session.execute(delete(DatasetMeta).where(DatasetMeta.dataset_id == dataset.id, condition)).rowcount
    if removed:
        dataset_repo.touch(session, dataset=dataset)
    session.commit()
    return int(removed or 0)


def validate_ids(ids: Any) -> list[str] | None:
    """A dump's ``ids``: null (every value) or a list of strings (``400 invalid_meta_ids`` otherwise)."""
    if ids is None:
        return None
    if not isinstance(ids, list) or len(ids) > MAX_IDS or not all(isinstance(i, str) and len(i) <= 64 for i in ids):
        raise InvalidInput(f"ids must be a list of at most {MAX_IDS} metadata ids", code="invalid_meta_ids")
    return ids


def dump_meta(session: Session, *, dataset: Dataset, ids: list[str] | None = None) -> list[MetaRecord]:
    """Every value of the dataset and its entries (only those named in ``ids``, when given; unknown ids are
    skipped), by path, key and mtime."""
    query = select(DatasetMeta).where(DatasetMeta.dataset_id == dataset.id)
    if ids is not None:
        wanted = {meta_id for meta_id in (_as_id(i) for i in validate_ids(ids)) if meta_id}
        if not wanted:
            return []
        query = query.where(DatasetMeta.id.in_(sorted(wanted)))
    rows = session.exec(query).all()
    return [_record(row) for row in sorted(rows, key=lambda row: (row.path, row.key, as_utc(row.mtime), row.id))]


def keep_newest(session: Session, *, dataset: Dataset, keys: set[tuple[str, str]]) -> None:
    """For each singular ``(path, key)`` of ``dataset`` that received values from elsewhere (a push, an import),
    keep only the newest value (by ``mtime``, then id); not committed."""
    for path, key in sorted(keys):
        rows = session.exec(select(DatasetMeta).where(DatasetMeta.dataset_id == dataset.id, DatasetMeta.path == path,
                                                      DatasetMeta.key == key)).all()
        newest = max(rows, key=lambda row: (as_utc(row.mtime), row.id))
        for row in rows:
            if row is not newest:
                session.delete(row)
