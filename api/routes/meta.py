"""``/orgs/{orgSlug}/ds/{dsSlug}/meta``: metadata of a dataset (``path`` "") and of its entries (DroneDB's meta).

Values are any JSON, sent as the JSON body or, as DroneDB's clients do, as the form field ``data`` holding JSON text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from georeg.api.deps import ReadableDataset, SessionDep, WritableDataset
from georeg.api.form_body import read_small_body
from georeg.api.schemas import AUTH_ERRORS, COMMON_ERRORS, errors
from georeg.core.errors import InvalidInput
from georeg.core.registry import meta
from georeg.core.registry.schemas import (
    ENTRY_PATH_RULES,
    ROOT_OR_ENTRY_PATH_PATTERN,
    MetaKeyCount,
    MetaRecord,
    MetaValue,
    Removed,
)
from georeg.core.storage import MAX_PATH_LENGTH

router = APIRouter(prefix="/orgs/{orgSlug}/ds/{dsSlug}/meta", tags=["metadata"],
                   responses={**COMMON_ERRORS, **AUTH_ERRORS})

# room for a value of MAX_DATA_BYTES percent-encoded in a form (up to 3 bytes a byte) and the form around it
MAX_BODY_BYTES = 3 * meta.MAX_DATA_BYTES + 64 * 1024

MetaPath = Annotated[str, Query(max_length=MAX_PATH_LENGTH,
                                description=f"the entry the metadata belongs to ({ENTRY_PATH_RULES}); '' (the "
                                            "default) is the dataset itself",
                                json_schema_extra={"pattern": ROOT_OR_ENTRY_PATH_PATTERN})]
MetaKey = Annotated[str, Path(description=meta.KEY_RULES, json_schema_extra={"pattern": meta.KEY_PATTERN})]
KeyOrId = Annotated[str, Path(alias="key", description=f"a metadata id (removes that value) or a key (removes all "
                                                         f"its values at ``path``): {meta.KEY_RULES}")]


def _form_body(field: str, description: str, *, required: bool, **more: dict) -> dict:
    schema = {"type": "object", "properties": {field: {"type": "string", "description": description}, **more},
              "required": [field] if required else []}
    return {"schema": schema}


FORM_PATH = {"path": {"type": "string", "maxLength": MAX_PATH_LENGTH,
                      "description": "the entry, as DroneDB's clients send it (the query parameter wins)"}}


VALUE_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"description": "the value: any JSON (object, array, string, number, boolean, "
                                                   f"null), at most {meta.MAX_DATA_BYTES} bytes"}},
    "application/x-www-form-urlencoded": _form_body("data", "the value as JSON text", required=True, **FORM_PATH),
    "multipart/form-data": _form_body("data", "the value as JSON text", required=True, **FORM_PATH),
}}}
DUMP_BODY = {"requestBody": {"required": False, "content": {
    "application/json": {"schema": {"type": "object", "properties": {"ids": {
        "type": "array", "items": {"type": "string"}, "maxItems": meta.MAX_IDS,
        "description": "only these values (default: all)"}}}},
    "application/x-www-form-urlencoded": _form_body("ids", "a JSON array of ids", required=False),
    "multipart/form-data": _form_body("ids", "a JSON array of ids", required=False),
}}}


@dataclass(frozen=True)
class SentValue:
    data: Any
    path: str | None = None  # DroneDB's form field ``path``


async def _value(request: Request) -> SentValue:
    """The value sent: the JSON body, or the form field ``data`` holding JSON text (and maybe ``path``)."""
    body = await read_small_body(request, max_bytes=MAX_BODY_BYTES)
    if body.is_form:
        if "data" not in body.fields:
            raise InvalidInput("the form field 'data' (the value as JSON text) is missing", code="invalid_meta_data")
        path = body.fields.get("path")
        return SentValue(meta.parse_data(body.fields["data"]),
                         path.decode("utf-8", "replace") if path is not None else None)
    return SentValue(meta.parse_data(body.raw))


async def _dump_ids(request: Request) -> list[str] | None:
    """The ids a dump asks for: ``{"ids": [...]}`` or the form field ``ids`` (JSON text); None for all."""
    body = await read_small_body(request, max_bytes=MAX_BODY_BYTES)
    if body.is_form:
        raw = body.fields.get("ids", b"")
        return meta.validate_ids(meta.parse_data(raw, what="ids")) if raw.strip() else None
    if not body.raw.strip():
        return None
    value = meta.parse_data(body.raw, what="the body")
    if not isinstance(value, dict):
        raise InvalidInput('the body must be an object {"ids": [...]}', code="invalid_meta_ids")
    return meta.validate_ids(value.get("ids"))


ValueBody = Annotated[SentValue, Depends(_value)]
DumpIds = Annotated[list[str] | None, Depends(_dump_ids)]


@router.get("/list")
def list_keys(access: ReadableDataset, session: SessionDep, path: MetaPath = "") -> list[MetaKeyCount]:
    """The keys at ``path`` with how many values each holds."""
    return meta.list_keys(session, dataset=access.dataset, path=path)


@router.post("/dump", responses=errors(413), openapi_extra=DUMP_BODY)
def dump(access: ReadableDataset, session: SessionDep, ids: DumpIds) -> list[MetaRecord]:
    """Every value of the dataset and its entries (or those named in ``ids``), by path, key and mtime."""
    return meta.dump_meta(session, dataset=access.dataset, ids=ids)


@router.get("/{key}")
def get_values(access: ReadableDataset, key: MetaKey, session: SessionDep,
               path: MetaPath = "") -> MetaValue | list[MetaValue]:
    """The value of a singular key, the list of values of a plural key (ending in 's'); 404 when there is none."""
    return meta.get_meta(session, dataset=access.dataset, key=key, path=path)


@router.post("/{key}", responses=errors(413), openapi_extra=VALUE_BODY)
def add_value(access: WritableDataset, key: MetaKey, sent: ValueBody, session: SessionDep,
              path: MetaPath = "") -> MetaValue:
    """Add a value to a plural key (ending in 's'); a singular key is set with ``POST .../meta/{key}/set``."""
    return meta.add_meta(session, dataset=access.dataset, key=key, data=sent.data, path=path or sent.path)


@router.post("/{key}/set", responses=errors(413), openapi_extra=VALUE_BODY)
def set_value(access: WritableDataset, key: MetaKey, sent: ValueBody, session: SessionDep,
              path: MetaPath = "") -> MetaValue:
    """Set (replace) the value of a singular key; the new value gets a new id."""
    return meta.set_meta(session, dataset=access.dataset, key=key, data=sent.data, path=path or sent.path)


@router.delete("/{key}")
def remove(access: WritableDataset, key_or_id: KeyOrId, session: SessionDep, path: MetaPath = "") -> Removed:
    """Remove the value with this id, or every value of this key at ``path``; ``removed`` counts them (0: none)."""
    return Removed(removed=meta.remove_meta(session, dataset=access.dataset, key_or_id=key_or_id, path=path))
