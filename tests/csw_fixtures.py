"""pytest plugin: a real pycsw CSW server and an NBS-like HTTP file server for the CSW / Sentinel tests.

Registered from ``tests/conftest.py`` (``pytest_plugins``). Everything expensive is session-scoped and built
on first use only, so test modules that do not ask for these fixtures pay nothing.

Fixtures
--------
``nbs_file_server`` (session) -> :class:`NbsFileServer`
    Threaded ``http.server`` on ``127.0.0.1:<free port>`` serving ``.root`` (a tmp dir). The NBS archive lives
    under ``.archive_root`` = ``<root>/thredds/fileServer/nbsArchive`` and holds the catalogue's quicklook
    GeoTIFFs (written with rasterio). Attributes and helpers:
    ``base_url``, ``root``, ``archive_root``, ``catalogue``, ``requests`` (list of ``(method, path)`` seen),
    ``url(path)``, ``archive_url(relpath)``, ``redirect_url(to=DISALLOWED_REDIRECT)`` (302 to ``to``),
    ``oversized_url(size=16 MiB, declared=True)`` (streams ``size`` bytes, with or without Content-Length),
    ``slow_url(seconds=30, trickle=False)`` (stalls before the headers, or trickles 1 KiB / 0.5 s),
    ``missing_url`` (404), ``csw_exception_url`` (any request -> OWS ExceptionReport),
    ``csw_slow_url(seconds=30)`` (stalls, then 503). Directory listings are 404 like THREDDS. Files a test
    writes under ``archive_root`` (e.g. a SAFE zip at ``archive_root / record.archive_relpath``) are served at
    once; remove them again, the server is shared by the session.
``nbs_catalogue`` (session) -> :class:`tests.nbs_catalogue.NbsCatalogue`
    The 40 records loaded into pycsw, with URLs on ``nbs_file_server``; ``select(...)`` gives the expected
    pycsw answer for csw-search filters, ``sorted_by(...)`` its sort order, ``get(identifier)``,
    ``of_kind(...)``, ``children_of(...)``. Hostile records (``kind`` ``redirect``/``oversized``/``missing``/
    ``slow``) have a good first quicklook and a second one that misbehaves on the file server.
``pycsw_python`` (session) -> ``Path``
    The interpreter of the pycsw virtualenv (``$GEOREG_TEST_PYCSW_VENV`` or ``<repo>/.venv-pycsw``), built
    under a lock by ``tests/pycsw_venv.py`` when missing or out of date (``make test`` builds it first).
``pycsw_server`` (session) -> :class:`PycswServer`
    pycsw 2.6.2 (apiso profile, SQLite repository made with pycsw-admin's setup_db + load_records) running
    ``tests/pycsw_server.py`` in its own process. ``url`` (``http://127.0.0.1:<port>/csw``), ``catalogue``,
    ``log_path``, ``maxrecords`` (100).
``csw_url`` (session) -> ``str``: ``pycsw_server.url``.
``csw_down_url`` -> ``str``: ``http://127.0.0.1:<port>/csw`` on a port nothing listens on (connection refused).
``csw_exception_url`` / ``csw_slow_url`` (session) -> ``str``: an endpoint answering every request with an
    OWS ExceptionReport / one stalling 30 s before a 503 (both on the file server).

Outside pytest (bench/), use the context managers :func:`running_file_server` and :func:`running_pycsw`.

What the tests in ``tests/csw/`` pin about this server (and so about NBS's pycsw):
- ``outputschema`` gmd returns the ISO documents as written; ``results["matches"]`` counts all hits and
  ``results["nextrecord"]`` is 0 on the last page (the server also caps ``maxrecords`` at its configured 100).
- times compare as strings; ``PropertyIsLike`` is case-insensitive (SQLite ``LIKE``; ``_`` is a wildcard too);
  an unknown queryable answers an OWS ExceptionReport (OWSLib raises ``owslib.ows.ExceptionReport``).
- a record bbox with west > east is indexed as the box between east and west (pycsw does not split it).
- OWSLib's ``getrecords2`` POSTs without its ``timeout`` (owslib.util.http_post drops it); only GET requests
  (capabilities, ``getrecordbyid``) time out, so ``csw_slow_url`` stalls a ``getrecords2`` call for 30 s.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from tests.nbs_catalogue import (
    ARCHIVE_PREFIX,
    DISALLOWED_REDIRECT,
    OVERSIZED_BYTES,
    SLOW_SECONDS,
    Behaviour,
    NbsCatalogue,
    build_catalogue,
    write_archive,
    write_records,
)
from tests.pycsw_venv import DEFAULT_VENV, ensure_pycsw_venv

PYCSW_RUNNER = Path(__file__).resolve().with_name("pycsw_server.py")
PYCSW_START_TIMEOUT = 90.0
CHUNK = 64 * 1024
EXCEPTION_REPORT = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<ows:ExceptionReport xmlns:ows="http://www.opengis.net/ows" version="1.2.0" language="en">'
    b'<ows:Exception exceptionCode="NoApplicableCode" locator="service">'
    b"<ows:ExceptionText>Repository temporarily unavailable (test endpoint)</ows:ExceptionText>"
    b"</ows:Exception></ows:ExceptionReport>"
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (and is closed now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Handler(SimpleHTTPRequestHandler):
    """Static files plus the hostile routes; one entry per request in ``server.requests``."""

    server: _FileHTTPServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def list_directory(self, path):
        self.send_error(404, "Not Found")
        return None

    def do_GET(self) -> None:
        if not self._special("GET"):
            super().do_GET()

    def do_HEAD(self) -> None:
        if not self._special("HEAD"):
            super().do_HEAD()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if not self._special("POST"):
            self.send_error(405, "Method Not Allowed")

    def _special(self, method: str) -> bool:
        parts = urlsplit(self.path)
        self.server.requests.append((method, self.path))
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        segments = parts.path.strip("/").split("/")
        behaviour = self.server.behaviours.get(parts.path)
        try:
            if behaviour is not None:
                self._behave(behaviour, method)
            elif segments[0] == "redirect":
                self._behave(Behaviour("redirect", redirect_to=query.get("to", DISALLOWED_REDIRECT + "x.tif")), method)
            elif segments[0] == "oversized" and len(segments) >= 2:
                self._stream(int(segments[1]), query.get("length", "declared") == "declared", method)
            elif segments[0] == "slow" and len(segments) >= 2:
                self._slow(float(segments[1]), query.get("trickle") == "1", method)
            elif segments[0] == "csw-exception":
                self._send(200, "application/xml", EXCEPTION_REPORT, method)
            elif segments[0] == "csw-slow" and len(segments) >= 2:
                self.server.stopping.wait(float(segments[1]))
                self._send(503, "text/plain", b"catalogue overloaded\n", method)
            else:
                return False
        except (BrokenPipeError, ConnectionResetError):
            pass
        return True

    def _behave(self, behaviour: Behaviour, method: str) -> None:
        if behaviour.kind == "redirect":
            self.send_response(302)
            self.send_header("Location", behaviour.redirect_to)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif behaviour.kind == "oversized":
            self._stream(behaviour.size, False, method)
        elif behaviour.kind == "slow":
            self._slow(behaviour.delay, False, method)
        else:
            self.send_error(404, "Not Found")

    def _send(self, status: int, content_type: str, body: bytes, method: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(body)

    def _stream(self, size: int, declared: bool, method: str) -> None:
        """``size`` bytes of a would-be TIFF, with or without Content-Length (then ended by closing)."""
        self.send_response(200)
        self.send_header("Content-Type", "image/tiff")
        if declared:
            self.send_header("Content-Length", str(size))
        self.end_headers()
        if method == "HEAD":
            return
        chunk = b"II*\x00" + bytes(CHUNK - 4)
        sent = 0
        while sent < size and not self.server.stopping.is_set():
            piece = chunk[: min(CHUNK, size - sent)]
            self.wfile.write(piece)
            sent += len(piece)
            chunk = bytes(CHUNK)

    def _slow(self, seconds: float, trickle: bool, method: str) -> None:
        """Stall ``seconds`` before answering, or answer at once and trickle 1 KiB every 0.5 s for that long."""
        if not trickle:
            self.server.stopping.wait(seconds)
            self._send(200, "image/tiff", b"II*\x00" + bytes(1020), method)
            return
        steps = max(1, int(seconds / 0.5))
        self.send_response(200)
        self.send_header("Content-Type", "image/tiff")
        self.send_header("Content-Length", str(1024 * steps))
        self.end_headers()
        for _ in range(steps if method != "HEAD" else 0):
            if self.server.stopping.wait(0.5):
                return
            self.wfile.write(bytes(1024))
            self.wfile.flush()


class _FileHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, root: Path, behaviours: dict[str, Behaviour]):
        super().__init__(("127.0.0.1", 0), partial(_Handler, directory=str(root)))
        self.behaviours = behaviours
        self.requests: list[tuple[str, str]] = []
        self.stopping = threading.Event()


@dataclass
class NbsFileServer:
    """The running file server (see the module docstring for the API)."""

    httpd: _FileHTTPServer
    root: Path
    catalogue: NbsCatalogue

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def archive_root(self) -> Path:
        return self.root / ARCHIVE_PREFIX

    @property
    def requests(self) -> list[tuple[str, str]]:
        return self.httpd.requests

    def url(self, path: str) -> str:
        """Absolute URL of a path on this server."""
        return f"{self.base_url}/{path.lstrip('/')}"

    def archive_url(self, relpath: str) -> str:
        """URL of a file under the archive root (THREDDS fileServer layout)."""
        return self.url(f"{ARCHIVE_PREFIX}/{relpath}")

    def redirect_url(self, to: str = DISALLOWED_REDIRECT + "quicklook.tif") -> str:
        """A URL answering 302 to ``to`` (default: a link-local metadata address no client may follow)."""
        return self.url(f"redirect/quicklook.tif?to={quote(to, safe='')}")

    def oversized_url(self, size: int = OVERSIZED_BYTES, declared: bool = True) -> str:
        """A URL streaming ``size`` bytes of image/tiff, with Content-Length if ``declared``."""
        return self.url(f"oversized/{size}/big.tif" + ("" if declared else "?length=none"))

    def slow_url(self, seconds: float = SLOW_SECONDS, trickle: bool = False) -> str:
        """A URL that stalls ``seconds`` before answering (or trickles its body over that time)."""
        return self.url(f"slow/{seconds:g}/slow.tif" + ("?trickle=1" if trickle else ""))

    @property
    def missing_url(self) -> str:
        return self.archive_url("S1A/2026/01/01/IW/ql/MISSING/MISSING_VV.tif")

    @property
    def csw_exception_url(self) -> str:
        return self.url("csw-exception")

    def csw_slow_url(self, seconds: float = SLOW_SECONDS) -> str:
        return self.url(f"csw-slow/{seconds:g}/csw")


@contextmanager
def running_file_server(root: Path) -> Iterator[NbsFileServer]:
    """Serve ``root`` with the catalogue's quicklooks written under its archive root, until the block ends."""
    root.mkdir(parents=True, exist_ok=True)
    httpd = _FileHTTPServer(root, {})
    server = NbsFileServer(httpd, root, build_catalogue(f"http://127.0.0.1:{httpd.server_address[1]}"))
    httpd.behaviours.update(server.catalogue.behaviours)
    write_archive(server.catalogue, server.archive_root)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), name="nbs-file-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.stopping.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@dataclass
class PycswServer:
    """A running pycsw process (see the module docstring)."""

    url: str
    catalogue: NbsCatalogue
    process: subprocess.Popen
    workdir: Path
    maxrecords: int

    @property
    def log_path(self) -> Path:
        return self.workdir / "pycsw.log"

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's log (startup errors, access log)."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@contextmanager
def running_pycsw(python: Path, catalogue: NbsCatalogue, workdir: Path, maxrecords: int = 100,
                  timeout: float = PYCSW_START_TIMEOUT) -> Iterator[PycswServer]:
    """Start pycsw (``python`` from the pycsw venv) loaded with ``catalogue``; stop it when the block ends."""
    shutil.rmtree(workdir, ignore_errors=True)
    records = workdir / "records"
    write_records(catalogue, records)
    port_file = workdir / "port"
    log = (workdir / "pycsw.log").open("wb")
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("PYTHONPATH", None)
    process = subprocess.Popen(
        [str(python), str(PYCSW_RUNNER), "--records", str(records), "--workdir", str(workdir),
         "--port-file", str(port_file), "--maxrecords", str(maxrecords)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=workdir,
    )
    log.close()
    server = PycswServer("", catalogue, process, workdir, maxrecords)
    try:
        deadline = time.monotonic() + timeout
        while not port_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                state = (f"exited with {process.returncode}" if process.poll() is not None
                         else f"not up after {timeout:g}s")
                raise RuntimeError(f"pycsw test server {state}; log {server.log_path}:\n{server.log_tail()}")
            time.sleep(0.05)
        server.url = f"http://127.0.0.1:{int(port_file.read_text())}/csw"
        yield server
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def pycsw_python() -> Path:
    """Interpreter of the pycsw virtualenv, built (locked, cached) if missing."""
    venv = Path(os.environ.get("GEOREG_TEST_PYCSW_VENV") or DEFAULT_VENV)
    try:
        return ensure_pycsw_venv(venv)
    except RuntimeError as exc:
        pytest.fail(f"{exc}\nBuild it with `make .venv-pycsw/.installed` (or `{sys.executable} tests/pycsw_venv.py`).",
                    pytrace=False)


@pytest.fixture(scope="session")
def nbs_file_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NbsFileServer]:
    """The NBS-like HTTP file server with the catalogue's quicklooks."""
    with running_file_server(tmp_path_factory.mktemp("nbs-www")) as server:
        yield server


@pytest.fixture(scope="session")
def nbs_catalogue(nbs_file_server: NbsFileServer) -> NbsCatalogue:
    """The records pycsw serves, as Python data."""
    return nbs_file_server.catalogue


@pytest.fixture(scope="session")
def pycsw_server(pycsw_python: Path, nbs_catalogue: NbsCatalogue,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[PycswServer]:
    """A real pycsw process loaded with ``nbs_catalogue``."""
    with ExitStack() as stack:
        try:
            server = stack.enter_context(running_pycsw(pycsw_python, nbs_catalogue, tmp_path_factory.mktemp("pycsw")))
        except RuntimeError as exc:
            pytest.fail(str(exc), pytrace=False)
        yield server


@pytest.fixture(scope="session")
def csw_url(pycsw_server: PycswServer) -> str:
    """The CSW endpoint URL of the pycsw test server."""
    return pycsw_server.url


@pytest.fixture
def csw_down_url() -> str:
    """A CSW URL on a closed local port (connection refused)."""
    return f"http://127.0.0.1:{free_port()}/csw"


@pytest.fixture(scope="session")
def csw_exception_url(nbs_file_server: NbsFileServer) -> str:
    """A CSW URL answering every request with an OWS ExceptionReport."""
    return nbs_file_server.csw_exception_url


@pytest.fixture(scope="session")
def csw_slow_url(nbs_file_server: NbsFileServer) -> str:
    """A CSW URL that stalls 30 s, then answers 503."""
    return nbs_file_server.csw_slow_url()
