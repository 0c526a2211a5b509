"""Users, roles and authentication (with lockout)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func
from sqlmodel import Session, delete, select

from georeg.core.errors import AccountLocked, Conflict, InvalidCredentials, InvalidInput, NotFound
from georeg.core.models import ADMIN_ROLE, Dataset, Entry, Organization, OrgMember, Role, User, UserRoleLink
from georeg.core.security import hash_password, verify_password
from georeg.core.slugs import validate_role_name, validate_slug
from georeg.core.timeutil import as_utc, utcnow

BUILTIN_ROLES = (ADMIN_ROLE,)
_DUMMY_HASH = None


def get_user(session: Session, *, username: str) -> User:
    user = session.exec(select(User).where(User.username == username)).first()
    if user is None:
        raise NotFound(f"user {username!r} not found", code="user_not_found")
    return user


def find_user(session: Session, *, username: str) -> User | None:
    return session.exec(select(User).where(User.username == username)).first()


def user_roles(session: Session, *, user: User) -> list[str]:
    rows = session.exec(select(UserRoleLink.role_name).where(UserRoleLink.user_id == user.id)).all()
    return sorted(rows)


def is_admin(session: Session, *, user: User | None) -> bool:
    if user is None:
        return False
    link = session.get(UserRoleLink, (user.id, ADMIN_ROLE))
    return link is not None


def list_roles(session: Session) -> list[str]:
    return sorted(session.exec(select(Role.name)).all())


def ensure_builtin_roles(session: Session) -> None:
    for name in BUILTIN_ROLES:
        if session.get(Role, name) is None:
            session.add(Role(name=name))
    session.flush()


def create_role(session: Session, *, name: str) -> Role:
    validate_role_name(name)
    if session.get(Role, name) is not None:
        raise Conflict(f"role {name!r} already exists", code="role_exists")
    role = Role(name=name)
    session.add(role)
    session.flush()
    return role


def delete_role(session: Session, *, name: str) -> None:
    if name in BUILTIN_ROLES:
        raise InvalidInput(f"role {name!r} is built in and cannot be deleted", code="builtin_role")
    role = session.get(Role, name)
    if role is None:
        raise NotFound(f"role {name!r} not found", code="role_not_found")
    session.exec(delete(UserRoleLink).where(UserRoleLink.role_name == name))
    session.delete(role)
    session.flush()


def _admin_count(session: Session) -> int:
    return session.exec(select(func.count()).where(UserRoleLink.role_name == ADMIN_ROLE)).one()


def set_user_roles(session: Session, *, user: User, roles: list[str]) -> None:
    known = set(list_roles(session))
    unknown = sorted(set(roles) - known)
    if unknown:
        raise InvalidInput(f"unknown roles: {', '.join(unknown)}", code="unknown_role")
    if ADMIN_ROLE not in roles and is_admin(session, user=user) and _admin_count(session) == 1:
        raise Conflict(f"{user.username!r} is the last administrator and keeps the {ADMIN_ROLE!r} role; make another "
                       "user an administrator first", code="last_admin")
    session.exec(delete(UserRoleLink).where(UserRoleLink.user_id == user.id))
    for name in sorted(set(roles)):
        session.add(UserRoleLink(user_id=user.id, role_name=name))
    session.flush()


def create_user(
    session: Session,
    *,
    username: str,
    password: str,
    email: str = "",
    roles: list[str] | None = None,
    storage_quota: int | None = None,
) -> User:
    """Create a user and its personal organization (slug = user name), as DroneDB does."""
    validate_slug(username, what="user name")
    if find_user(session, username=username) is not None:
        raise Conflict(f"user {username!r} already exists", code="user_exists")
    if session.exec(select(Organization).where(Organization.slug == username)).first() is not None:
        raise Conflict(f"an organization named {username!r} already exists", code="org_exists")
    user = User(username=username, email=email, password_hash=hash_password(password), storage_quota=storage_quota)
    session.add(user)
    session.flush()
    set_user_roles(session, user=user, roles=roles or [])
    session.add(Organization(slug=username, name=username, owner_id=user.id, is_public=False))
    session.flush()
    return user


def list_users(session: Session, *, skip: int = 0, take: int = 100) -> tuple[list[User], int]:
    total = session.exec(select(func.count()).select_from(User)).one()
    users = session.exec(select(User).order_by(User.username).offset(skip).limit(take)).all()
    return list(users), total


def delete_user(session: Session, *, user: User) -> list[str]:
    """Delete a user and the organizations it owns; returns the deleted organization slugs."""
    owned = session.exec(select(Organization).where(Organization.owner_id == user.id)).all()
    slugs = [org.slug for org in owned]
    for org in owned:
        session.delete(org)
    session.delete(user)
    session.flush()
    return slugs


def change_password(session: Session, *, user: User, new_password: str) -> None:
    user.password_hash = hash_password(new_password)
    user.failed_logins = 0
    user.locked_until = None
    session.add(user)
    session.flush()


def authenticate(
    session: Session, *, username: str, password: str, max_attempts: int, lockout: timedelta
) -> User:
    """Check credentials; after ``max_attempts`` failures the account is locked for ``lockout``.

    Failed attempts are committed even though the call raises.
    """
    user = find_user(session, username=username)
    if user is None:
        verify_password(password, _dummy_hash())
        raise InvalidCredentials("invalid user name or password")
    now = utcnow()
    locked_until = as_utc(user.locked_until)
    if locked_until and locked_until > now:
        raise AccountLocked(
            f"account locked after repeated failed logins; retry after {locked_until.isoformat()}",
            details={"retryAfter": int((locked_until - now).total_seconds()) + 1},
        )
    if not verify_password(password, user.password_hash):
        user.failed_logins += 1
        if user.failed_logins >= max_attempts:
            user.locked_until = now + lockout
            user.failed_logins = 0
        session.add(user)
        session.commit()
        raise InvalidCredentials("invalid user name or password")
    if user.failed_logins or user.locked_until:
        user.failed_logins = 0
        user.locked_until = None
        session.add(user)
        session.flush()
    return user


def storage_used(session: Session, *, user: User) -> int:
    """Bytes stored in datasets of the organizations ``user`` owns."""
    total = session.exec(
        select(func.coalesce(func.sum(Entry.size), 0))
        .join(Dataset, Dataset.id == Entry.dataset_id)
        .join(Organization, Organization.id == Dataset.org_id)
        .where(Organization.owner_id == user.id)
    ).one()
    return int(total or 0)


def user_org_slugs(session: Session, *, user: User) -> list[str]:
    owned = session.exec(select(Organization.slug).where(Organization.owner_id == user.id)).all()
    member = session.exec(
        select(Organization.slug)
        .join(OrgMember, OrgMember.org_id == Organization.id)
        .where(OrgMember.user_id == user.id)
    ).all()
    return sorted(set(owned) | set(member))


def _dummy_hash() -> str:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password("georeg-timing-equalizer")
    return _DUMMY_HASH
