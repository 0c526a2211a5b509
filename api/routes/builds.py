"""``/orgs/{orgSlug}/ds/{dsSlug}/build``: builds of entries (a Cloud Optimized GeoTIFF per georeferenced raster) as
``build`` tasks, their list, and their artifacts (``build/{hash}/{path}``, with ``Range``)."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query
from fastapi.responses import FileResponse
from sqlmodel import select

from georeg.api.deps import ActorDep, ReadableDataset, SessionDep, SettingsDep, TaskServiceDep, WritableDataset
from georeg.api.downloads import file_response
from georeg.api.schemas import AUTH_ERRORS, COMMON_ERRORS, errors
from georeg.core.errors import NotFound
from georeg.core.models import CamelModel, Entry, UtcDateTime
from georeg.core.paging import MAX_OFFSET, SkipTakePage
from georeg.core.registry.artifacts import artifact_file
from georeg.core.storage import MAX_PATH_LENGTH, normalize_entry_path
from georeg.core.tasks.schemas import TaskPublic
from georeg.core.tasks.tools.build import BUILD

ARTIFACT_MEDIA_TYPES = {".tif": "image/tiff; application=geotiff; profile=cloud-optimized",
                        ".copc.laz": "application/vnd.laszip+copc"}

router = APIRouter(prefix="/orgs/{orgSlug}/ds/{dsSlug}", tags=["builds"], responses={**COMMON_ERRORS, **AUTH_ERRORS})


class BuildPublic(CamelModel):
    job_id: str
    hash: str | None
    path: str | None
    state: str
    created_at: UtcDateTime
    started_at: UtcDateTime | None
    finished_at: UtcDateTime | None
    error: str | None
    result: dict[str, Any] | None


class BuildPage(SkipTakePage[BuildPublic]):
    """A page of builds, newest first."""


class ClearedBuilds(CamelModel):
    deleted_count: int


def _build(task: TaskPublic) -> BuildPublic:
    return BuildPublic(job_id=task.task_id, hash=task.parameters.get("hash"), path=task.path, state=task.state.value,
                       created_at=task.created_at, started_at=task.started_at, finished_at=task.finished_at,
                       error=task.error, result=task.result)


@router.post("/build", status_code=202, responses=errors(409, 422))
async def start_build(access: WritableDataset, actor: ActorDep, tasks: TaskServiceDep,
                      path: Annotated[str, Form(max_length=MAX_PATH_LENGTH, description="the entry to build")],
                      force: Annotated[bool, Form(description="start even if a build of it is running")] = False,
                      ) -> BuildPublic:
    """Build an entry's artifacts as a flow run: a georeferenced raster gets ``cog/cog.tif``."""
    submission = await tasks.submit_build(actor=actor, access=access, path=normalize_entry_path(path), force=force)
    return _build(await tasks.public(submission.task, org=submission.org, dataset=submission.dataset))


@router.get("/builds")
async def list_builds(access: ReadableDataset, tasks: TaskServiceDep,
                      skip: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
                      take: Annotated[int, Query(ge=1, le=500)] = 50) -> BuildPage:
    """The dataset's builds, newest first, with a total."""
    page = await tasks.list(access, tool_id=BUILD.id, state=None, skip=skip, take=take)
    return BuildPage(items=[_build(task) for task in page.items], total=page.total, skip=skip, take=take)


@router.post("/builds/clear")
async def clear_builds(access: WritableDataset, tasks: TaskServiceDep) -> ClearedBuilds:
    """Remove the records of finished builds (their artifacts stay: they belong to the content)."""
    cleared = await tasks.clear(access, tool_id=BUILD.id)
    return ClearedBuilds(deleted_count=cleared.deleted)


ARTIFACT_RESPONSES = {200: {"content": {media: {} for media in ARTIFACT_MEDIA_TYPES.values()},
                            "description": "an artifact"},
                      206: {"description": "a range of it"}, **errors(416)}


@router.head("/build/{hash}/{path:path}", response_class=FileResponse, response_model=None,
             responses=ARTIFACT_RESPONSES, operation_id="head_build_artifact")
@router.get("/build/{hash}/{path:path}", response_class=FileResponse, response_model=None,
            responses=ARTIFACT_RESPONSES, operation_id="get_build_artifact")
def build_artifact(access: ReadableDataset, session: SessionDep, settings: SettingsDep,
                   sha256: Annotated[str, Path(alias="hash", pattern=r"^[0-9a-f]{64}$")],
                   path: Annotated[str, Path(max_length=MAX_PATH_LENGTH)]) -> FileResponse:
    """An artifact of a build of this dataset's content ``hash`` (``Range`` supported)."""
    owned = session.exec(select(Entry.id).where(Entry.dataset_id == access.dataset.id, Entry.sha256 == sha256)
                         .limit(1)).first()
    if owned is None:
        raise NotFound(f"no build {sha256[:16]}… in this dataset", code="build_not_found")
    target = artifact_file(settings, sha256, normalize_entry_path(path))
    if not target.is_file():
        raise NotFound(f"build {sha256[:16]}… has no {path!r} (not built yet?)", code="artifact_not_found")
    media_type = next((media for suffix, media in ARTIFACT_MEDIA_TYPES.items() if target.name.endswith(suffix)),
                      "application/octet-stream")
    return file_response(target, filename=PurePosixPath(target.name).name, media_type=media_type)
