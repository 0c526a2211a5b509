"""Child processes of the embedded stack, each in its own process group.

Stopping a child signals its whole group (the Prefect server and worker start their own children),
and every child gets SIGTERM from the kernel if the supervisor dies without cleaning up.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def signal_group(pgid: int, sig: int) -> None:
    """``sig`` to process group ``pgid``; a group that is gone already is fine."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


class ChildProcess:
    """One named child: started in a new session, stopped by signalling its process group."""

    def __init__(self, name: str, command: list[str], *, env: dict[str, str], cwd: Path, log_file: Path | None) -> None:
        self.name = name
        self.command = command
        self.env = env
        self.cwd = cwd
        self.log_file = log_file
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        output = None
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            output = open(self.log_file, "ab")  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                self.command, env=self.env, cwd=self.cwd, stdout=output, stderr=subprocess.STDOUT if output else None,
                stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent,
            )
        finally:
            if output is not None:
                output.close()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def returncode(self) -> int | None:
        return self.process.poll() if self.process else None

    def stop(self, *, timeout: float = 15.0) -> None:
        """SIGTERM the group, wait, then SIGKILL whatever is left of it."""
        if self.process is None:
            return
        pgid = self.process.pid
        signal_group(pgid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            signal_group(pgid, signal.SIGKILL)
            self.process.wait(timeout=5)
        deadline = time.monotonic() + 5
        while self._group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if self._group_alive(pgid):
            signal_group(pgid, signal.SIGKILL)

    def tail(self, lines: int = 30) -> str:
        if self.log_file is None or not self.log_file.exists():
            return ""
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    @staticmethod
    def _group_alive(pgid: int) -> bool:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
