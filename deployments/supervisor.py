"""``georeg serve`` (the embedded stack: Prefect server, fork server, worker, API) and ``georeg worker``
(fork server and worker only, on an external Prefect API), each a supervisor of its child processes.

serve starts: registry bootstrap -> Prefect server -> flow-run fork server -> work pool + deployments ->
worker -> API; worker starts: fork server -> worker. A child that exits is restarted after a back-off
(:class:`RestartPolicy`: 1 s doubling to 30 s) and waited for (the Prefect server's API, the fork server's
socket, the API's ``/version``); after 5 restarts of one child within 60 s the supervisor gives up, stops
everything and exits 1. The fork server comes back on the same socket path, so the worker's environment
stays right and the worker keeps running; runs launched meanwhile start the engine themselves. Stop order on
Ctrl-C/SIGTERM: the reverse of the start order.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from georeg.core.bootstrap import bootstrap
from georeg.core.config import Settings
from georeg.core.db import make_engine
from georeg.deployments.forkserver import FlowForkServer
from georeg.deployments.prefect_setup import (
    SetupError,
    embedded_server_database,
    find_project_dir,
    prefect_env,
    register_all,
    wait_for_api,
    worker_command,
)
from georeg.deployments.processes import ChildProcess, RestartPolicy

READY_LINE = "georeg: ready"
DEPLOYED_FINGERPRINT_FILE = "deployed.sha256"  # in the Prefect home: see register_all

# The embedded server's SQLite takes one writer at a time. Runs queue Scheduled behind the work pool's
# concurrency limit by design, so the late-runs service would only add a "Late" write per queued run
# (mapped to Scheduled anyway); georeg defines no automations, so triggers have nothing to evaluate.
# Requests wait up to 60 s for a database connection instead of failing after 30 s. The environment
# may set any of these otherwise.
EMBEDDED_SERVER_ENV = {
    "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "false",
    "PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_TIMEOUT": "60",
}


WORKER_START_TIMEOUT = 120.0  # a `georeg worker` waits this long for the Prefect API at start


def _say(message: str) -> None:
    print(f"georeg: {message}", flush=True)


@contextmanager
def data_dir_lock(settings: Settings) -> Iterator[None]:
    """One ``georeg serve`` per data dir at a time."""
    settings.ensure_layout()
    handle = open(settings.resolved_data_dir / "serve.lock", "w")  # noqa: SIM115
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        handle.close()
        raise SetupError(f"another 'georeg serve' is running on {settings.resolved_data_dir}") from exc
    try:
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def ensure_port_free(host: str, port: int, what: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise SetupError(f"port {port} for the {what} on {host} is not free: {exc.strerror}") from exc


def wait_for_http(url: str, *, timeout: float, child: ChildProcess) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise SetupError(f"{child.name} exited during start-up (code {child.returncode()})")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SetupError(f"{child.name} not answering at {url} after {timeout:.0f}s")


@dataclass
class Supervised:
    """A child under supervision: its restart policy, how to tell it is serving again after a restart
    (raises :class:`SetupError` if not), and whether its process group outlives it (a worker's runs)."""

    child: ChildProcess
    policy: RestartPolicy
    ready: Callable[[], None] | None = None
    keep_group: bool = False
    restart_at: float | None = None  # monotonic time of a pending restart


class Stack:
    """The children of one ``georeg serve`` (``role="serve"``) or ``georeg worker`` (``role="worker"``), the
    order they start and stop in, and their restarts."""

    def __init__(self, settings: Settings, *, role: str = "serve", stopping: Callable[[], bool] = lambda: False,
                 worker_name: str | None = None, worker_limit: int | None = None) -> None:
        self.settings = settings
        self.role = role
        self.stopping = stopping
        self.worker_name = worker_name or f"georeg-{socket.gethostname()}-{os.getpid()}"
        self.worker_limit = worker_limit or settings.work_pool_concurrency
        self.project_dir = find_project_dir(settings.project_dir)
        # serve logs each child to a file in the data dir; worker processes (many on one shared data dir)
        # write to the supervisor's output
        self.logs = settings.resolved_data_dir / "logs" if role == "serve" else None
        self.api_url = f"http://{settings.api_host}:{settings.api_port}"
        self.prefect_api_url = settings.effective_prefect_api_url
        self.embedded_prefect = role == "serve" and settings.prefect_api_url is None
        settings.prefect_home.mkdir(parents=True, exist_ok=True)
        self.env = prefect_env(api_url=self.prefect_api_url, prefect_home=settings.prefect_home)
        self.env.update(
            {
                "GEOREG_DATA_DIR": str(settings.resolved_data_dir),
                "GEOREG_PROJECT_DIR": str(self.project_dir),
                "GEOREG_PREFECT_API_URL": self.prefect_api_url,
                "PYTHONUNBUFFERED": "1",
                # worker, engine and server are this one install: skip the version handshake per client
                "PREFECT_CLIENT_SERVER_VERSION_CHECK_ENABLED": "false",
            }
        )
        self.supervised: list[Supervised] = []
        self.forkserver: FlowForkServer | None = None

    @property
    def children(self) -> list[ChildProcess]:
        return [entry.child for entry in self.supervised]

    def _log_file(self, name: str) -> Path | None:
        return self.logs / f"{name}.log" if self.logs is not None else None

    def _child(self, name: str, command: list[str], *, log: bool = True, extra_env: dict | None = None,
               ready: Callable[[], None] | None = None, keep_group: bool = False) -> ChildProcess:
        env = {**self.env, **(extra_env or {})}
        log_file = self._log_file(name) if log else None
        child = ChildProcess(name, command, env=env, cwd=self.project_dir, log_file=log_file)
        child.start()
        self.supervised.append(Supervised(child, RestartPolicy(), ready=ready, keep_group=keep_group))
        return child

    def start(self) -> None:
        settings = self.settings
        if self.embedded_prefect:
            ensure_port_free(settings.prefect_host, settings.prefect_port, "Prefect server")
        if self.role == "serve":
            ensure_port_free(settings.api_host, settings.api_port, "API")
        if self.embedded_prefect:
            self._start_prefect_server()
        else:
            timeout = WORKER_START_TIMEOUT if self.role == "worker" else 30
            _say(f"waiting for the Prefect API at {self.prefect_api_url}")
            wait_for_api(self.prefect_api_url, timeout=timeout)
        if settings.flow_forkserver:
            self._start_forkserver()
        if self.role == "serve":
            self._register()
        self._start_worker()
        if self.role == "serve":
            self._start_api()

    def _start_prefect_server(self) -> None:
        settings = self.settings
        database_url = self._prefect_database_url()
        server: ChildProcess | None = None

        def ready() -> None:
            wait_for_api(self.prefect_api_url, timeout=120, alive=lambda: server.alive() and not self.stopping())

        server = self._child(
            "prefect-server",
            [sys.executable, "-m", "prefect", "server", "start", "--host", settings.prefect_host,
             "--port", str(settings.prefect_port)],
            extra_env={"PREFECT_SERVER_DATABASE_CONNECTION_URL": database_url,
                       "PREFECT_UI_API_URL": self.prefect_api_url,
                       **{name: os.environ.get(name, value) for name, value in EMBEDDED_SERVER_ENV.items()}},
            ready=ready,
        )
        _say(f"starting Prefect server on {self.prefect_api_url} (log: {server.log_file})")
        ready()

    def _prefect_database_url(self) -> str:
        """SQLite in the Prefect home, or next to a PostgreSQL registry a database of its own on that server (no
        single SQLite writer then); ``PREFECT_SERVER_DATABASE_CONNECTION_URL`` in the environment wins."""
        if os.environ.get("PREFECT_SERVER_DATABASE_CONNECTION_URL"):
            return os.environ["PREFECT_SERVER_DATABASE_CONNECTION_URL"]
        url, created = embedded_server_database(self.settings.effective_database_url, self.settings.prefect_home)
        if created:
            _say(f"created the Prefect database {created!r} on the registry's PostgreSQL server")
        return url

    def _start_forkserver(self) -> None:
        forkserver = FlowForkServer(env=self.env, cwd=self.project_dir, log_file=self._log_file("flow-forkserver"))
        forkserver.start()
        self.forkserver = forkserver

        def ready() -> None:
            if not forkserver.wait_ready():
                raise SetupError("the flow-run fork server is not accepting connections")

        self.supervised.append(Supervised(forkserver.process, RestartPolicy(), ready=ready))

    def _register(self) -> None:
        _say("deploying prefect.yaml")
        registration = register_all(
            self.prefect_api_url, work_pool=self.settings.work_pool, project_dir=self.project_dir,
            state_file=self.settings.prefect_home / DEPLOYED_FINGERPRINT_FILE,
        )
        if not registration.deployed:
            _say("deployments unchanged since the last start and all on the server: not redeployed")

    def _start_worker(self) -> None:
        worker_env = {}
        if self.forkserver is not None:
            if self.forkserver.wait_ready():
                worker_env = self.forkserver.worker_env
            else:
                _say(f"flow-run fork server not ready (log: {self.forkserver.process.log_file}); runs start the engine")
        self._child(
            "prefect-worker",
            worker_command(work_pool=self.settings.work_pool, name=self.worker_name, limit=self.worker_limit),
            extra_env=worker_env, keep_group=True,
        )

    def _start_api(self) -> None:
        settings = self.settings
        api: ChildProcess | None = None

        def ready() -> None:
            wait_for_http(f"{self.api_url}/version", timeout=60, child=api)

        api = self._child(
            "api",
            [sys.executable, "-m", "uvicorn", "georeg.api.app:create_app", "--factory", "--host", settings.api_host,
             "--port", str(settings.api_port), "--no-access-log"],
            log=False, ready=ready,
        )
        ready()

    def tend(self, now: float) -> bool:
        """Notice children that exited and restart those whose back-off is over; False once one of them
        exited too often (the caller stops the stack). Children are seen in start order, so a restarted
        Prefect server answers before a dependent due at the same time starts again."""
        for entry in self.supervised:
            child = entry.child
            if entry.restart_at is None:
                if child.alive():
                    continue
                code = child.returncode()
                delay = entry.policy.next_delay(now)
                if delay is None:
                    policy = entry.policy
                    _say(f"{child.name} exited (code {code}) after {policy.max_restarts} restarts within "
                         f"{policy.window:g} s; giving up")
                    tail = child.tail()
                    if tail:
                        print(tail, file=sys.stderr)
                    return False
                entry.restart_at = now + delay
                _say(f"{child.name} exited (code {code}); restarting in {delay:g} s (restart {entry.policy.restarts})")
            elif now >= entry.restart_at and not self.stopping():
                entry.restart_at = None
                self._restart(entry)
        return True

    def _restart(self, entry: Supervised) -> None:
        child = entry.child
        _say(f"restarting {child.name}")
        child.restart(keep_group=entry.keep_group)
        if entry.ready is None:
            return
        try:
            entry.ready()
        except SetupError as exc:
            if self.stopping():
                return
            _say(f"{child.name} not serving after its restart: {exc}")
            if child.alive():
                child.stop()  # counted as a failed restart on the next round

    def supervise(self, interval: float = 0.5) -> int:
        """Keep the children up until ``stopping()``: 0, or 1 when one of them failed too often."""
        while not self.stopping():
            if not self.tend(time.monotonic()):
                return 1
            time.sleep(interval)
        return 0

    def stop(self) -> None:
        for child in reversed(self.children):
            if child.pid is not None:
                _say(f"stopping {child.name}")
            child.stop()
        self.supervised.clear()
        if self.forkserver is not None:
            self.forkserver.remove_socket_directory()  # its process was stopped with the children


def _install_stop_handlers() -> Callable[[], bool]:
    """SIGINT/SIGTERM ask the supervisor to stop; the returned callable says whether one came."""
    stop_requested = {"signal": None}

    def _request_stop(signum: int, _frame) -> None:  # noqa: ANN001
        stop_requested["signal"] = signum

    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)
    return lambda: stop_requested["signal"] is not None


def _run(stack: Stack, on_ready: Callable[[], None]) -> int:
    """Start ``stack``, announce it, supervise it until stopped; always stop it. The exit code."""
    try:
        stack.start()
        on_ready()
        code = stack.supervise()
        _say("shutting down" if code == 0 else "too many restarts; shutting down")
        return code
    except SetupError as exc:
        if stack.stopping():
            _say("start-up interrupted")
            return 1
        _say(f"start-up failed: {exc}")
        for child in stack.children:
            tail = child.tail(15)
            if tail:
                print(f"--- {child.name} log tail ---\n{tail}", file=sys.stderr)
        return 1
    finally:
        stack.stop()
        _say("stopped")


def serve(settings: Settings | None = None) -> int:
    """Run the embedded stack until interrupted. Returns the process exit code."""
    settings = settings or Settings()
    stopping = _install_stop_handlers()
    try:
        with data_dir_lock(settings):
            engine = make_engine(settings.effective_database_url)
            try:
                report = bootstrap(settings, engine)
            finally:
                engine.dispose()
            stack = Stack(settings, stopping=stopping)
            return _run(stack, lambda: _banner(settings, stack, report.generated_password))
    except SetupError as exc:
        _say(f"start-up failed: {exc}")
        return 1


def run_worker(settings: Settings, *, name: str | None = None, limit: int | None = None) -> int:
    """``georeg worker``: a Prefect worker on the work pool (and its flow-run fork server), supervised like
    ``georeg serve``'s, until interrupted. Returns the process exit code."""
    stopping = _install_stop_handlers()
    try:
        stack = Stack(settings, role="worker", stopping=stopping, worker_name=name, worker_limit=limit)
    except SetupError as exc:
        _say(f"start-up failed: {exc}")
        return 1

    def announce() -> None:
        fork = "with a flow-run fork server" if stack.forkserver is not None else "without a fork server"
        _say(f"worker {stack.worker_name} on pool {settings.work_pool} at {stack.prefect_api_url} "
             f"(limit {stack.worker_limit}, {fork})")
        print(READY_LINE, flush=True)

    return _run(stack, announce)


def _banner(settings: Settings, stack: Stack, generated_password: str | None) -> None:
    ui_url = stack.prefect_api_url.removesuffix("/api")
    lines = [
        f"API:         {stack.api_url}",
        f"API docs:    {stack.api_url}/docs",
        f"Prefect UI:  {ui_url}",
        f"Data dir:    {settings.resolved_data_dir} (logs in {stack.logs})",
    ]
    if generated_password:
        lines.append(f"Admin login: {settings.admin_username} / {generated_password}  "
                     "(shown once; only its hash is kept)")
    else:
        lines.append(f"Admin login: {settings.admin_username} (password from GEOREG_ADMIN_PASSWORD or set earlier)")
    for line in lines:
        print(f"  {line}", flush=True)
    print(READY_LINE, flush=True)
