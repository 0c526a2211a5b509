"""Domain errors -> HTTP: one table, one JSON shape ``{"error": ..., "code": ...}``.

Every answer says ``X-Content-Type-Options: nosniff`` (:class:`NoSniffMiddleware`, and the error answers themselves:
a 500 leaves through Starlette's outermost middleware, past any other). An unexpected exception is logged with its
traceback and answered ``500 internal_error`` without any of it; a full disk is ``507 insufficient_storage``."""

from __future__ import annotations

import logging
import sqlite3

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from georeg.core import errors
from georeg.core.storage import is_no_space, no_space_error

logger = logging.getLogger("georeg.api")

STATUS_BY_ERROR: dict[type[errors.GeoregError], int] = {
    errors.InvalidInput: 400,
    errors.AuthenticationRequired: 401,
    errors.PermissionDenied: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.Gone: 410,
    errors.PayloadTooLarge: 413,
    errors.InvalidParameters: 422,
    errors.AccountLocked: 429,
    errors.QuotaExceeded: 429,
    errors.UpstreamError: 502,
    errors.ServiceUnavailable: 503,
    errors.UpstreamTimeout: 504,
    errors.InsufficientStorage: 507,
}

# Retry-After (seconds) of an answer whose error does not name its own ``retryAfter``: a busy Prefect
# server or database usually answers again within seconds, so clients back off instead of hammering it.
DEFAULT_RETRY_AFTER = {503: 5}

HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
              409: "conflict", 410: "gone", 413: "payload_too_large", 415: "unsupported_media_type",
              416: "range_not_satisfiable", 422: "validation_error", 429: "too_many_requests",
              507: "insufficient_storage"}
NOSNIFF = (b"x-content-type-options", b"nosniff")


def status_for(error: errors.GeoregError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def error_response(status: int, message: str, code: str, **extra: object) -> JSONResponse:
    headers = {"X-Content-Type-Options": "nosniff"}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse({"error": message, "code": code, **extra}, status_code=status, headers=headers)


def _describe_validation(exc: RequestValidationError) -> tuple[str, list[dict]]:
    details = []
    for err in exc.errors():
        location = ".".join(str(part) for part in err.get("loc", ()) if part not in ("body",))
        details.append({"field": location, "message": err.get("msg", "invalid")})
    message = "; ".join(f"{d['field']}: {d['message']}" if d["field"] else d["message"] for d in details)
    return message or "invalid request", details


class RejectNulMiddleware:
    """400 for a URL with a NUL byte (raw or %00-encoded), before any route sees it.

    Plain ASGI rather than ``@app.middleware("http")``: Starlette's BaseHTTPMiddleware relays every
    request and response chunk through a task group and a memory stream, which cost about a fifth of
    the server's CPU time for a large upload + download (bench/upload_download.py)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _has_nul(scope):
            response = error_response(400, "NUL bytes are not allowed in URLs", "invalid_input")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _has_nul(scope: Scope) -> bool:
    raw = scope.get("raw_path") or b""
    query = scope.get("query_string") or b""
    return b"%00" in raw or b"\x00" in raw or b"%00" in query or b"\x00" in query or "\x00" in scope.get("path", "")


class NoSniffMiddleware:
    """``X-Content-Type-Options: nosniff`` on every HTTP answer that does not carry the header already (plain ASGI,
    for the reason given at :class:`RejectNulMiddleware`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_nosniff(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == NOSNIFF[0] for name, _ in headers):
                    message = {**message, "headers": [*headers, NOSNIFF]}
            await send(message)

        await self.app(scope, receive, send_nosniff)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(errors.GeoregError)
    async def _domain(_: Request, exc: errors.GeoregError) -> JSONResponse:
        extra = {"details": exc.details} if exc.details else {}
        status = status_for(exc)
        response = error_response(status, exc.message, exc.code, **extra)
        retry_after = exc.details.get("retryAfter", DEFAULT_RETRY_AFTER.get(status))
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, details = _describe_validation(exc)
        return error_response(422, message, "validation_error", details=details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        response = error_response(exc.status_code, str(exc.detail), HTTP_CODES.get(exc.status_code, "http_error"))
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(DataError)
    async def _data(_: Request, exc: DataError) -> JSONResponse:
        logger.info("database rejected a value: %s", exc.orig)
        return error_response(400, "a value in the request cannot be stored or searched", "invalid_input")

    @app.exception_handler(PoolTimeout)
    async def _busy(_: Request, exc: PoolTimeout) -> JSONResponse:
        logger.warning("database connection pool exhausted: %s", exc)
        response = error_response(503, "the registry database is busy; retry shortly", "database_busy")
        response.headers["Retry-After"] = str(DEFAULT_RETRY_AFTER[503])
        return response

    @app.exception_handler(OperationalError)
    async def _unavailable(_: Request, exc: OperationalError) -> JSONResponse:
        # PostgreSQL down, restarting or cutting connections (psycopg's OperationalError), or SQLite locked: the
        # next try may work. SQLite's other operational errors (a missing table) are bugs: on to the 500 handler.
        if isinstance(exc.orig, sqlite3.OperationalError) and "locked" not in str(exc.orig):
            raise exc
        logger.warning("registry database unavailable: %s", exc.orig)
        response = error_response(503, "the registry database is unavailable; retry shortly", "database_unavailable")
        response.headers["Retry-After"] = str(DEFAULT_RETRY_AFTER[503])
        return response

    app.add_middleware(RejectNulMiddleware)

    @app.exception_handler(OSError)
    async def _os_error(_: Request, exc: OSError) -> JSONResponse:
        if not is_no_space(exc):
            raise exc  # on to the handler of unexpected errors: 500
        # a write that does not go through core.storage's writers (a cache, a library's own file)
        logger.error("storage full: %s", exc)
        full = no_space_error()
        return error_response(status_for(full), full.message, full.code)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", exc_info=exc)
        return error_response(500, "internal server error", "internal_error")
