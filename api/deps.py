"""FastAPI dependencies as ``Annotated`` types: what the lifespan owns (settings, engine, clients, caches), the
caller, the datasets it may use, and the path and paging parameters every route shares.

This is the one module that reads ``request.app.state``; routes ask for what they need by type."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

import httpx
from fastapi import Depends, Path, Query, Request
from sqlalchemy.engine import Engine
from sqlmodel import Session

from georeg.api.prefect_client import PrefectClient
from georeg.api.tasks.service import TaskService
from georeg.api.tasks.submitter import TaskSubmitter
from georeg.core.config import Settings
from georeg.core.errors import AuthenticationRequired
from georeg.core.models import Organization, Permission, User
from georeg.core.paging import MAX_OFFSET
from georeg.core.rasters.thumbnails import ThumbnailCache
from georeg.core.registry import users as user_repo
from georeg.core.registry.access import DatasetAccess, load_dataset, load_org
from georeg.core.registry.actor import ANONYMOUS, Actor, require_admin, require_user
from georeg.core.security import ACCESS, decode_token
from georeg.core.slugs import ROLE_PATTERN, SLUG_PATTERN
from georeg.core.tasks.model import ToolRegistry


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_engine(request: Request) -> Engine:
    return request.app.state.engine


def get_session(engine: Annotated[Engine, Depends(get_engine)]) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session


def get_tools(request: Request) -> ToolRegistry:
    return request.app.state.tools


def get_prefect(request: Request) -> PrefectClient:
    return request.app.state.prefect


def get_submitter(request: Request) -> TaskSubmitter:
    return request.app.state.submitter


def get_thumbnails(request: Request) -> ThumbnailCache:
    return request.app.state.thumbnails


def get_upstream(request: Request) -> httpx.Client:
    """The HTTP client for outside services (CSW catalogues)."""
    return request.app.state.upstream


def get_secret_key(request: Request) -> str:
    return request.app.state.secret_key


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationRequired("Authorization header must be 'Bearer <token>'", code="invalid_token")
    return token.strip()


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
SessionDep = Annotated[Session, Depends(get_session)]
ToolsDep = Annotated[ToolRegistry, Depends(get_tools)]
PrefectDep = Annotated[PrefectClient, Depends(get_prefect)]
SubmitterDep = Annotated[TaskSubmitter, Depends(get_submitter)]
ThumbnailsDep = Annotated[ThumbnailCache, Depends(get_thumbnails)]
UpstreamDep = Annotated[httpx.Client, Depends(get_upstream)]
SecretKeyDep = Annotated[str, Depends(get_secret_key)]
TokenDep = Annotated[str | None, Depends(bearer_token)]


def get_actor(session: SessionDep, token: TokenDep, secret: SecretKeyDep) -> Actor:
    """The caller; anonymous without a token, 401 for an invalid or expired one."""
    if token is None:
        return ANONYMOUS
    claims = decode_token(token, secret=secret, kind=ACCESS)
    user = user_repo.find_user(session, username=claims.username)
    if user is None:
        raise AuthenticationRequired("token user no longer exists", code="invalid_token")
    return Actor(user=user, is_admin=user_repo.is_admin(session, user=user))


ActorDep = Annotated[Actor, Depends(get_actor)]


def get_current_user(actor: ActorDep) -> User:
    return require_user(actor)


def get_admin(actor: ActorDep) -> User:
    return require_admin(actor)


CurrentUser = Annotated[User, Depends(get_current_user)]
AdminUser = Annotated[User, Depends(get_admin)]


def get_task_service(engine: EngineDep, settings: SettingsDep, prefect: PrefectDep, tools: ToolsDep,
                     submitter: SubmitterDep) -> Iterator[TaskService]:
    """The task service of one request; its database session closes when the request ends."""
    service = TaskService(engine=engine, settings=settings, prefect=prefect, tools=tools, submitter=submitter)
    try:
        yield service
    finally:
        service.close()


TaskServiceDep = Annotated[TaskService, Depends(get_task_service)]

# --- path parameters: camelCase in the URL (DroneDB's), snake_case in Python -----------------------------------

# the patterns document what exists: a name that does not match one is simply not found (404)
OrgSlug = Annotated[str, Path(alias="orgSlug", max_length=128, description="organization slug",
                              json_schema_extra={"pattern": SLUG_PATTERN})]
DsSlug = Annotated[str, Path(alias="dsSlug", max_length=128, description="dataset slug",
                             json_schema_extra={"pattern": SLUG_PATTERN})]
UserName = Annotated[str, Path(alias="userName", max_length=128, description="user name",
                               json_schema_extra={"pattern": SLUG_PATTERN})]
RoleName = Annotated[str, Path(alias="roleName", max_length=64, description="role name",
                               json_schema_extra={"pattern": ROLE_PATTERN})]
TaskId = Annotated[str, Path(alias="taskId", min_length=1, max_length=64, description="task id")]
RasterId = Annotated[str, Path(min_length=1, max_length=64, description="a registered raster's dataset_id")]


# --- organizations and datasets the caller may use ---------------------------------------------------------------


def _org_with(need: Permission) -> object:
    def load(org_slug: OrgSlug, session: SessionDep, actor: ActorDep) -> Organization:
        return load_org(session, actor=actor, slug=org_slug, need=need)

    return Depends(load)


def _dataset_with(need: Permission) -> object:
    def load(org_slug: OrgSlug, ds_slug: DsSlug, session: SessionDep, actor: ActorDep) -> DatasetAccess:
        return load_dataset(session, actor=actor, org_slug=org_slug, ds_slug=ds_slug, need=need)

    return Depends(load)


ReadableOrg = Annotated[Organization, _org_with(Permission.read)]
AdministeredOrg = Annotated[Organization, _org_with(Permission.admin)]
WritableOrg = Annotated[Organization, _org_with(Permission.write)]
ReadableDataset = Annotated[DatasetAccess, _dataset_with(Permission.read)]
WritableDataset = Annotated[DatasetAccess, _dataset_with(Permission.write)]
AdministeredDataset = Annotated[DatasetAccess, _dataset_with(Permission.admin)]


# --- paging ------------------------------------------------------------------------------------------------------


class Page:
    """``skip``/``take`` pagination of the Registry API (bounded: too large is 422, never a database error)."""

    def __init__(
        self,
        skip: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="items to skip")] = 0,
        take: Annotated[int, Query(ge=1, le=1000, description="page size")] = 100,
    ) -> None:
        self.skip = skip
        self.take = take


PageDep = Annotated[Page, Depends()]
