"""Password hashing and tokens."""

from __future__ import annotations

from datetime import timedelta

import pytest

from georeg.core.errors import AuthenticationRequired
from georeg.core.security import ACCESS, REFRESH, decode_token, hash_password, issue_token, verify_password


def test_argon2_hash_round_trip():
    hashed = hash_password("s3cret")
    assert hashed.startswith("$argon2")
    assert verify_password("s3cret", hashed)
    assert not verify_password("wrong", hashed)
    assert not verify_password("s3cret", "not-a-hash")


def test_token_round_trip_and_kind():
    token, _ = issue_token(username="ann", kind=ACCESS, secret="k", lifetime=timedelta(minutes=5))
    assert decode_token(token, secret="k", kind=ACCESS).username == "ann"
    with pytest.raises(AuthenticationRequired):
        decode_token(token, secret="k", kind=REFRESH)
    with pytest.raises(AuthenticationRequired):
        decode_token(token, secret="other", kind=ACCESS)


def test_expired_token_is_rejected():
    token, _ = issue_token(username="ann", kind=ACCESS, secret="k", lifetime=timedelta(seconds=-5))
    with pytest.raises(AuthenticationRequired):
        decode_token(token, secret="k", kind=ACCESS)
