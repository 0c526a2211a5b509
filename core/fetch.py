"""Streamed, size-limited downloads from allowed hosts only (``GEOREG_DOWNLOAD_HOSTS``); every redirect hop
is checked against the allow-list before it is followed."""

from __future__ import annotations

from pathlib import PurePosixPath
from urllib.parse import unquote, urljoin, urlsplit

from pydantic import BaseModel

from georeg.core.errors import PayloadTooLarge, PermissionDenied, UpstreamError, UpstreamTimeout
from georeg.core.storage import TempWriter

MAX_REDIRECTS = 5
CHUNK_SIZE = 1024 * 1024


class Fetched(BaseModel):
    url: str
    filename: str
    size: int
    sha256: str
    content_type: str | None = None


def host_allowed(url: str, allowed_hosts: list[str]) -> bool:
    """http(s) URL whose host is one of ``allowed_hosts`` (``host`` or ``host:port``; case-insensitive)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    host = parts.hostname.lower()
    with_port = f"{host}:{parts.port}" if parts.port else host
    allowed = {item.strip().lower() for item in allowed_hosts}
    return host in allowed or with_port in allowed


def check_host(url: str, allowed_hosts: list[str]) -> None:
    """403 unless ``url`` is http(s) on an allowed host, and the host name resolves to no loopback, private,
    link-local or otherwise internal address that is not itself listed (a listed name pointing inwards)."""
    if not host_allowed(url, allowed_hosts):
        raise PermissionDenied(f"downloads from {urlsplit(url).netloc or url!r} are not allowed "
                               "(GEOREG_DOWNLOAD_HOSTS)", code="download_host_not_allowed")
    parts = urlsplit(url)
    allowed = {item.strip().lower() for item in allowed_hosts}
    refused = [address for address in internal_addresses(parts.hostname or "")
               if address not in allowed and f"{address}:{parts.port}" not in allowed]
    if refused:
        raise PermissionDenied(f"{parts.hostname} resolves to the internal address {refused[0]}, which is not listed "
                               "in GEOREG_DOWNLOAD_HOSTS", code="address_not_allowed")


def internal_addresses(host: str) -> list[str]:
    """The loopback, private, link-local, reserved, multicast or unspecified addresses a host *name* resolves to
    (none for an IP literal, which the allow-list names itself, or a name that does not resolve)."""
    import ipaddress
    import socket

    try:
        ipaddress.ip_address(host.strip("[]"))
        return []
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    found = []
    for address in sorted({str(info[4][0]).split("%")[0] for info in infos}):
        ip = ipaddress.ip_address(address)
        if (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_multicast
                or ip.is_unspecified):
            found.append(address)
    return found


def filename_of(url: str) -> str:
    return PurePosixPath(unquote(urlsplit(url).path)).name or "download"


def fetch(url: str, writer: TempWriter, *, allowed_hosts: list[str], timeout: float) -> Fetched:
    """Stream ``url`` into ``writer`` (which hashes and enforces its size limit), following at most
    :data:`MAX_REDIRECTS` redirects, each to an allowed host."""
    import httpx

    check_host(url, allowed_hosts)
    current = url
    try:
        with httpx.Client(follow_redirects=False, timeout=timeout) as client:
            for _ in range(MAX_REDIRECTS + 1):
                with client.stream("GET", current) as response:
                    if response.is_redirect:
                        current = urljoin(current, response.headers.get("location", ""))
                        check_host(current, allowed_hosts)
                        continue
                    if response.status_code != 200:
                        raise UpstreamError(f"{current} answered HTTP {response.status_code}",
                                            code="download_failed", details={"status": response.status_code})
                    declared = int(response.headers.get("content-length") or 0)
                    if writer.max_bytes is not None and declared > writer.max_bytes:
                        raise PayloadTooLarge(f"{current} is {declared} bytes, over the download limit of "
                                              f"{writer.max_bytes} bytes", code="download_too_large")
                    for chunk in response.iter_bytes(CHUNK_SIZE):
                        writer.write(chunk)
                    return Fetched(url=current, filename=filename_of(current), size=writer.size,
                                   sha256=writer.sha256, content_type=response.headers.get("content-type"))
    except PayloadTooLarge as exc:
        raise PayloadTooLarge(f"{current} exceeds the download limit of {writer.max_bytes} bytes",
                              code="download_too_large") from exc
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout(f"{current} did not answer in time", code="download_timeout") from exc
    except httpx.HTTPError as exc:
        raise UpstreamError(f"cannot download {current}: {exc}", code="download_failed") from exc
    raise UpstreamError(f"{url} redirects more than {MAX_REDIRECTS} times", code="too_many_redirects")
