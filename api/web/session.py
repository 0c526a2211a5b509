"""The pages' session and CSRF protection.

- Session: the JSON API's access token (the same JWT ``POST /users/authenticate`` answers) kept in the cookie
  :data:`SESSION_COOKIE` (HttpOnly, SameSite=Strict, Path=/, Secure over https). Only page routes read it; the JSON
  API still takes ``Authorization: Bearer`` only, so the cookie cannot be used against it from another site.
- CSRF: besides SameSite=Strict, a double-submit token: a random value in the HttpOnly cookie :data:`CSRF_COOKIE`,
  written into every form (the hidden field ``csrf_token``) and into ``<meta name="csrf-token">`` for the pages'
  scripts (header ``X-CSRF-Token``). A POST whose token does not match its cookie, or whose ``Origin`` is another
  site, is refused with 403 before anything runs.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request, Response

from georeg.api.deps import SecretKeyDep, SessionDep
from georeg.core.config import Settings
from georeg.core.errors import AuthenticationRequired, PermissionDenied
from georeg.core.registry import users as user_repo
from georeg.core.registry.actor import ANONYMOUS, Actor
from georeg.core.security import ACCESS, decode_token, issue_token

SESSION_COOKIE = "georeg_session"
CSRF_COOKIE = "georeg_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SCRIPT_TOKEN_MINUTES = 15
"""Lifetime of the access tokens :func:`script_token` hands the pages' scripts for the JSON API (uploads)."""


def page_actor(request: Request, session: SessionDep, secret: SecretKeyDep) -> Actor:
    """The caller of a page, from the session cookie; anonymous without one or with an expired or invalid one (the
    response then clears it). Kept on ``request.state.actor`` for the error pages."""
    request.state.actor = ANONYMOUS
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return ANONYMOUS
    try:
        claims = decode_token(token, secret=secret, kind=ACCESS)
    except AuthenticationRequired:
        request.state.drop_session = True
        return ANONYMOUS
    user = user_repo.find_user(session, username=claims.username)
    if user is None:
        request.state.drop_session = True
        return ANONYMOUS
    actor = Actor(user=user, is_admin=user_repo.is_admin(session, user=user))
    request.state.actor = actor
    return actor


PageActor = Annotated[Actor, Depends(page_actor)]


def csrf_token(request: Request) -> str:
    """The request's CSRF token: its cookie's, else a new one (set on the response by :func:`finish`)."""
    token = getattr(request.state, "csrf", None)
    if token is None:
        token = request.cookies.get(CSRF_COOKIE) or ""
        if len(token) < 32:
            token = secrets.token_urlsafe(32)
            request.state.new_csrf = True
        request.state.csrf = token
    return token


def _is_secure(request: Request) -> bool:
    return request.url.scheme == "https"


def finish(request: Request, response: Response) -> Response:
    """Set the cookies a page response owes: a new CSRF cookie, the removal of an expired session."""
    if getattr(request.state, "new_csrf", False):
        response.set_cookie(CSRF_COOKIE, request.state.csrf, httponly=True, samesite="strict", path="/",
                            secure=_is_secure(request))
    if getattr(request.state, "drop_session", False) and not getattr(request.state, "signed_in", False):
        clear_session(request, response)
    return response


def check_same_origin(request: Request) -> None:
    """403 for a request whose ``Origin`` (sent by browsers with every POST) names another site."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    parts = urlsplit(origin)
    if (parts.scheme, parts.netloc) != (request.url.scheme, request.url.netloc):
        raise PermissionDenied("this form was sent from another site; open the page here and send it again",
                               code="csrf_failed")


def check_csrf(request: Request, submitted: str | None) -> None:
    """403 unless ``submitted`` matches the CSRF cookie (and the request comes from this site)."""
    check_same_origin(request)
    expected = request.cookies.get(CSRF_COOKIE) or ""
    if not expected or not submitted or not secrets.compare_digest(expected.encode(), submitted.encode()):
        raise PermissionDenied("this form has expired or did not come from this site; reload the page and try again",
                               code="csrf_failed")


def start_session(request: Request, response: Response, *, token: str, settings: Settings) -> None:
    """Keep the access token ``token`` in the session cookie (as long as the token lives)."""
    request.state.signed_in = True
    response.set_cookie(SESSION_COOKIE, token, max_age=settings.access_token_minutes * 60, httponly=True,
                        samesite="strict", path="/", secure=_is_secure(request))


def clear_session(request: Request, response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=_is_secure(request))


def script_token(request: Request, actor: Actor, *, secret: str) -> dict[str, str]:
    """A short-lived access token for the page's own scripts to call the JSON API (the upload box uses the share
    API): the caller must be signed in and send the page's CSRF token in ``X-CSRF-Token``."""
    check_csrf(request, request.headers.get(CSRF_HEADER))
    if actor.user is None:
        raise AuthenticationRequired("sign in first")
    token, expires = issue_token(username=actor.user.username, kind=ACCESS, secret=secret,
                                 lifetime=timedelta(minutes=SCRIPT_TOKEN_MINUTES))
    return {"token": token, "expires": expires.isoformat()}

