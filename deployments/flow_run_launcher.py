"""The command a georeg worker starts per flow run: ``python -S flow_run_launcher.py [flow-run-id]``.

It asks the flow-run fork server (``GEOREG_FORKSERVER_SOCKET``) for a process forked from one that has
Prefect and georeg's flows imported already, hands it this process's stdin and pipes for its stdout/stderr (copied
to this process's own), forwards SIGTERM/SIGINT/SIGHUP to it and exits as it exits, so that the worker sees the same
process as with ``python -m prefect.engine``, only without a new interpreter importing Prefect (about 2 s of CPU).
The run never writes to the worker's pipes itself: when the worker dies (``kill -9``, the OOM killer), its output is
dropped from then on and the run finishes, instead of ending at its next log line on a broken pipe. With no fork
server configured, or none answering, it becomes ``python -m prefect.engine`` itself (exec).

Standard library only, started with ``-S``: the launcher must cost milliseconds, not an import of site.
"""

from __future__ import annotations

import json
import os
import select
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


def request_fork(sock: socket.socket, stdio: list[int]) -> int | None:
    """Send the request (argv, cwd, environment, and the run's fds 0-2); the forked pid, or None when refused."""
    request = json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
    try:
        socket.send_fds(sock, [struct.pack("!I", len(request))], stdio)
        sock.sendall(request)
        reply = b""
        while not reply.endswith(b"\n"):  # byte by byte: what follows (the exit line) stays for relay()
            byte = sock.recv(1)
            if not byte:
                break
            reply += byte
    except OSError:
        return None
    if not reply.startswith(b"pid "):
        return None
    return int(reply.split()[1])


def signal_run(pid: int, sig: int) -> None:
    """``sig`` to a forked run's process group (what it started too), or to the run alone when it has no group yet:
    in the moment between the fork and its ``setsid`` (a launcher killed right after the fork). A run that is gone
    is fine."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def forward_signals(pid: int) -> None:
    def _forward(signum: int, _frame) -> None:  # noqa: ANN001
        signal_run(pid, signum)

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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def relay(sock: socket.socket, pid: int, pipes: dict[int, int]) -> int:
    """Copy the run's output (``pipes``: read end -> this process's fd) until the run ended; its exit code from the
    fork server (``exit CODE``), or 1 when the fork server went away. Output that cannot be written any more (the
    worker reading it died) is dropped."""
    reply, code, server_gone, broken = b"", None, False, set()
    while True:
        watched = [*pipes] if server_gone or code is not None else [sock, *pipes]
        ready = select.select(watched, [], [], 0.5)[0] if watched else []
        for source in ready:
            if source is sock:
                data = sock.recv(256)
                server_gone = not data
                reply += data
                if reply.startswith(b"exit ") and b"\n" in reply:
                    code = int(reply.split()[1])
                continue
            data = os.read(source, 1 << 16)
            if not data:
                os.close(source)
                del pipes[source]
                continue
            target = pipes[source]
            while data and target not in broken:
                try:
                    data = data[os.write(target, data):]
                except OSError:
                    broken.add(target)
        if code is not None and (not pipes or not ready):  # drained (a grandchild may hold the pipes open)
            return code
        if server_gone and (not pipes or (not ready and not _alive(pid))):
            return 1


def main() -> None:
    path = os.environ.get(SOCKET_ENV)
    sock = connect(path) if path else None
    if sock is None:
        run_engine_here()
        return
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    pid = request_fork(sock, [0, out_write, err_write])
    os.close(out_write)
    os.close(err_write)
    if pid is None:
        os.close(out_read)
        os.close(err_read)
        sock.close()
        run_engine_here()
        return
    forward_signals(pid)
    exit_like(relay(sock, pid, {out_read: 1, err_read: 2}))


if __name__ == "__main__":
    main()
