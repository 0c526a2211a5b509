"""The supervisor's restart policy and loop, the Prefect database next to a PostgreSQL registry, and the
scale-out compose file (the processes themselves: tests/e2e)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, text

from georeg.core.config import Settings
from georeg.deployments.cli import _parser
from georeg.deployments.prefect_setup import (
    embedded_server_database,
    ensure_postgres_database,
    prefect_database_url,
)
from georeg.deployments.processes import ChildProcess, RestartPolicy
from georeg.deployments.supervisor import Stack, Supervised
from tests.helpers import PostgresDatabase, require_postgres

ROOT = Path(__file__).resolve().parents[2]


def test_back_off_doubles_up_to_the_cap():
    policy = RestartPolicy(first_delay=1, max_delay=30, max_restarts=10, window=600)
    assert [policy.next_delay(float(t)) for t in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert policy.restarts == 7


def test_fast_failures_give_up():
    """5 restarts within 60 s, then the 6th exit within the window: give up."""
    policy = RestartPolicy()
    assert [policy.next_delay(now) for now in (0.0, 2.0, 5.0, 10.0, 20.0)] == [1, 2, 4, 8, 16]
    assert policy.next_delay(45.0) is None
    assert policy.restarts == 5


def test_a_child_that_stayed_up_starts_over():
    """Exits spread out beyond the window never give up, and the back-off falls back to the first delay."""
    policy = RestartPolicy(max_restarts=2, window=60)
    assert policy.next_delay(0.0) == 1
    assert policy.next_delay(10.0) == 2
    assert policy.next_delay(65.0) == 2, "the exit at 0 s is out of the window, the one at 10 s is not"
    assert policy.next_delay(200.0) == 1
    assert policy.next_delay(205.0) == 2
    assert policy.next_delay(210.0) is None


def _stack(tmp_path: Path) -> Stack:
    settings = Settings(data_dir=tmp_path / "data", project_dir=ROOT, flow_forkserver=False)
    return Stack(settings, role="worker")


def test_supervise_restarts_a_dying_child_then_gives_up(tmp_path, capsys):
    """A real child that exits at once: restarted with the policy's back-off, a line each time, then the
    supervisor gives up (exit 1) and the stack stops."""
    stack = _stack(tmp_path)
    marker = tmp_path / "starts"
    child = ChildProcess("flaky", [sys.executable, "-c", f"open({str(marker)!r}, 'a').write('x'); raise SystemExit(3)"],
                         env={}, cwd=tmp_path, log_file=None)
    child.start()
    stack.supervised.append(Supervised(child, RestartPolicy(first_delay=0.05, max_restarts=3, window=60)))
    try:
        assert stack.supervise(interval=0.02) == 1
    finally:
        stack.stop()
    out = capsys.readouterr().out
    assert "georeg: flaky exited (code 3); restarting in 0.05 s (restart 1)" in out
    assert "georeg: flaky exited (code 3); restarting in 0.2 s (restart 3)" in out
    assert "georeg: flaky exited (code 3) after 3 restarts within 60 s; giving up" in out
    assert marker.read_text() == "xxxx", "started once and restarted 3 times"


def test_supervise_leaves_a_healthy_child_alone_and_stops_on_request(tmp_path):
    stack = _stack(tmp_path)
    child = ChildProcess("steady", [sys.executable, "-c", "import time; time.sleep(60)"], env={}, cwd=tmp_path,
                         log_file=None)
    child.start()
    stack.supervised.append(Supervised(child, RestartPolicy()))
    rounds = iter(range(5))
    stack.stopping = lambda: next(rounds, None) is None
    try:
        assert stack.supervise(interval=0.05) == 0
        assert child.alive() and stack.supervised[0].policy.restarts == 0
    finally:
        stack.stop()
    assert not child.alive()


ARENA_PROBE = """
import ctypes, threading
from georeg.deployments.processes import cap_malloc_arenas
capped = cap_malloc_arenas() if CAP else None
start, done = threading.Barrier(12), threading.Barrier(12)
def allocate():
    start.wait()
    blocks = [bytearray(4096) for _ in range(2_000)]
    done.wait()
threads = [threading.Thread(target=allocate) for _ in range(12)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
ctypes.CDLL(None).malloc_stats()
print(capped, os.environ.get("MALLOC_ARENA_MAX"))
"""


@pytest.mark.parametrize(("environment", "cap", "arenas", "printed"), [
    ({}, True, range(2, 3), "True 2"),  # what serve, api and worker do by default
    ({"MALLOC_ARENA_MAX": "3"}, True, range(3, 4), "True 3"),  # an operator's own value wins
    ({"MALLOC_ARENA_MAX": "16"}, False, range(9, 17), "None 16"),  # glibc alone: about an arena per thread
])
def test_malloc_arenas_capped(environment, cap, arenas, printed):
    """``cap_malloc_arenas`` (called by ``georeg serve``, ``api`` and ``worker`` before anything starts) caps the
    arenas of 12 threads allocating at once, counted by glibc's ``malloc_stats``, and passes the cap on to child
    processes through the environment."""
    env = {key: value for key, value in os.environ.items() if key != "MALLOC_ARENA_MAX"} | environment
    result = subprocess.run([sys.executable, "-c", f"import os\nCAP = {cap}\n{ARENA_PROBE}"], env=env,
                            capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.split() == printed.split()
    assert result.stderr.count("Arena ") in arenas, result.stderr


@pytest.mark.parametrize(("registry", "prefect"), [
    ("postgresql+psycopg://georeg:s3cret@db.example:5433/registry",
     "postgresql+asyncpg://georeg:s3cret@db.example:5433/registry_prefect"),
    ("postgresql://postgres@127.0.0.1/georeg?sslmode=require", "postgresql+asyncpg://postgres@127.0.0.1/georeg_prefect"),
    ("postgresql+psycopg://u:p%40ss@h/db", "postgresql+asyncpg://u:p%40ss@h/db_prefect"),
    ("sqlite:////data/georeg.db", None),
])
def test_prefect_database_next_to_the_registry(registry, prefect):
    assert prefect_database_url(registry) == prefect


def test_embedded_server_keeps_sqlite_next_to_a_sqlite_registry(tmp_path):
    assert embedded_server_database(f"sqlite:///{tmp_path}/georeg.db", tmp_path / "prefect") == (
        f"sqlite+aiosqlite:///{tmp_path}/prefect/prefect.db", None)


def test_prefect_database_created_once(request, tmp_path):
    """``georeg serve`` on a PostgreSQL registry creates ``<registry>_prefect`` on the same server once."""
    registry = PostgresDatabase(require_postgres(request))
    prefect_name = f"{registry.name}_prefect"
    try:
        assert embedded_server_database(registry.url, tmp_path) == (prefect_database_url(registry.url), prefect_name)
        assert embedded_server_database(registry.url, tmp_path) == (prefect_database_url(registry.url), None)
        assert ensure_postgres_database(registry.url, prefect_name) is False
        engine = create_engine(prefect_database_url(registry.url).replace("+asyncpg", "+psycopg"))
        with engine.connect() as connection:
            assert connection.execute(text("SELECT current_database()")).scalar() == prefect_name
        engine.dispose()
    finally:
        with registry.admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{prefect_name}" WITH (FORCE)'))
        registry.drop()


def test_compose_file_runs_the_tested_commands():
    """deployments/compose.yaml parses, has the documented services, and each georeg service runs a command
    the georeg command line accepts (the ones tests/e2e run), on the shared data volume."""
    compose = yaml.safe_load((ROOT / "deployments" / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "prefect-server", "migrate", "api", "worker"}
    assert services["api"]["deploy"]["replicas"] == 2 and services["worker"]["deploy"]["replicas"] == 3
    assert services["prefect-server"]["command"][:3] == ["prefect", "server", "start"]
    prefect_db = services["prefect-server"]["environment"]["PREFECT_SERVER_DATABASE_CONNECTION_URL"]
    assert prefect_db.startswith("postgresql+asyncpg://") and "@postgres:5432/" in prefect_db
    georeg_commands = [shlex.split(services["migrate"]["command"][-1]), services["api"]["command"],
                       services["worker"]["command"]]
    parsed = []
    for command in georeg_commands:
        for part in " ".join(command).split(" && "):
            argv = part.split()
            assert argv[0] == "georeg"
            parsed.append(_parser().parse_args(argv[1:]))
    assert [args.command for args in parsed] == ["migrate", "deploy", "api", "worker"]
    assert parsed[2].workers == 2 and parsed[2].host == "0.0.0.0"
    for name in ("migrate", "api", "worker"):
        service = services[name]
        assert "georeg-data:/data" in service["volumes"]
        env = service["environment"]
        assert env["GEOREG_DATA_DIR"] == "/data"
        assert env["GEOREG_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert env["GEOREG_PREFECT_API_URL"] == "http://prefect-server:4200/api"
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "georeg_prefect" in compose["configs"]["prefect-database"]["content"]
