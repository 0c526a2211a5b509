"""``/orgs/{orgSlug}/ds/{dsSlug}/push``: sync a client's dataset by stamps (DroneDB's ``ddb push``).

``init`` (checksum, stamp) -> what the registry needs and a token; ``upload`` (token, path, file) each needed file;
``meta`` (token, meta) the needed metadata; ``commit`` (token) applies the delta at once and answers the new stamp.
Bodies are form fields, as DroneDB's client sends them (``init``, ``meta`` and ``commit`` also take JSON objects).
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool

from georeg.api.deps import ActorDep, DsSlug, OrgSlug, SessionDep, SettingsDep, TaskServiceDep, WritableDataset
from georeg.api.form_body import read_small_body
from georeg.api.schemas import AUTH_ERRORS, COMMON_ERRORS, errors
from georeg.api.uploads import multipart_body, receive_upload
from georeg.core.errors import InvalidInput
from georeg.core.rasters.entries import describe_entry
from georeg.core.registry import meta as meta_repo
from georeg.core.registry import push
from georeg.core.registry.schemas import DatasetStamp, PushInit, PushReceived
from georeg.core.storage import normalize_entry_path

router = APIRouter(prefix="/orgs/{orgSlug}/ds/{dsSlug}/push", tags=["push"], responses={**COMMON_ERRORS, **AUTH_ERRORS})

FORM_OVERHEAD = 64 * 1024


def _form(fields: dict[str, str], required: list[str]) -> dict:
    schema = {"type": "object", "required": required,
              "properties": {name: {"type": "string", "description": text} for name, text in fields.items()}}
    content = {kind: {"schema": schema} for kind in
               ("application/x-www-form-urlencoded", "multipart/form-data", "application/json")}
    return {"requestBody": {"required": True, "content": content}}


TOKEN = {"token": "the push token from push/init"}
INIT_BODY = _form({"checksum": "the server checksum of the client's last sync ('' for a first push)",
                   "stamp": 'the client\'s stamp as JSON text: {"entries": [{"<path>": "<sha256 or \'\' for a '
                            'folder>"}], "meta": ["<metadata id>"]}'}, ["stamp"])
META_BODY = _form({**TOKEN, "meta": "JSON text: an array of {id, path, key, data, mtime (epoch seconds or ISO "
                                    "8601)}"}, ["token", "meta"])
COMMIT_BODY = _form(TOKEN, ["token"])
UPLOAD_BODY = multipart_body({**{name: {"type": "string", "description": text} for name, text in TOKEN.items()},
                              "path": {"type": "string", "description": "a path of neededFiles"},
                              "file": {"type": "string", "format": "binary"}}, required=["token", "path", "file"])


def _fields(max_bytes: int):  # noqa: ANN202
    async def read(request: Request) -> dict[str, str]:
        body = await read_small_body(request, max_bytes=max_bytes)
        if body.is_form:
            return {name: value.decode("utf-8", "replace") for name, value in body.fields.items()}
        value = meta_repo.parse_data(body.raw, what="the body", max_bytes=max_bytes) if body.raw.strip() else {}
        if not isinstance(value, dict):
            raise InvalidInput("the body must be form fields or a JSON object", code="bad_form")
        return {name: item if isinstance(item, str) else json.dumps(item) for name, item in value.items()}

    return Depends(read)


InitFields = Annotated[dict[str, str], _fields(push.MAX_STAMP_BYTES + FORM_OVERHEAD)]
MetaFields = Annotated[dict[str, str], _fields(push.MAX_META_BYTES + FORM_OVERHEAD)]
TokenFields = Annotated[dict[str, str], _fields(FORM_OVERHEAD)]


def _required(fields: dict[str, str], name: str) -> str:
    if name not in fields:
        raise InvalidInput(f"the field {name!r} is missing", code="missing_field")
    return fields[name]


@router.post("/init", openapi_extra=INIT_BODY)
def init(org_slug: OrgSlug, ds_slug: DsSlug, fields: InitFields, session: SessionDep, actor: ActorDep) -> PushInit:
    """Compare stamps: ``pullRequired`` when the dataset changed since the client's last sync, else what the
    registry needs (files by path, metadata by id) and the push token. A missing dataset is created."""
    return push.init_push(session, actor=actor, org_slug=org_slug, ds_slug=ds_slug,
                          checksum=fields.get("checksum", "").strip(), raw_stamp=_required(fields, "stamp"))


@router.post("/upload", responses=errors(409, 413, 429, 507), openapi_extra=UPLOAD_BODY)
async def upload(access: WritableDataset, request: Request, session: SessionDep, settings: SettingsDep,
                 actor: ActorDep) -> PushReceived:
    """One needed file (its hash must be the stamp's); staged until commit."""
    received = await receive_upload(request, tmp_dir=settings.tmp_dir, max_bytes=settings.max_upload_bytes)
    try:
        if received.file is None:
            raise InvalidInput("the file part 'file' is missing", code="missing_field")
        path = normalize_entry_path(_required(received.fields, "path"))
        batch = await run_in_threadpool(push.get_push, session, token=_required(received.fields, "token"),
                                        dataset=access.dataset, actor=actor)
        return await run_in_threadpool(push.receive_file, session, settings=settings, batch=batch, path=path,
                                       upload=received.file)
    finally:
        received.discard()


@router.post("/meta", responses=errors(409, 413), openapi_extra=META_BODY)
def meta(access: WritableDataset, fields: MetaFields, session: SessionDep, actor: ActorDep) -> PushReceived:
    """The needed metadata values, staged until commit (all of a request or none)."""
    batch = push.get_push(session, token=_required(fields, "token"), dataset=access.dataset, actor=actor)
    return push.receive_meta(session, batch=batch, dataset=access.dataset, raw=_required(fields, "meta"))


@router.post("/commit", responses=errors(409, 429), openapi_extra=COMMIT_BODY)
async def commit(access: WritableDataset, fields: TokenFields, session: SessionDep, settings: SettingsDep,
                 actor: ActorDep, tasks: TaskServiceDep) -> DatasetStamp:
    """Apply the push at once and answer the new stamp (and start the builds of buildable files it added); 409
    (nothing applied) when the dataset changed since init."""
    batch = await run_in_threadpool(push.get_push, session, token=_required(fields, "token"), dataset=access.dataset,
                                    actor=actor)
    added = push.added_files(batch)
    stamp = await run_in_threadpool(push.commit_push, session, settings=settings, org=access.org,
                                    dataset=access.dataset, batch=batch, describe=describe_entry)
    await tasks.build_after_upload(actor=actor, access=access, paths=added)
    return stamp
