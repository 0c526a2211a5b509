"""Rendering pages: the Jinja2 environment, the pages' headers (Content-Security-Policy) and their error pages.

:class:`PageRoute` is the route class of every page: whatever a page's dependencies or handler raise (a domain
error, a validation error, an HTTP error, a bug) becomes an HTML page with a readable message and the status the
JSON API would answer, never a stack trace. An anonymous caller asked to sign in is sent to the sign-in page."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from georeg.api.errors import status_for
from georeg.api.web.session import csrf_token, finish
from georeg.core import errors
from georeg.core.registry.actor import ANONYMOUS

logger = logging.getLogger("georeg.api.web")

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
STATIC_URL = "/web/static"
TEMPLATES = Jinja2Templates(directory=WEB_DIR / "templates")

PAGE_CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "connect-src 'self'",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
"""Pages load everything from their own origin: no inline script or style, no other host."""

TITLES = {400: "The request cannot be used", 401: "Please sign in", 403: "Not allowed", 404: "Not found",
          405: "Not allowed", 409: "Already exists", 413: "Too large", 422: "Some fields are not valid",
          429: "Too many requests", 500: "Something went wrong", 502: "Another service failed",
          503: "Busy, try again shortly", 504: "Another service is too slow"}


def human_size(size: int | None) -> str:
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


TEMPLATES.env.filters["human_size"] = human_size
TEMPLATES.env.filters["urlpath"] = lambda value: quote(str(value), safe="")


def base_path(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def render(request: Request, template: str, context: dict[str, Any] | None = None, *, status: int = 200) -> Response:
    """The page ``template`` with ``context`` plus what every page shows (the caller, the CSRF token, URLs)."""
    actor = getattr(request.state, "actor", ANONYMOUS)
    values = {"actor": actor, "user": actor.user, "csrf_token": csrf_token(request), "base": base_path(request),
              "static": f"{base_path(request)}{STATIC_URL}", **(context or {})}
    response = TEMPLATES.TemplateResponse(request, template, values, status_code=status)
    response.headers["Content-Security-Policy"] = PAGE_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return finish(request, response)


def redirect(request: Request, url: str) -> Response:
    """303 to ``url`` (a path of this app) after a form."""
    return finish(request, RedirectResponse(f"{base_path(request)}{url}", status_code=303))


def error_page(request: Request, *, status: int, message: str, code: str = "") -> Response:
    return render(request, "error.html", {"status": status, "title": TITLES.get(status, "Error"), "message": message,
                                          "code": code}, status=status)


def validation_message(exc: RequestValidationError | ValidationError) -> str:
    parts = []
    for err in exc.errors():
        field = ".".join(str(part) for part in err.get("loc", ()) if part not in ("body", "query", "path", "form"))
        parts.append(f"{field}: {err.get('msg', 'invalid')}" if field else str(err.get("msg", "invalid")))
    return "; ".join(parts) or "some fields are not valid"


def page_error(request: Request, exc: Exception) -> Response:
    """The HTML answer of a page to ``exc``."""
    if isinstance(exc, errors.AuthenticationRequired) and request.method == "GET":
        path = request.url.path.removeprefix(base_path(request)) or "/"  # redirect() adds the prefix again
        target = path + (f"?{request.url.query}" if request.url.query else "")
        return redirect(request, f"/signin?next={quote(target, safe='')}")
    if isinstance(exc, errors.GeoregError):
        return error_page(request, status=status_for(exc), message=exc.message, code=exc.code)
    if isinstance(exc, RequestValidationError | ValidationError):
        return error_page(request, status=422, message=validation_message(exc), code="validation_error")
    if isinstance(exc, StarletteHTTPException):
        return error_page(request, status=exc.status_code, message=str(exc.detail))
    logger.exception("unhandled error in a page", exc_info=exc)
    return error_page(request, status=500, message="The server failed to show this page. Try again; if it keeps "
                                                   "failing, tell the administrator the time it happened.",
                      code="internal_error")


class PageRoute(APIRoute):
    """A page route: errors become HTML pages (see the module doc)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:  # noqa: BLE001 - a page shows every error as a page
                return page_error(request, exc)

        return page_handler
