"""Password hashing (argon2 via passlib) and JWT access/refresh tokens (python-jose, HS256)."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache

from jose import JWTError, jwt
from passlib.context import CryptContext
from pydantic import BaseModel

from georeg.core.errors import AuthenticationRequired
from georeg.core.timeutil import utcnow

ALGORITHM = "HS256"
ACCESS = "access"
REFRESH = "refresh"


_COST = {"memory_kib": 65536, "time_cost": 3}


def set_hashing_cost(*, memory_kib: int, time_cost: int) -> None:
    """Argon2 cost for new hashes (existing hashes carry their own parameters and keep verifying)."""
    _COST.update(memory_kib=memory_kib, time_cost=time_cost)


def _context() -> CryptContext:
    return _cached_context(_COST["memory_kib"], _COST["time_cost"])


@lru_cache(maxsize=4)
def _cached_context(memory_kib: int, time_cost: int) -> CryptContext:
    return CryptContext(
        schemes=["argon2"], deprecated="auto", argon2__memory_cost=memory_kib, argon2__rounds=time_cost
    )


def hash_password(password: str) -> str:
    return _context().hash(password)


def verify_password(password: str, password_hash: str) -> bool:
    try:
        return _context().verify(password, password_hash)
    except (ValueError, TypeError):
        return False


class TokenClaims(BaseModel):
    username: str
    kind: str
    expires: datetime


def issue_token(*, username: str, kind: str, secret: str, lifetime: timedelta) -> tuple[str, datetime]:
    """A signed token for ``username`` and its expiry."""
    expires = utcnow() + lifetime
    payload = {"sub": username, "typ": kind, "exp": int(expires.timestamp()), "iat": int(utcnow().timestamp())}
    return jwt.encode(payload, secret, algorithm=ALGORITHM), expires


def decode_token(token: str, *, secret: str, kind: str) -> TokenClaims:
    """Verify signature, expiry and kind; raise :class:`AuthenticationRequired` otherwise."""
    try:
        payload = jwt.decode(token, secret, algorithms=[ALGORITHM])
    except JWTError as exc:
        raise AuthenticationRequired(f"invalid or expired token: {exc}", code="invalid_token") from exc
    if payload.get("typ") != kind or not isinstance(payload.get("sub"), str):
        raise AuthenticationRequired(f"token is not a valid {kind} token", code="invalid_token")
    return TokenClaims(
        username=payload["sub"], kind=kind, expires=datetime.fromtimestamp(payload["exp"], tz=utcnow().tzinfo)
    )
