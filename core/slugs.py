"""Validation of slugs and user names."""

from __future__ import annotations

import re

from georeg.core.errors import InvalidInput

SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9_-]{0,126}[a-z0-9])?$"
ROLE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_SLUG = re.compile(SLUG_PATTERN)
_ROLE = re.compile(ROLE_PATTERN)


def validate_slug(value: str, *, what: str = "slug") -> str:
    """Lowercase letters, digits, '-' and '_' (not at the ends), 1..128 characters."""
    if not isinstance(value, str) or not _SLUG.fullmatch(value):
        raise InvalidInput(
            f"invalid {what} {value!r}: use lowercase letters, digits, '-' and '_' (1-128 characters)",
            code=f"invalid_{what.replace(' ', '_')}",
        )
    return value


def validate_role_name(value: str) -> str:
    if not _ROLE.fullmatch(value or ""):
        raise InvalidInput(f"invalid role name {value!r}", code="invalid_role")
    return value
