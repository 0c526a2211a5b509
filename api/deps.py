"""FastAPI dependencies as ``Annotated`` types."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy.engine import Engine
from sqlmodel import Session

from georeg.core.config import Settings
from georeg.core.errors import AuthenticationRequired
from georeg.core.models import User
from georeg.core.registry import users as user_repo
from georeg.core.registry.access import ANONYMOUS, Actor, require_admin, require_user
from georeg.core.security import ACCESS, decode_token
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
TokenDep = Annotated[str | None, Depends(bearer_token)]


def get_actor(request: Request, session: SessionDep, token: TokenDep) -> Actor:
    """The caller; anonymous without a token, 401 for an invalid or expired one."""
    if token is None:
        return ANONYMOUS
    claims = decode_token(token, secret=request.app.state.secret_key, kind=ACCESS)
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


class Page:
    """``skip``/``take`` pagination (bounded)."""

    def __init__(
        self,
        skip: Annotated[int, Query(ge=0, description="items to skip")] = 0,
        take: Annotated[int, Query(ge=1, le=1000, description="page size")] = 100,
    ) -> None:
        self.skip = skip
        self.take = take

    def envelope(self, items: list, total: int) -> dict:
        return {"items": items, "total": total, "skip": self.skip, "take": self.take}


PageDep = Annotated[Page, Depends()]
