"""The flow-run fork server: one process that imports Prefect, georeg's flows and their libraries once,
then forks a ready process per flow run for ``flow_run_launcher.py`` (the worker's command).

A fresh ``python -m prefect.engine`` spends about 2 s of CPU importing before the run is Running; a
fork costs milliseconds. Each request carries the launcher's argv, working directory, environment and
stdin/stdout/stderr; the forked child becomes a new session, takes those over, refreshes Prefect's
settings from the new environment and runs ``prefect.engine`` as ``__main__``, ending like the
interpreter would (Prefect's exit hooks flush its logs). The server answers ``pid N`` at once and
``exit CODE`` when the child ends (a negative code: killed by that signal), and kills a child whose
launcher went away. Only processes of the server's own user may connect (a 0700 directory and
``SO_PEERCRED``).

Run: ``python -m georeg.deployments.forkserver SOCKET_PATH``. The server is single-threaded (forking a
threaded process is unsafe); SIGTERM stops it, sending SIGTERM to the runs still going.
"""

from __future__ import annotations

import importlib
import json
import os
import selectors
import shutil
import signal
import socket
import struct
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import TypeAdapter

from georeg.deployments.flow_run_launcher import SOCKET_ENV, signal_run
from georeg.deployments.processes import ChildProcess

LAUNCHER = Path(__file__).with_name("flow_run_launcher.py")
PRELOAD = (
    "prefect.main", "prefect.engine", "prefect.flow_engine", "prefect.deployments.steps", "prefect.flows",
    "prefect.client.orchestration", "prefect.results", "prefect.logging.handlers",
    "georeg.flows.tools", "georeg.flows.cleanup", "georeg.flows.maintenance", "georeg.core.tasks.tools",
    "georeg.core.config", "georeg.core.db", "georeg.core.tasks.runner",
)
REQUEST_TIMEOUT = 10.0
STOP_GRACE_SECONDS = 10.0
MAX_REQUEST_BYTES = 16 * 1024 * 1024


@dataclass
class Fork:
    """What a forked child runs: the launcher's request."""

    argv: list[str]
    cwd: str
    env: dict[str, str]
    fds: list[int]


def launcher_command() -> list[str]:
    """The per-run command for a worker of this install: the launcher under this interpreter, without site."""
    return [sys.executable, "-S", str(LAUNCHER)]


def preload() -> None:
    """Import what every flow run needs, and every shipped tool with its libraries."""
    for name in PRELOAD:
        importlib.import_module(name)
    from georeg.core.tasks.tools import shipped_tools

    shipped_tools()


def _recv_exact(conn: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = conn.recv(min(left, 1 << 20))
        if not chunk:
            raise ConnectionError("launcher closed the connection mid-request")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_request(conn: socket.socket) -> Fork | None:
    """One request: a 4-byte length with the launcher's fds 0-2 attached, then that much JSON. None for
    a connection closed without a request (a readiness probe)."""
    conn.settimeout(REQUEST_TIMEOUT)
    header, fds, _flags, _addr = socket.recv_fds(conn, 4, 3)
    if not header and not fds:
        return None
    try:
        if len(header) < 4:
            header += _recv_exact(conn, 4 - len(header))
        (size,) = struct.unpack("!I", header)
        if len(fds) != 3 or size > MAX_REQUEST_BYTES:
            raise ValueError(f"malformed request ({len(fds)} fds, {size} bytes)")
        body = json.loads(_recv_exact(conn, size))
        request = Fork(argv=[str(a) for a in body["argv"]], cwd=str(body["cwd"]),
                       env={str(k): str(v) for k, v in body["env"].items()}, fds=fds)
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    conn.settimeout(None)
    return request


def same_user(conn: socket.socket) -> bool:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid == os.getuid()


class ForkServer:
    """The accept/fork/reap loop. ``serve`` returns only in a forked child, with what it must run."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.selector = selectors.DefaultSelector()
        self.children: dict[int, socket.socket] = {}
        self.stopping = False

    def _request_stop(self, _signum: int, _frame) -> None:  # noqa: ANN001
        self.stopping = True

    def serve(self) -> Fork | None:
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        self.listener.bind(self.socket_path)
        os.chmod(self.socket_path, 0o600)
        self.listener.listen(64)
        self.selector.register(self.listener, selectors.EVENT_READ)
        signal.signal(signal.SIGTERM, self._request_stop)
        signal.signal(signal.SIGINT, self._request_stop)
        print(f"georeg forkserver: ready on {self.socket_path} (pid {os.getpid()})", flush=True)
        while not self.stopping:
            for key, _events in self.selector.select(timeout=0.2):
                if key.fileobj is self.listener:
                    fork = self._accept()
                    if fork is not None:
                        return fork
                else:
                    self._launcher_gone(key.fileobj, key.data)
            self._reap()
        self._stop_children()
        return None

    def _accept(self) -> Fork | None:
        conn, _ = self.listener.accept()
        try:
            if not same_user(conn):
                raise PermissionError("connection from another user")
            request = read_request(conn)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            print(f"georeg forkserver: request refused: {exc}", flush=True)
            request = None
        if request is None:
            conn.close()
            return None
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            self._become_child(conn)
            return request
        for fd in request.fds:
            os.close(fd)
        try:
            conn.sendall(f"pid {pid}\n".encode())
        except OSError:
            pass
        self.children[pid] = conn
        self.selector.register(conn, selectors.EVENT_READ, data=pid)
        return None

    def _become_child(self, conn: socket.socket) -> None:
        """In the forked child: drop everything of the server's."""
        self.selector.close()
        self.listener.close()
        for other in self.children.values():
            other.close()
        conn.close()
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def _launcher_gone(self, conn: socket.socket, pid: int) -> None:
        """The launcher closed its end (it was killed): the run's process group goes too."""
        try:
            data = conn.recv(1)
        except OSError:
            data = b""
        if data:
            return
        self.selector.unregister(conn)
        signal_run(pid, signal.SIGKILL)

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.children.pop(pid, None)
            if conn is None:
                continue
            try:
                conn.sendall(f"exit {os.waitstatus_to_exitcode(status)}\n".encode())
            except OSError:
                pass
            try:
                self.selector.unregister(conn)
            except (KeyError, ValueError):
                pass
            conn.close()

    def _stop_children(self) -> None:
        for pid in list(self.children):
            signal_run(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while self.children and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.1)
        for pid in list(self.children):
            signal_run(pid, signal.SIGKILL)
        self._reap()
        self.listener.close()
        try:
            os.unlink(self.socket_path)
        except FileNotFoundError:
            pass


def run_in_child(fork: Fork) -> None:
    """Become the flow run the launcher asked for: its session, stdio, directory and environment."""
    os.setsid()
    for target, fd in enumerate(fork.fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(fork.cwd)
    os.environ.clear()
    os.environ.update(fork.env)
    sys.argv = ["prefect.engine", *fork.argv]
    import runpy

    import prefect.context
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    prefect.context.refresh_global_settings_context()
    sys.modules.pop("prefect.engine", None)  # run as __main__, not next to the preloaded copy
    updates = {} if heartbeats_wanted(fork.env) else {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
    with temporary_settings(updates=updates):
        runpy.run_module("prefect.engine", run_name="__main__", alter_sys=True)


def heartbeats_wanted(env: dict[str, str]) -> bool:
    """``GEOREG_FLOW_HEARTBEATS``: Prefect's flow-run heartbeats are events for automations (zombie-run
    detection), which the embedded server does not run; off, a run neither writes them nor waits up to
    1 s for the heartbeat thread when it ends. Prefect itself has no environment value meaning "off".
    Parsed as the ``flow_heartbeats`` setting it comes from is."""
    return TypeAdapter(bool).validate_python(env.get("GEOREG_FLOW_HEARTBEATS", "false"))


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.exit("usage: python -m georeg.deployments.forkserver SOCKET_PATH")
    started = time.monotonic()
    preload()
    print(f"georeg forkserver: preloaded in {time.monotonic() - started:.1f} s", flush=True)
    fork = ForkServer(args[0]).serve()
    if fork is not None:
        run_in_child(fork)


class FlowForkServer:
    """The fork server as a child of the stack (or of a test harness): a private socket directory, the
    process, and the environment variable that points launchers at it."""

    def __init__(self, *, env: dict[str, str], cwd: Path, log_file: Path | None) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="georeg-forkserver-"))
        self.socket_path = str(self.directory / "socket")
        self.process = ChildProcess("flow-forkserver", [sys.executable, "-m", "georeg.deployments.forkserver",
                                                        self.socket_path], env=env, cwd=cwd, log_file=log_file)

    @property
    def worker_env(self) -> dict[str, str]:
        """What the worker's environment needs so that its runs are forked here."""
        return {SOCKET_ENV: self.socket_path}

    def start(self) -> None:
        self.process.start()

    def wait_ready(self, timeout: float = 120.0) -> bool:
        """True once the server accepts connections; False if it died or took longer."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.alive():
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(self.socket_path)
                return True
            except OSError:
                time.sleep(0.1)
            finally:
                probe.close()
        return False

    def stop(self) -> None:
        self.process.stop()
        self.remove_socket_directory()

    def remove_socket_directory(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


if __name__ == "__main__":
    main()
