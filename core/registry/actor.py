"""The caller of an operation: a user (or nobody) and whether it holds the admin role."""

from __future__ import annotations

from dataclasses import dataclass

from georeg.core.errors import AuthenticationRequired, PermissionDenied
from georeg.core.models import User


@dataclass(frozen=True)
class Actor:
    """The caller: a user (or ``None`` when anonymous) and whether it holds the admin role."""

    user: User | None
    is_admin: bool = False

    @property
    def anonymous(self) -> bool:
        return self.user is None

    @property
    def username(self) -> str | None:
        return self.user.username if self.user else None


ANONYMOUS = Actor(user=None)


def require_user(actor: Actor) -> User:
    if actor.user is None:
        raise AuthenticationRequired("authentication required")
    return actor.user


def require_admin(actor: Actor) -> User:
    user = require_user(actor)
    if not actor.is_admin:
        raise PermissionDenied("administrator role required", code="admin_required")
    return user
