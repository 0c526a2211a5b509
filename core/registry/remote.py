"""A client of another registry's API (georeg or DroneDB-compatible), for ``/sys/import-dataset`` and
``/sys/import-organization``.

Every request goes to the source registry's base URL, which must pass the outbound allow-list
(``GEOREG_DOWNLOAD_HOSTS``, :func:`georeg.core.fetch.check_host`); redirects are followed by hand, each hop checked
the same way, and the source's token is sent only to the source's own origin. Errors of the source become domain
errors with the codes the API documents: ``source_auth_failed`` (400: the source refused the credentials),
``source_not_found`` (404), ``source_unreachable`` (502), ``source_timeout`` (504), ``source_error`` (502: any other
answer the source should not have given).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from georeg.core.errors import InvalidInput, NotFound, PayloadTooLarge, UpstreamError, UpstreamTimeout
from georeg.core.fetch import check_host
from georeg.core.storage import TempWriter

MAX_REDIRECTS = 5
CHUNK_SIZE = 1024 * 1024
PAGE = 100
MAX_URL_LENGTH = 2048
DIRECTORY_TYPES = {"directory", 1, "1"}  # georeg's type name, DroneDB's type code


class SourceAuthFailed(InvalidInput):
    """The source registry refused the credentials (or wants some to read what was asked)."""

    code = "source_auth_failed"


class SourceNotFound(NotFound):
    code = "source_not_found"


class SourceUnreachable(UpstreamError):
    code = "source_unreachable"


class SourceTimeout(UpstreamTimeout):
    code = "source_timeout"


def source_base_url(url: str, allowed_hosts: list[str]) -> str:
    """The source registry's base URL ``scheme://host[:port]``: ``400 invalid_source_url`` for anything but a bare
    http(s) origin (a path other than ``/``, a query, a fragment, user info), ``403 download_host_not_allowed`` for a
    host not in ``GEOREG_DOWNLOAD_HOSTS``, ``403 address_not_allowed`` for a listed name resolving inwards."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH or any(c.isspace() for c in url):
        raise InvalidInput("sourceRegistryUrl must be an http(s) URL of at most 2048 characters without spaces",
                           code="invalid_source_url")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidInput(f"sourceRegistryUrl is not a valid URL: {exc}", code="invalid_source_url") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("sourceRegistryUrl must be an http:// or https:// URL with a host",
                           code="invalid_source_url")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise InvalidInput("sourceRegistryUrl must not carry user info: send username and password in the body",
                           code="invalid_source_url")
    if parts.path not in ("", "/") or parts.query or parts.fragment or url.endswith(("?", "#")):
        raise InvalidInput("sourceRegistryUrl must be the registry's origin (scheme://host[:port]) without a path, "
                           "query or fragment", code="invalid_source_url")
    host = parts.hostname
    netloc = f"[{host}]" if ":" in host else host
    base = f"{parts.scheme}://{netloc}{f':{port}' if port else ''}"
    check_host(base, allowed_hosts)
    return base


@dataclass(frozen=True)
class RemoteEntry:
    """A file or folder of the source dataset."""

    path: str
    is_directory: bool
    size: int
    sha256: str | None


class RemoteRegistry:
    """The API of the registry at ``base_url`` (from :func:`source_base_url`), optionally signed in."""

    def __init__(self, base_url: str, *, allowed_hosts: list[str], timeout: float,
                 user_agent: str = "georeg-import") -> None:
        import httpx

        self.base_url = base_url.rstrip("/")
        self.allowed_hosts = allowed_hosts
        self.token: str | None = None
        self._origin = urlsplit(self.base_url).netloc.lower()
        self._http = httpx.Client(follow_redirects=False, timeout=timeout, headers={"User-Agent": user_agent})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RemoteRegistry:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- transport ---------------------------------------------------------------------------------------------

    @contextmanager
    def _stream(self, method: str, path: str, *, what: str, **kwargs: Any) -> Iterator[Any]:
        """The source's answer (2xx, its body not read yet) to ``method path``, redirects followed and checked;
        its error answers raised as domain errors naming ``what``."""
        import httpx

        url = f"{self.base_url}{path}"
        try:
            for _ in range(MAX_REDIRECTS + 1):
                check_host(url, self.allowed_hosts)
                headers = dict(kwargs.pop("headers", None) or {})
                if self.token and urlsplit(url).netloc.lower() == self._origin:
                    headers["Authorization"] = f"Bearer {self.token}"
                request = self._http.build_request(method, url, headers=headers, **kwargs)
                response = self._http.send(request, stream=True)
                try:
                    if response.is_redirect:
                        url = urljoin(url, response.headers.get("location", ""))
                        if response.status_code in (301, 302, 303):
                            method, kwargs = "GET", {}
                        continue
                    if response.status_code >= 400:
                        response.read()
                        raise _source_error(response, what)
                    yield response
                    return
                finally:
                    response.close()
        except httpx.TimeoutException as exc:
            raise SourceTimeout(f"the source registry did not answer in time ({what})") from exc
        except httpx.HTTPError as exc:
            raise SourceUnreachable(f"cannot reach the source registry {self.base_url} ({what}): {exc}") from exc
        raise SourceUnreachable(f"the source registry redirects more than {MAX_REDIRECTS} times ({what})",
                                code="too_many_redirects")

    def _json(self, method: str, path: str, *, what: str, **kwargs: Any) -> Any:
        with self._stream(method, path, what=what, **kwargs) as response:
            response.read()
            try:
                return response.json()
            except ValueError as exc:
                raise UpstreamError(f"the source registry answered {what} with something that is not JSON",
                                    code="source_error") from exc

    # --- API ---------------------------------------------------------------------------------------------------

    def authenticate(self, username: str, password: str) -> None:
        """Sign in (``POST /users/authenticate``); later requests carry the token."""
        body = self._json("POST", "/users/authenticate", what="sign-in",
                          json={"userName": username, "username": username, "password": password})
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise UpstreamError("the source registry's sign-in answer holds no token", code="source_error")
        self.token = token

    def organization(self, org: str) -> dict:
        """``GET /orgs/{org}``."""
        body = self._json("GET", f"/orgs/{_seg(org)}", what=f"organization {org!r}")
        return body if isinstance(body, dict) else {}

    def datasets(self, org: str) -> list[dict]:
        """Every dataset of ``org`` the caller may see (``GET /orgs/{org}/ds``, paged; DroneDB answers a list)."""
        found: list[dict] = []
        skip = 0
        while True:
            body = self._json("GET", f"/orgs/{_seg(org)}/ds", what=f"datasets of {org!r}",
                              params={"skip": skip, "take": PAGE})
            if isinstance(body, list):
                return [item for item in body if isinstance(item, dict)]
            items = [item for item in (body.get("items") or []) if isinstance(item, dict)]
            found.extend(items)
            skip += len(items)
            if not items or skip >= int(body.get("total") or 0):
                return found

    def dataset(self, org: str, ds: str) -> dict:
        """The dataset's description (``GET /orgs/{org}/ds/{ds}/ex``: name, description, visibility, ...)."""
        body = self._json("GET", f"/orgs/{_seg(org)}/ds/{_seg(ds)}/ex", what=f"dataset {org}/{ds}")
        return body if isinstance(body, dict) else {}

    def entries(self, org: str, ds: str) -> list[RemoteEntry]:
        """Every file and folder of the dataset, folder by folder (``GET .../list?path=``), parents first."""
        found: list[RemoteEntry] = []
        pending, seen = [""], {""}
        while pending:
            folder = pending.pop(0)
            listed = self._json("GET", f"/orgs/{_seg(org)}/ds/{_seg(ds)}/list", params={"path": folder},
                                what=f"folder {folder or '/'} of {org}/{ds}")
            for item in listed if isinstance(listed, list) else []:
                entry = _entry(item)
                if entry is None or entry.path in seen:
                    continue
                seen.add(entry.path)
                found.append(entry)
                if entry.is_directory:
                    pending.append(entry.path)
        return found

    def meta_dump(self, org: str, ds: str) -> list[dict]:
        """Every metadata value of the dataset and its entries (``POST .../meta/dump``)."""
        body = self._json("POST", f"/orgs/{_seg(org)}/ds/{_seg(ds)}/meta/dump", json={},
                          what=f"metadata of {org}/{ds}")
        return [item for item in body if isinstance(item, dict)] if isinstance(body, list) else []

    def download(self, org: str, ds: str, writer: TempWriter, *, path: str | None = None) -> None:
        """Stream one file (``path``) or the whole dataset as a zip (no ``path``) into ``writer`` (which hashes and
        enforces its size limit: :class:`PayloadTooLarge`)."""
        params = {"path": path} if path else {}
        what = f"file {path!r} of {org}/{ds}" if path else f"archive of {org}/{ds}"
        with self._stream("GET", f"/orgs/{_seg(org)}/ds/{_seg(ds)}/download", params=params, what=what) as response:
            declared = int(response.headers.get("content-length") or 0)
            if writer.max_bytes is not None and declared > writer.max_bytes:
                raise PayloadTooLarge(f"the {what} is {declared} bytes, more than expected ({writer.max_bytes})",
                                      code="download_too_large")
            for chunk in response.iter_bytes(CHUNK_SIZE):
                writer.write(chunk)


def _seg(value: str) -> str:
    return quote(value, safe="")


def _entry(item: Any) -> RemoteEntry | None:
    if not isinstance(item, dict) or not isinstance(item.get("path"), str):
        return None
    digest = item.get("hash")
    size = item.get("size")
    return RemoteEntry(path=item["path"], is_directory=item.get("type") in DIRECTORY_TYPES,
                       size=size if isinstance(size, int) and size >= 0 else 0,
                       sha256=digest.lower() if isinstance(digest, str) and digest else None)


def _source_error(response: Any, what: str) -> Exception:
    status = response.status_code
    try:
        body = response.json()
        detail = body.get("error") if isinstance(body, dict) else None
    except ValueError:
        detail = None
    said = f": {str(detail)[:300]}" if detail else ""
    if status in (401, 403):
        return SourceAuthFailed(f"the source registry refused access to the {what} (HTTP {status}{said}); check "
                                "username and password", details={"sourceStatus": status})
    if status == 404:
        return SourceNotFound(f"the source registry has no {what} (HTTP 404{said})", details={"sourceStatus": status})
    return UpstreamError(f"the source registry answered HTTP {status} for the {what}{said}", code="source_error",
                         details={"sourceStatus": status})
