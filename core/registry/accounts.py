"""Accounts: logging in (tokens, lockout), users and their roles, passwords, storage, metadata and memberships
(the ``/users`` routes' work)."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session

from georeg.core.config import Settings
from georeg.core.errors import AuthenticationRequired, InvalidCredentials, InvalidInput, PermissionDenied
from georeg.core.models import Permission, User
from georeg.core.registry import orgs as org_repo
from georeg.core.registry import users as user_repo
from georeg.core.registry.access import org_permission
from georeg.core.registry.actor import Actor, require_user
from georeg.core.registry.objects import remove_org_files
from georeg.core.registry.schemas import (
    OrgMembership,
    RolePublic,
    StorageInfo,
    TokenPublic,
    UserCreate,
    UserDetailed,
    UserDetailedPage,
    UserOrg,
    UserPage,
    UserPublic,
    UserUpdate,
)
from georeg.core.security import ACCESS, REFRESH, decode_token, issue_token, verify_password


def user_public(session: Session, user: User) -> UserPublic:
    return UserPublic(user_name=user.username, email=user.email, roles=user_repo.user_roles(session, user=user))


def issue_tokens(session: Session, *, settings: Settings, secret: str, user: User) -> TokenPublic:
    """A new access token and refresh token for ``user``."""
    token, expires = issue_token(username=user.username, kind=ACCESS, secret=secret,
                                 lifetime=timedelta(minutes=settings.access_token_minutes))
    refresh, _ = issue_token(username=user.username, kind=REFRESH, secret=secret,
                             lifetime=timedelta(days=settings.refresh_token_days))
    return TokenPublic(token=token, expires=expires, refresh_token=refresh, username=user.username, email=user.email,
                       roles=user_repo.user_roles(session, user=user))


def log_in(session: Session, *, settings: Settings, secret: str, username: str, password: str) -> TokenPublic:
    """Tokens for valid credentials; failures count towards the lockout (429 ``account_locked``)."""
    user = user_repo.authenticate(session, username=username, password=password,
                                  max_attempts=settings.lockout_attempts,
                                  lockout=timedelta(minutes=settings.lockout_minutes))
    session.commit()
    return issue_tokens(session, settings=settings, secret=secret, user=user)


def refresh_tokens(session: Session, *, settings: Settings, secret: str, refresh_token: str | None,
                   access_token: str | None) -> TokenPublic:
    """New tokens from a refresh token, else from a still-valid access token."""
    if refresh_token:
        claims = decode_token(refresh_token, secret=secret, kind=REFRESH)
    elif access_token:
        claims = decode_token(access_token, secret=secret, kind=ACCESS)
    else:
        raise AuthenticationRequired("a refresh token or a Bearer access token is required")
    user = user_repo.find_user(session, username=claims.username)
    if user is None:
        raise AuthenticationRequired("token user no longer exists", code="invalid_token")
    return issue_tokens(session, settings=settings, secret=secret, user=user)


def list_users(session: Session, *, skip: int, take: int) -> UserPage:
    users, total = user_repo.list_users(session, skip=skip, take=take)
    return UserPage(items=[user_public(session, user) for user in users], total=total, skip=skip, take=take)


def list_users_detailed(session: Session, *, skip: int, take: int) -> UserDetailedPage:
    users, total = user_repo.list_users(session, skip=skip, take=take)
    items = [
        UserDetailed(
            user_name=user.username, email=user.email, roles=user_repo.user_roles(session, user=user),
            organizations=user_repo.user_org_slugs(session, user=user), storage_quota=user.storage_quota,
            storage_used=user_repo.storage_used(session, user=user), failed_logins=user.failed_logins,
            locked_until=user.locked_until, created_at=user.created_at,
        )
        for user in users
    ]
    return UserDetailedPage(items=items, total=total, skip=skip, take=take)


def create_user(session: Session, body: UserCreate, *, storage_quota: int | None) -> UserPublic:
    user = user_repo.create_user(session, username=body.user_name, password=body.password, email=body.email,
                                 roles=body.roles, storage_quota=storage_quota)
    session.commit()
    return user_public(session, user)


def update_user(session: Session, *, username: str, update: UserUpdate) -> UserPublic:
    user = user_repo.get_user(session, username=username)
    if update.email is not None:
        user.email = update.email
    if "storage_quota" in update.model_fields_set:
        user.storage_quota = update.storage_quota
    if update.roles is not None:
        user_repo.set_user_roles(session, user=user, roles=update.roles)
    session.add(user)
    session.commit()
    return user_public(session, user)


def delete_user(session: Session, *, settings: Settings, username: str, by: User) -> None:
    """Delete a user, the organizations it owns and their files (administrators cannot delete themselves)."""
    user = user_repo.get_user(session, username=username)
    if user.id == by.id:
        raise InvalidInput("administrators cannot delete themselves", code="self_delete")
    removed_orgs = user_repo.delete_user(session, user=user)
    session.commit()
    for slug in removed_orgs:
        remove_org_files(settings, org_slug=slug)


def list_roles(session: Session) -> list[str]:
    return user_repo.list_roles(session)


def create_role(session: Session, *, name: str) -> RolePublic:
    role = user_repo.create_role(session, name=name)
    session.commit()
    return RolePublic(name=role.name)


def delete_role(session: Session, *, name: str) -> None:
    user_repo.delete_role(session, name=name)
    session.commit()


def change_own_password(session: Session, *, user: User, old_password: str, new_password: str) -> None:
    if not verify_password(old_password, user.password_hash):
        raise InvalidCredentials("current password is wrong", code="wrong_password")
    if old_password == new_password:
        raise InvalidInput("the new password must differ from the current one", code="same_password")
    user_repo.change_password(session, user=user, new_password=new_password)
    session.commit()


def set_password(session: Session, *, username: str, new_password: str) -> None:
    user_repo.change_password(session, user=user_repo.get_user(session, username=username), new_password=new_password)
    session.commit()


def storage_info(session: Session, *, user: User | None = None, username: str | None = None) -> StorageInfo:
    """A user's quota and the bytes stored in the organizations it owns."""
    user = user or user_repo.get_user(session, username=username)
    return StorageInfo(total=user.storage_quota, used=user_repo.storage_used(session, user=user))


def _self_or_admin(actor: Actor, username: str) -> None:
    user = require_user(actor)
    if user.username != username and not actor.is_admin:
        raise PermissionDenied("only the user or an administrator may read this")


def user_meta(session: Session, *, actor: Actor, username: str) -> dict:
    _self_or_admin(actor, username)
    return user_repo.get_user(session, username=username).meta


def set_user_meta(session: Session, *, username: str, meta: dict) -> dict:
    user = user_repo.get_user(session, username=username)
    user.meta = meta
    session.add(user)
    session.commit()
    return user.meta


def user_orgs(session: Session, *, actor: Actor, username: str) -> list[UserOrg]:
    _self_or_admin(actor, username)
    user = user_repo.get_user(session, username=username)
    result = []
    for slug in user_repo.user_org_slugs(session, user=user):
        org = org_repo.get_org(session, slug=slug)
        result.append(UserOrg(slug=org.slug, name=org.name, permission=org_permission(session, org=org,
                                                                                      actor=Actor(user=user))))
    return result


def set_user_orgs(session: Session, *, username: str, memberships: list[OrgMembership]) -> list[OrgMembership]:
    """Replace the user's memberships (organizations it owns are unaffected)."""
    user = user_repo.get_user(session, username=username)
    chosen: dict[str, Permission] = {membership.slug: membership.permission for membership in memberships}
    org_repo.set_user_orgs(session, user=user, memberships=chosen)
    session.commit()
    return [OrgMembership(slug=slug, permission=permission) for slug, permission in chosen.items()]


