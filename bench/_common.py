"""Helpers shared by the benchmarks (the leading underscore keeps this module out of discovery)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    import psutil


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def check(response: httpx.Response, what: str) -> httpx.Response:
    if response.is_error:
        raise RuntimeError(f"{what}: HTTP {response.status_code}: {response.text[:500]}")
    return response


PROJECT_ROOT = Path(__file__).resolve().parent.parent
BENCH_ROOT = PROJECT_ROOT / ".bench"


@contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A fresh folder under ``<project>/.bench/`` (same file system as the project, unlike /tmp on tmpfs), removed
    when the block ends, with ``.bench/`` itself once empty."""
    BENCH_ROOT.mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=BENCH_ROOT))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        with suppress(OSError):
            BENCH_ROOT.rmdir()  # only when empty
BENCH_ADMIN_PASSWORD = "bench-admin-pw"


@contextmanager
def running_api(tmp: Path, *, env: dict[str, str] | None = None, startup_timeout: float = 120.0) -> Iterator[str]:
    """The georeg API under uvicorn in its own process (data dir in ``tmp``, no Prefect needed for synchronous
    routes); yields its base URL and stops it when the block ends."""
    port = free_port()
    environment = {**os.environ, "GEOREG_DATA_DIR": str(tmp / "data"), "GEOREG_ADMIN_PASSWORD": BENCH_ADMIN_PASSWORD,
                   "GEOREG_SECRET_KEY": "bench", "GEOREG_PREFECT_API_URL": "http://127.0.0.1:9/api", **(env or {})}
    log_path = tmp / "api.log"
    command = [sys.executable, "-m", "uvicorn", "georeg.api.app:create_app", "--factory", "--host", "127.0.0.1",
               "--port", str(port), "--no-access-log", "--log-level", "warning"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-40:])
                raise RuntimeError(f"API server did not start (exit {process.poll()}):\n{tail}")
            try:
                if httpx.get(f"{base_url}/version", timeout=2.0).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield base_url
    finally:
        stop_process(process)


def stop_process(process: subprocess.Popen) -> None:
    """SIGTERM, wait up to 15 s, then SIGKILL."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=15)


def write_random(path: Path, size: int, *, durable: bool = False) -> None:
    """``size`` random bytes into ``path`` in 1 MiB pieces (fsynced if ``durable``)."""
    with open(path, "wb") as handle:
        remaining = size
        while remaining > 0:
            n = min(2**20, remaining)
            handle.write(os.urandom(n))
            remaining -= n
        if durable:
            handle.flush()
            os.fsync(handle.fileno())


def upload_file(base_url: str, token: str, url_path: str, path: Path, *, fields: dict[str, str] | None = None,
                filename: str | None = None, content_type: str = "application/octet-stream") -> dict:
    """POST ``path`` as the ``file`` part of a multipart form (plus text ``fields``) with a Content-Length, streamed
    by http.client in 1 MiB pieces, as curl or any client that streams a file; returns the JSON answer."""
    import http.client
    import json
    from urllib.parse import urlsplit

    boundary = os.urandom(16).hex()
    head = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
                   for name, value in (fields or {}).items())
    head += (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename or path.name}"\r\n'
             f"Content-Type: {content_type}\r\n\r\n")
    tail = f"\r\n--{boundary}--\r\n".encode()
    url = urlsplit(base_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=1800, blocksize=1024 * 1024)
    try:
        connection.putrequest("POST", url_path)
        connection.putheader("Authorization", f"Bearer {token}")
        connection.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
        connection.putheader("Content-Length", str(len(head.encode()) + path.stat().st_size + len(tail)))
        connection.endheaders()
        connection.send(head.encode())
        with open(path, "rb") as handle:
            connection.send(handle)
        connection.send(tail)
        response = connection.getresponse()
        body = response.read()
        if response.status >= 400:
            raise RuntimeError(f"upload {path.name} to {url_path}: HTTP {response.status}: {body[:500]!r}")
        return json.loads(body)
    finally:
        connection.close()


def status_kb(field: str) -> int:
    """A field of /proc/self/status in kB (``VmRSS``, ``VmHWM``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak_rss() -> int:
    """Reset the process's peak RSS (VmHWM) to its current RSS and return that, in kB. (``ru_maxrss`` would
    not do: Linux carries it across the exec of a spawned process, from the parent's fork.)"""
    Path("/proc/self/clear_refs").write_text("5")
    return status_kb("VmRSS")


def process_tree_rss(process: psutil.Process) -> int:
    """Resident memory of ``process`` and all its descendants, in bytes (0 for a process that is gone)."""
    import psutil

    total = 0
    try:
        members = [process, *process.children(recursive=True)]
    except psutil.Error:
        return 0
    for member in members:
        with suppress(psutil.Error):
            total += member.memory_info().rss
    return total
