"""Domain errors. Each carries a stable ``code``; ``api/errors.py`` maps the classes to HTTP."""

from __future__ import annotations


class GeoregError(Exception):
    """Base of every domain error."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None, details: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details or {}


class InvalidInput(GeoregError):
    code = "invalid_input"


class InvalidPath(InvalidInput):
    code = "invalid_path"


class InvalidRaster(InvalidInput):
    code = "invalid_raster"


class AuthenticationRequired(GeoregError):
    code = "unauthorized"


class InvalidCredentials(AuthenticationRequired):
    code = "invalid_credentials"


class AccountLocked(GeoregError):
    code = "account_locked"


class PermissionDenied(GeoregError):
    code = "forbidden"


class NotFound(GeoregError):
    code = "not_found"


class Conflict(GeoregError):
    code = "conflict"


class PayloadTooLarge(GeoregError):
    code = "payload_too_large"


class QuotaExceeded(GeoregError):
    code = "quota_exceeded"


class InsufficientStorage(GeoregError):
    """The data dir's file system is full (ENOSPC) or over its disk quota (EDQUOT); nothing was kept."""

    code = "insufficient_storage"


class ServiceUnavailable(GeoregError):
    code = "service_unavailable"


class InvalidParameters(GeoregError):
    """Tool parameters that do not match the tool's JSON Schema."""

    code = "invalid_parameters"


class UpstreamError(GeoregError):
    """An outside service (a CSW, a download host) failed or answered with an error."""

    code = "upstream_error"


class UpstreamTimeout(UpstreamError):
    code = "upstream_timeout"


class Gone(GeoregError):
    code = "gone"
