"""The command a georeg worker starts per flow run: ``python -S flow_run_launcher.py [flow-run-id]``.

It asks the flow-run fork server (``GEOREG_FORKSERVER_SOCKET``) for a process forked from one that has
Prefect and georeg's flows imported already, hands it this process's stdin/stdout/stderr, forwards
SIGTERM/SIGINT/SIGHUP to it and exits as it exits, so that the worker sees the same process as with
``python -m prefect.engine``, only without a new interpreter importing Prefect (about 2 s of CPU). With
no fork server configured, or none answering, it becomes ``python -m prefect.engine`` itself (exec).

Standard library only, started with ``-S``: the launcher must cost milliseconds, not an import of site.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys
import time

SOCKET_ENV = "GEOREG_FORKSERVER_SOCKET"
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def run_engine_here() -> None:
    """Replace this process with ``python -m prefect.engine`` (with site, unlike the launcher)."""
    os.execv(sys.executable, [sys.executable, "-m", "prefect.engine", *sys.argv[1:]])


def connect(path: str) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        return None
    return sock


def request_fork(sock: socket.socket) -> int | None:
    """Send the request (argv, cwd, environment, and fds 0-2); the forked pid, or None when refused."""
    request = json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
    try:
        socket.send_fds(sock, [struct.pack("!I", len(request))], [0, 1, 2])
        sock.sendall(request)
        reply = sock.makefile("rb").readline()
    except OSError:
        return None
    if not reply.startswith(b"pid "):
        return None
    return int(reply.split()[1])


def forward_signals(pid: int) -> None:
    def _forward(signum: int, _frame) -> None:  # noqa: ANN001
        try:
            os.killpg(pid, signum)
        except ProcessLookupError:
            pass

    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, _forward)


def exit_like(code: int) -> None:
    """Exit with ``code`` as the fork server reported it: negative means killed by that signal."""
    if code < 0:
        if -code != signal.SIGKILL:
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        time.sleep(1)
        code = 128 - code
    sys.exit(code)


def main() -> None:
    path = os.environ.get(SOCKET_ENV)
    sock = connect(path) if path else None
    if sock is None:
        run_engine_here()
        return
    pid = request_fork(sock)
    if pid is None:
        sock.close()
        run_engine_here()
        return
    forward_signals(pid)
    reader = sock.makefile("rb")
    line = reader.readline()
    if line.startswith(b"exit "):
        exit_like(int(line.split()[1]))
    # the fork server went away: wait for the run's process without it
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.5)
    sys.exit(1)


if __name__ == "__main__":
    main()
