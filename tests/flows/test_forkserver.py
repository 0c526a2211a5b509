"""The flow-run fork server and its launcher (the worker's per-run command).

Through the session worker: runs are forked from the fork server, in a session of their own, with the
run's environment. Standalone, against a Prefect API that never answers (so a run hangs loading its flow
run): the launcher hands over its stdio and exit code, forwards SIGTERM, takes its run down when it is
killed itself, and becomes ``python -m prefect.engine`` when no fork server answers.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from georeg.deployments.flow_run_launcher import SOCKET_ENV, signal_run
from georeg.deployments.forkserver import FlowForkServer, heartbeats_wanted, launcher_command
from tests.flows.test_tasks import run_to_end
from tests.helpers import eventually

ROOT = Path(__file__).resolve().parents[2]


def test_runs_are_forked_with_the_run_environment(client, ds, task_forkserver, settings):
    view = run_to_end(client, ds, "test-process")
    assert view["state"] == "Succeeded", view
    result = view["result"]
    assert result["ppid"] == task_forkserver.process.pid, "forked by the fork server, not a new interpreter"
    assert result["sid"] == result["pid"], "each run is a session (and process group) of its own"
    assert result["data_dir"] == str(settings.resolved_data_dir), "the run's job environment, not the server's"
    assert result["database_url"] == settings.effective_database_url
    assert Path(result["cwd"]) == ROOT, "the deployment's pull step ran in the forked process"
    assert result["heartbeat_frequency"] is None, "GEOREG_FLOW_HEARTBEATS defaults to off"


def test_heartbeats_setting():
    assert not heartbeats_wanted({}) and not heartbeats_wanted({"GEOREG_FLOW_HEARTBEATS": "false"})
    assert heartbeats_wanted({"GEOREG_FLOW_HEARTBEATS": "true"}) and heartbeats_wanted({"GEOREG_FLOW_HEARTBEATS": "1"})


@pytest.fixture(scope="module")
def silent_api() -> Iterator[str]:
    """A Prefect API URL whose server accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/api"
    listener.close()


@pytest.fixture(scope="module")
def standalone(silent_api: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FlowForkServer, dict]]:
    home = tmp_path_factory.mktemp("forkserver-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "GEOREG_"))}
    env.update(PREFECT_API_URL=silent_api, PREFECT_HOME=str(home), PREFECT_API_REQUEST_TIMEOUT="120",
               PREFECT_CLIENT_MAX_RETRIES="0")
    server = FlowForkServer(env=env, cwd=ROOT, log_file=home / "forkserver.log")
    server.start()
    try:
        assert server.wait_ready(), server.process.tail()
        yield server, {**env, **server.worker_env}
    finally:
        server.stop()


def forked_children(server: FlowForkServer) -> list[psutil.Process]:
    return psutil.Process(server.process.pid).children()


def launch(env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen([*launcher_command(), *args], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def test_engine_output_and_exit_code_come_through_the_launcher(standalone):
    _server, env = standalone
    result = subprocess.run([*launcher_command(), "not-a-flow-run-id"], env=env, cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    assert "Invalid flow run id" in result.stderr, result.stderr


def start_hanging_run(standalone) -> tuple[subprocess.Popen, psutil.Process]:
    """A launcher whose forked run hangs loading its flow run from the silent API, and that run."""
    server, env = standalone
    before = {p.pid for p in forked_children(server)}
    launcher = launch(env, str(uuid.uuid4()))
    assert eventually(lambda: {p.pid for p in forked_children(server)} - before, timeout=30, interval=0.05)
    return launcher, next(p for p in forked_children(server) if p.pid not in before)


def test_sigterm_reaches_the_run_and_the_launcher_exits_with_it(standalone):
    launcher, run = start_hanging_run(standalone)
    launcher.send_signal(signal.SIGTERM)
    launcher.communicate(timeout=60)
    assert launcher.returncode != 0
    assert eventually(lambda: not run.is_running() or run.status() == psutil.STATUS_ZOMBIE, timeout=30, interval=0.05)


def test_a_killed_launcher_takes_its_run_down(standalone):
    launcher, run = start_hanging_run(standalone)
    launcher.kill()
    launcher.communicate(timeout=30)
    assert eventually(lambda: not run.is_running() or run.status() == psutil.STATUS_ZOMBIE, timeout=30, interval=0.05)


def test_signal_run_reaches_a_run_before_and_after_its_setsid():
    """What the server sends a run (launcher killed, server stopping) reaches it in the moment between the fork and
    its ``setsid``, when it has no process group of its own (CI once saw a run outlive its killed launcher), and
    afterwards reaches its group, what the run started included."""
    sleeper = [sys.executable, "-c", "import time; time.sleep(120)"]
    early = subprocess.Popen(sleeper)  # still in this process's group, as a run before its setsid
    late = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time\n"
                             f"subprocess.Popen({sleeper!r}); time.sleep(120)"], start_new_session=True)
    assert eventually(lambda: psutil.Process(late.pid).children(), timeout=30, interval=0.05)
    grandchild = psutil.Process(late.pid).children()[0]
    signal_run(early.pid, signal.SIGKILL)
    signal_run(late.pid, signal.SIGKILL)
    assert early.wait(timeout=10) == -signal.SIGKILL and late.wait(timeout=10) == -signal.SIGKILL
    grandchild.wait(timeout=10)


def test_without_a_fork_server_the_launcher_becomes_the_engine(standalone, tmp_path):
    _server, env = standalone
    env = {**env, SOCKET_ENV: str(tmp_path / "no-such-socket")}
    result = subprocess.run([*launcher_command(), "not-a-flow-run-id"], env=env, cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1
    assert "Invalid flow run id" in result.stderr, result.stderr


def test_connections_that_send_garbage_are_refused_and_serving_goes_on(standalone):
    server, _env = standalone
    for payload in (b"", b"\x00\x00", b"\xff\xff\xff\xff{}", b"\x00\x00\x00\x02{}"):
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.connect(server.socket_path)
        probe.sendall(payload)
        probe.close()
    test_engine_output_and_exit_code_come_through_the_launcher(standalone)
    assert server.process.alive()


def test_the_socket_is_private(standalone):
    server, _env = standalone
    assert os.stat(server.directory).st_mode & 0o077 == 0
    assert os.stat(server.socket_path).st_mode & 0o077 == 0
