"""``/users``: authentication, user management, roles, storage and organizations."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Response, status

from georeg.api.deps import (
    ActorDep,
    AdminUser,
    CurrentUser,
    PageDep,
    RoleName,
    SecretKeyDep,
    SessionDep,
    SettingsDep,
    TokenDep,
    UserName,
)
from georeg.api.schemas import COMMON_ERRORS, errors
from georeg.core.registry import accounts
from georeg.core.registry.schemas import (
    AdminPasswordChange,
    Credentials,
    OrgMembership,
    PasswordChange,
    RefreshRequest,
    RolePublic,
    Slug,
    StorageInfo,
    TokenPublic,
    UserCreate,
    UserDetailedPage,
    UserOrg,
    UserPage,
    UserPublic,
    UserUpdate,
)

router = APIRouter(prefix="/users", tags=["users"], responses={**COMMON_ERRORS, **errors(401)})


@router.post("/authenticate", responses=errors(429))
def authenticate(credentials: Credentials, session: SessionDep, settings: SettingsDep,
                 secret: SecretKeyDep) -> TokenPublic:
    """Log in; 5 failures (configurable) lock the account for 15 minutes (429 ``account_locked``)."""
    return accounts.log_in(session, settings=settings, secret=secret, username=credentials.user_name,
                           password=credentials.password)


@router.post("/authenticate/refresh")
def refresh(session: SessionDep, settings: SettingsDep, secret: SecretKeyDep, token: TokenDep,
            body: Annotated[RefreshRequest | None, Body()] = None) -> TokenPublic:
    """New tokens from a refresh token (body ``refreshToken``) or a still-valid access token (Bearer)."""
    return accounts.refresh_tokens(session, settings=settings, secret=secret,
                                   refresh_token=body.refresh_token if body else None, access_token=token)


@router.get("", responses=errors(403))
def list_users(session: SessionDep, _: AdminUser, page: PageDep) -> UserPage:
    return accounts.list_users(session, skip=page.skip, take=page.take)


@router.get("/detailed", responses=errors(403))
def list_users_detailed(session: SessionDep, _: AdminUser, page: PageDep) -> UserDetailedPage:
    return accounts.list_users_detailed(session, skip=page.skip, take=page.take)


@router.post("", status_code=status.HTTP_201_CREATED, responses=errors(403, 409))
def create_user(body: UserCreate, session: SessionDep, _: AdminUser, settings: SettingsDep) -> UserPublic:
    return accounts.create_user(session, body, storage_quota=settings.default_user_storage_bytes)


@router.get("/roles")
def list_roles(session: SessionDep, _: CurrentUser) -> list[str]:
    return accounts.list_roles(session)


@router.post("/roles/{roleName}", status_code=status.HTTP_201_CREATED, responses=errors(403, 409))
def create_role(role_name: RoleName, session: SessionDep, _: AdminUser) -> RolePublic:
    return accounts.create_role(session, name=role_name)


@router.delete("/roles/{roleName}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(403, 404))
def delete_role(role_name: RoleName, session: SessionDep, _: AdminUser) -> Response:
    accounts.delete_role(session, name=role_name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/changepwd", status_code=status.HTTP_204_NO_CONTENT)
def change_own_password(body: PasswordChange, session: SessionDep, user: CurrentUser) -> Response:
    accounts.change_own_password(session, user=user, old_password=body.old_password, new_password=body.new_password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/storage")
def own_storage(session: SessionDep, user: CurrentUser) -> StorageInfo:
    return accounts.storage_info(session, user=user)


@router.put("/{userName}", responses=errors(403, 404, 409))
def update_user(user_name: UserName, body: UserUpdate, session: SessionDep, _: AdminUser) -> UserPublic:
    return accounts.update_user(session, username=user_name, update=body)


@router.delete("/{userName}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(403, 404))
def delete_user(user_name: UserName, session: SessionDep, admin: AdminUser, settings: SettingsDep) -> Response:
    accounts.delete_user(session, settings=settings, username=user_name, by=admin)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put("/{userName}/changepwd", status_code=status.HTTP_204_NO_CONTENT, responses=errors(403, 404))
def admin_change_password(user_name: UserName, body: AdminPasswordChange, session: SessionDep,
                          _: AdminUser) -> Response:
    accounts.set_password(session, username=user_name, new_password=body.new_password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{userName}/storage", responses=errors(403, 404))
def user_storage(user_name: UserName, session: SessionDep, _: AdminUser) -> StorageInfo:
    return accounts.storage_info(session, username=user_name)


@router.get("/{userName}/meta", responses=errors(403, 404))
def get_user_meta(user_name: UserName, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """The user's metadata (the user itself or an administrator)."""
    return accounts.user_meta(session, actor=actor, username=user_name)


@router.post("/{userName}/meta", responses=errors(403, 404))
def set_user_meta(user_name: UserName, body: dict[str, Any], session: SessionDep, _: AdminUser) -> dict[str, Any]:
    return accounts.set_user_meta(session, username=user_name, meta=body)


@router.get("/{userName}/orgs", responses=errors(403, 404))
def get_user_orgs(user_name: UserName, session: SessionDep, actor: ActorDep) -> list[UserOrg]:
    """The organizations the user owns or belongs to (the user itself or an administrator)."""
    return accounts.user_orgs(session, actor=actor, username=user_name)


@router.put("/{userName}/orgs", responses=errors(403, 404))
def set_user_orgs(user_name: UserName, body: list[OrgMembership | Slug], session: SessionDep,
                  _: AdminUser) -> list[OrgMembership]:
    """Replace the user's memberships: a list of org slugs or ``{"slug", "permission"}`` objects."""
    memberships = [OrgMembership(slug=item) if isinstance(item, str) else item for item in body]
    return accounts.set_user_orgs(session, username=user_name, memberships=memberships)
