"""``/users``: authentication, user management, roles, storage and organizations."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Body, Request, Response, status
from sqlmodel import Session

from georeg.api.deps import ActorDep, AdminUser, CurrentUser, PageDep, SessionDep, SettingsDep, TokenDep
from georeg.core.errors import AuthenticationRequired, InvalidCredentials, InvalidInput, PermissionDenied
from georeg.core.models import (
    AdminPasswordChange,
    CamelModel,
    Credentials,
    PasswordChange,
    Permission,
    TokenPublic,
    User,
    UserCreate,
    UserDetailed,
    UserPublic,
    UserUpdate,
)
from georeg.core.registry import orgs as org_repo
from georeg.core.registry import users as user_repo
from georeg.core.registry.access import Actor, org_permission, require_user
from georeg.core.registry.objects import remove_org_files
from georeg.core.security import ACCESS, REFRESH, decode_token, issue_token, verify_password

router = APIRouter(prefix="/users", tags=["users"])


class RefreshRequest(CamelModel):
    refresh_token: str | None = None


class OrgMembership(CamelModel):
    slug: str
    permission: Permission = Permission.read


class StorageInfo(CamelModel):
    total: int | None
    used: int


def _public(session: Session, user: User) -> UserPublic:
    return UserPublic(user_name=user.username, email=user.email, roles=user_repo.user_roles(session, user=user))


def _tokens(request: Request, session: Session, user: User) -> TokenPublic:
    settings = request.app.state.settings
    secret = request.app.state.secret_key
    token, expires = issue_token(
        username=user.username, kind=ACCESS, secret=secret, lifetime=timedelta(minutes=settings.access_token_minutes)
    )
    refresh, _ = issue_token(
        username=user.username, kind=REFRESH, secret=secret, lifetime=timedelta(days=settings.refresh_token_days)
    )
    return TokenPublic(
        token=token, expires=expires, refresh_token=refresh, username=user.username, email=user.email,
        roles=user_repo.user_roles(session, user=user),
    )


@router.post("/authenticate", response_model=TokenPublic)
def authenticate(request: Request, credentials: Credentials, session: SessionDep, settings: SettingsDep) -> TokenPublic:
    """Log in; 5 failures (configurable) lock the account for 15 minutes (429 ``account_locked``)."""
    user = user_repo.authenticate(
        session,
        username=credentials.user_name,
        password=credentials.password,
        max_attempts=settings.lockout_attempts,
        lockout=timedelta(minutes=settings.lockout_minutes),
    )
    session.commit()
    return _tokens(request, session, user)


@router.post("/authenticate/refresh", response_model=TokenPublic)
def refresh(
    request: Request, session: SessionDep, token: TokenDep, body: Annotated[RefreshRequest | None, Body()] = None
) -> TokenPublic:
    """New tokens from a refresh token (body ``refreshToken``) or a still-valid access token (Bearer)."""
    secret = request.app.state.secret_key
    if body is not None and body.refresh_token:
        claims = decode_token(body.refresh_token, secret=secret, kind=REFRESH)
    elif token:
        claims = decode_token(token, secret=secret, kind=ACCESS)
    else:
        raise AuthenticationRequired("a refresh token or a Bearer access token is required")
    user = user_repo.find_user(session, username=claims.username)
    if user is None:
        raise AuthenticationRequired("token user no longer exists", code="invalid_token")
    return _tokens(request, session, user)


@router.get("")
def list_users(session: SessionDep, _: AdminUser, page: PageDep) -> dict:
    users, total = user_repo.list_users(session, skip=page.skip, take=page.take)
    return page.envelope([_public(session, u).model_dump(by_alias=True) for u in users], total)


@router.get("/detailed")
def list_users_detailed(session: SessionDep, _: AdminUser, page: PageDep) -> dict:
    users, total = user_repo.list_users(session, skip=page.skip, take=page.take)
    items = [
        UserDetailed(
            user_name=u.username, email=u.email, roles=user_repo.user_roles(session, user=u),
            organizations=user_repo.user_org_slugs(session, user=u), storage_quota=u.storage_quota,
            storage_used=user_repo.storage_used(session, user=u), failed_logins=u.failed_logins,
            locked_until=u.locked_until, created_at=u.created_at,
        ).model_dump(by_alias=True, mode="json")
        for u in users
    ]
    return page.envelope(items, total)


@router.post("", response_model=UserPublic, status_code=status.HTTP_201_CREATED)
def create_user(body: UserCreate, session: SessionDep, _: AdminUser, settings: SettingsDep) -> UserPublic:
    user = user_repo.create_user(
        session, username=body.user_name, password=body.password, email=body.email, roles=body.roles,
        storage_quota=settings.default_user_storage_bytes,
    )
    session.commit()
    return _public(session, user)


@router.get("/roles")
def list_roles(session: SessionDep, _: CurrentUser) -> list[str]:
    return user_repo.list_roles(session)


@router.post("/roles/{roleName}", status_code=status.HTTP_201_CREATED)
def create_role(roleName: str, session: SessionDep, _: AdminUser) -> dict:  # noqa: N803
    role = user_repo.create_role(session, name=roleName)
    session.commit()
    return {"name": role.name}


@router.delete("/roles/{roleName}", status_code=status.HTTP_204_NO_CONTENT)
def delete_role(roleName: str, session: SessionDep, _: AdminUser) -> Response:  # noqa: N803
    user_repo.delete_role(session, name=roleName)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/changepwd", status_code=status.HTTP_204_NO_CONTENT)
def change_own_password(body: PasswordChange, session: SessionDep, user: CurrentUser) -> Response:
    if not verify_password(body.old_password, user.password_hash):
        raise InvalidCredentials("current password is wrong", code="wrong_password")
    if body.old_password == body.new_password:
        raise InvalidInput("the new password must differ from the current one", code="same_password")
    user_repo.change_password(session, user=user, new_password=body.new_password)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/storage", response_model=StorageInfo)
def own_storage(session: SessionDep, user: CurrentUser) -> StorageInfo:
    return StorageInfo(total=user.storage_quota, used=user_repo.storage_used(session, user=user))


@router.put("/{userName}", response_model=UserPublic)
def update_user(userName: str, body: UserUpdate, session: SessionDep, _: AdminUser) -> UserPublic:  # noqa: N803
    user = user_repo.get_user(session, username=userName)
    if body.email is not None:
        user.email = body.email
    if "storage_quota" in body.model_fields_set:
        user.storage_quota = body.storage_quota
    if body.roles is not None:
        user_repo.set_user_roles(session, user=user, roles=body.roles)
    session.add(user)
    session.commit()
    return _public(session, user)


@router.delete("/{userName}", status_code=status.HTTP_204_NO_CONTENT)
def delete_user(
    userName: str, session: SessionDep, admin: AdminUser, settings: SettingsDep  # noqa: N803
) -> Response:
    user = user_repo.get_user(session, username=userName)
    if user.id == admin.id:
        raise InvalidInput("administrators cannot delete themselves", code="self_delete")
    removed_orgs = user_repo.delete_user(session, user=user)
    session.commit()
    for slug in removed_orgs:
        remove_org_files(settings, org_slug=slug)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put("/{userName}/changepwd", status_code=status.HTTP_204_NO_CONTENT)
def admin_change_password(
    userName: str, body: AdminPasswordChange, session: SessionDep, _: AdminUser  # noqa: N803
) -> Response:
    user = user_repo.get_user(session, username=userName)
    user_repo.change_password(session, user=user, new_password=body.new_password)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{userName}/storage", response_model=StorageInfo)
def user_storage(userName: str, session: SessionDep, _: AdminUser) -> StorageInfo:  # noqa: N803
    user = user_repo.get_user(session, username=userName)
    return StorageInfo(total=user.storage_quota, used=user_repo.storage_used(session, user=user))


@router.get("/{userName}/meta")
def get_user_meta(userName: str, session: SessionDep, actor: ActorDep) -> dict:  # noqa: N803
    _self_or_admin(actor, userName)
    return user_repo.get_user(session, username=userName).meta


@router.post("/{userName}/meta")
def set_user_meta(userName: str, body: dict, session: SessionDep, _: AdminUser) -> dict:  # noqa: N803
    user = user_repo.get_user(session, username=userName)
    user.meta = body
    session.add(user)
    session.commit()
    return user.meta


@router.get("/{userName}/orgs")
def get_user_orgs(userName: str, session: SessionDep, actor: ActorDep) -> list[dict]:  # noqa: N803
    _self_or_admin(actor, userName)
    user = user_repo.get_user(session, username=userName)
    result = []
    for slug in user_repo.user_org_slugs(session, user=user):
        org = org_repo.get_org(session, slug=slug)
        permission = org_permission(session, org=org, actor=Actor(user=user))
        result.append({"slug": org.slug, "name": org.name, "permission": permission.value if permission else None})
    return result


@router.put("/{userName}/orgs")
def set_user_orgs(
    userName: str, body: list[OrgMembership | str], session: SessionDep, _: AdminUser  # noqa: N803
) -> list[dict]:
    """Replace the user's memberships: a list of org slugs or ``{"slug", "permission"}`` objects."""
    user = user_repo.get_user(session, username=userName)
    memberships = {}
    for item in body:
        membership = OrgMembership(slug=item) if isinstance(item, str) else item
        memberships[membership.slug] = membership.permission
    org_repo.set_user_orgs(session, user=user, memberships=memberships)
    session.commit()
    return [{"slug": slug, "permission": perm.value} for slug, perm in memberships.items()]


def _self_or_admin(actor: ActorDep, username: str) -> None:
    user = require_user(actor)
    if user.username != username and not actor.is_admin:
        raise PermissionDenied("only the user or an administrator may read this")
