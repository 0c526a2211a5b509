"""``/share``: one-shot uploads into a new or existing dataset (DroneDB's ``ddb share``), and a dataset's batches.

``init`` (tag, orgSlug, datasetName) -> a token; ``upload`` (path, file) and ``upload/chunked`` (fileId, chunkIndex,
totalChunks, totalFileSize, path, chunkMd5, chunk) stage files; ``commit`` adds them all to the dataset at once;
``rollback`` removes what the batch added. Bodies are form fields, as DroneDB's client sends them.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.concurrency import run_in_threadpool

from georeg.api.deps import ActorDep, PageDep, SessionDep, SettingsDep, TaskServiceDep, WritableDataset
from georeg.api.form_body import read_small_body
from georeg.api.schemas import AUTH_ERRORS, COMMON_ERRORS, errors
from georeg.api.uploads import multipart_body, receive_upload
from georeg.core.errors import InvalidInput, PayloadTooLarge
from georeg.core.paging import SkipTakePage
from georeg.core.rasters.entries import describe_entry
from georeg.core.registry import batches, share, share_chunks
from georeg.core.storage import normalize_entry_path

router = APIRouter(tags=["share"], responses={**COMMON_ERRORS, **AUTH_ERRORS})

Token = Annotated[str, Path(min_length=1, max_length=64, description="the share token from share/init")]
FORM_BYTES = 64 * 1024


def _text(description: str) -> dict:
    return {"type": "string", "description": description}


INIT_BODY = multipart_body({
    "tag": _text("'org/dataset': the destination dataset (created when missing)"),
    "orgSlug": _text("without a tag: the organization of a new dataset with a generated slug (default: your own)"),
    "datasetName": _text("the new dataset's name"),
}, required=[])
INIT_BODY["requestBody"]["content"]["application/x-www-form-urlencoded"] = \
    INIT_BODY["requestBody"]["content"]["multipart/form-data"]
UPLOAD_BODY = multipart_body({"path": _text("the file's path in the dataset"),
                              "file": {"type": "string", "format": "binary"}}, required=["path", "file"])
CHUNK_BODY = multipart_body({
    "fileId": _text("the client's id of the upload (same for all its chunks)"),
    "chunkIndex": {"type": "integer", "minimum": 0, "description": "0-based, below totalChunks"},
    "totalChunks": {"type": "integer", "minimum": 1},
    "totalFileSize": {"type": "integer", "minimum": 1, "description": "the whole file's bytes"},
    "path": _text("the file's path in the dataset"),
    "chunkMd5": _text("optional md5 (hex) of this chunk, verified"),
    "chunk": {"type": "string", "format": "binary"},
}, required=["fileId", "chunkIndex", "totalChunks", "totalFileSize", "path", "chunk"])


async def _init_fields(request: Request) -> dict[str, str]:
    body = await read_small_body(request, max_bytes=FORM_BYTES)
    return {name: value.decode("utf-8", "replace") for name, value in (body.fields or {}).items()}


InitFields = Annotated[dict[str, str], Depends(_init_fields)]


def _required(fields: dict[str, str], name: str) -> str:
    if not fields.get(name, "").strip():
        raise InvalidInput(f"the field {name!r} is missing", code="missing_field")
    return fields[name].strip()


def _integer(fields: dict[str, str], name: str) -> int:
    value = _required(fields, name)
    if not value.isdigit() or len(value) > 18:
        raise InvalidInput(f"the field {name!r} must be a non-negative integer", code="invalid_chunk")
    return int(value)


@router.post("/share/init", responses=errors(409, 429), openapi_extra=INIT_BODY)
def init(fields: InitFields, session: SessionDep, settings: SettingsDep, actor: ActorDep) -> share.ShareToken:
    """Open a share: into ``tag`` (created when missing; write permission), or a new private dataset with a
    generated slug in ``orgSlug`` (default: your own organization). Your running share on that dataset is rolled
    back first."""
    return share.init_share(session, settings=settings, actor=actor, tag=fields.get("tag", ""),
                            org_slug=fields.get("orgSlug", ""), dataset_name=fields.get("datasetName", ""))


@router.get("/share/{token}")
def get_share(token: Token, session: SessionDep, actor: ActorDep) -> share.ShareInfo:
    """The batch: status, staged entries, and the chunked uploads still missing chunks (which to resend)."""
    return share.share_info(session, batch=share.get_share(session, token=token, actor=actor, running=False))


@router.post("/share/{token}/upload", responses=errors(409, 413, 429, 507), openapi_extra=UPLOAD_BODY)
async def upload(token: Token, request: Request, session: SessionDep, settings: SettingsDep,
                 actor: ActorDep) -> share.ShareEntry:
    """One file, staged until commit; a path already in the batch is a conflict."""
    batch = await run_in_threadpool(share.get_share, session, token=token, actor=actor)
    received = await receive_upload(request, tmp_dir=settings.tmp_dir, max_bytes=settings.max_upload_bytes)
    try:
        if received.file is None:
            raise InvalidInput("the file part 'file' is missing", code="missing_field")
        path = normalize_entry_path(_required(received.fields, "path"))
        return await run_in_threadpool(share.receive_file, session, settings=settings, batch=batch, path=path,
                                       upload=received.file)
    finally:
        received.discard()


@router.post("/share/{token}/upload/chunked", responses=errors(409, 429, 507), openapi_extra=CHUNK_BODY)
async def upload_chunk(token: Token, request: Request, session: SessionDep, settings: SettingsDep,
                       actor: ActorDep) -> share_chunks.ChunkReceived:
    """One chunk of a large file (any order, resend allowed); the chunk that completes the file assembles it."""
    batch = await run_in_threadpool(share.get_share, session, token=token, actor=actor)
    try:
        received = await receive_upload(request, tmp_dir=settings.tmp_dir, max_bytes=settings.share_max_chunk_bytes,
                                        file_field="chunk")
    except PayloadTooLarge as exc:
        raise InvalidInput(f"a chunk may hold at most {settings.share_max_chunk_bytes} bytes ({exc.message})",
                           code="chunk_too_large") from None
    try:
        if received.file is None:
            raise InvalidInput("the file part 'chunk' is missing", code="missing_field")
        fields = received.fields
        return await run_in_threadpool(
            share_chunks.receive_chunk, session, settings=settings, batch=batch, file_id=_required(fields, "fileId"),
            index=_integer(fields, "chunkIndex"), total_chunks=_integer(fields, "totalChunks"),
            total_size=_integer(fields, "totalFileSize"), path=normalize_entry_path(_required(fields, "path")),
            chunk_md5=fields.get("chunkMd5", "").strip() or None, upload=received.file)
    finally:
        received.discard()


@router.post("/share/{token}/commit", responses=errors(409, 429))
async def commit(token: Token, session: SessionDep, settings: SettingsDep, actor: ActorDep,
                 tasks: TaskServiceDep) -> share.ShareCommitted:
    """Add every staged file to the dataset at once (and start the builds of buildable ones); 409 listing the
    chunked uploads still incomplete."""
    committed = await run_in_threadpool(share.commit_share_by_token, session, settings=settings, token=token,
                                        actor=actor, describe=describe_entry)
    await tasks.build_after_upload(actor=actor, access=committed.target, paths=committed.paths)
    return committed.answer


@router.post("/share/{token}/rollback", responses=errors(409))
def rollback(token: Token, session: SessionDep, settings: SettingsDep, actor: ActorDep) -> share.ShareToken:
    """Drop what the batch staged; the dataset goes only when this batch created it (and it is still empty)."""
    batch = share.get_share(session, token=token, actor=actor)
    batches.rollback_batch(session, settings=settings, batch=batch)
    return share.ShareToken(token=token)


@router.get("/orgs/{orgSlug}/ds/{dsSlug}/batches")
def list_batches(access: WritableDataset, session: SessionDep, page: PageDep) -> SkipTakePage[share.ShareBatchSummary]:
    """The dataset's share batches, newest first (write permission: they name their users)."""
    return share.list_batches(session, dataset=access.dataset, skip=page.skip, take=page.take)
