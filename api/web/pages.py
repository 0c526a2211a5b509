"""Pages: the home page (organizations), signing in and out, and the token the pages' scripts use."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import JSONResponse

from georeg.api.deps import SecretKeyDep, SessionDep, SettingsDep
from georeg.api.errors import status_for
from georeg.api.web.render import PageRoute, redirect, render
from georeg.api.web.session import PageActor, check_csrf, clear_session, script_token, start_session
from georeg.core.errors import AccountLocked, AuthenticationRequired, GeoregError, NotFound
from georeg.core.registry import accounts
from georeg.core.registry import orgs as org_repo

router = APIRouter(route_class=PageRoute, include_in_schema=False)

ORGS_PER_PAGE = 100


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path of this site only (never another host)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/")
def home(request: Request, session: SessionDep, actor: PageActor, skip: int = 0) -> Response:
    """The organizations the caller may see (anonymous callers: the public ones)."""
    page = org_repo.org_page(session, actor=actor, public_only=False, skip=max(skip, 0), take=ORGS_PER_PAGE)
    return render(request, "home.html", {"orgs": page.items, "total": page.total, "skip": page.skip,
                                         "take": page.take})


@router.get("/signin")
def signin_form(request: Request, _: PageActor, next: str = "/",  # noqa: A002 - the query's name
                signedout: int = 0) -> Response:
    return render(request, "signin.html", {"next": safe_next(next), "username": "", "signedout": bool(signedout)})


@router.post("/signin")
def signin(request: Request, session: SessionDep, settings: SettingsDep, secret: SecretKeyDep, _: PageActor,
           username: Annotated[str, Form(max_length=256)] = "", password: Annotated[str, Form(max_length=1024)] = "",
           csrf_token: Annotated[str, Form(max_length=256)] = "",
           next: Annotated[str, Form(max_length=2048)] = "/") -> Response:  # noqa: A002 - the form field's name
    """Check the credentials as ``POST /users/authenticate`` does (lockout included) and keep the access token in
    the session cookie."""
    check_csrf(request, csrf_token)
    target = safe_next(next)
    message = None
    status = 200
    if not username.strip() or not password:
        message, status = "Enter your user name and your password.", 400
    else:
        try:
            tokens = accounts.log_in(session, settings=settings, secret=secret, username=username.strip(),
                                     password=password)
        except AccountLocked as exc:
            message, status = f"This account is locked after too many failed attempts: {exc.message}.", 429
        except AuthenticationRequired:
            message, status = "Wrong user name or password.", 401
        else:
            response = redirect(request, target)
            start_session(request, response, token=tokens.token, settings=settings)
            return response
    return render(request, "signin.html", {"next": target, "username": username, "message": message},
                  status=status)


@router.post("/signout")
def signout(request: Request, _: PageActor, csrf_token: Annotated[str, Form(max_length=256)] = "") -> Response:
    check_csrf(request, csrf_token)
    response = redirect(request, "/signin?signedout=1")
    clear_session(request, response)
    return response


@router.post("/web/token")
def page_script_token(request: Request, actor: PageActor, secret: SecretKeyDep) -> Response:
    """A short-lived access token for the page's scripts (header ``X-CSRF-Token`` required)."""
    try:
        return JSONResponse(script_token(request, actor, secret=secret), headers={"Cache-Control": "no-store"})
    except GeoregError as exc:
        return JSONResponse({"error": exc.message, "code": exc.code}, status_code=status_for(exc))


fallback = APIRouter(route_class=PageRoute, include_in_schema=False)
"""Included after every other page router: unknown page addresses get a 404 page, not the JSON API's answer."""


@fallback.get("/r/{rest:path}")
@fallback.get("/rasters/{rest:path}")
@fallback.get("/admin/{rest:path}")
def no_such_page(request: Request, _: PageActor) -> Response:
    raise NotFound(f"there is no page at {request.url.path[:200]!r}", code="page_not_found")
