"""``georeg serve``: the embedded stack (Prefect server on SQLite, one worker, the API).

Start order: registry bootstrap -> Prefect server -> flow-run fork server -> work pool + deployments ->
worker -> API. Stop order on Ctrl-C/SIGTERM (or when a child dies): API, worker, fork server, server.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from georeg.core.bootstrap import bootstrap
from georeg.core.config import Settings
from georeg.core.db import make_engine
from georeg.deployments.forkserver import FlowForkServer
from georeg.deployments.prefect_setup import (
    SetupError,
    find_project_dir,
    prefect_env,
    register_all,
    wait_for_api,
    worker_command,
)
from georeg.deployments.processes import ChildProcess

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


class Stack:
    """The children of one ``georeg serve`` and the order they start and stop in."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.project_dir = find_project_dir(settings.project_dir)
        self.logs = settings.resolved_data_dir / "logs"
        self.api_url = f"http://{settings.api_host}:{settings.api_port}"
        self.prefect_api_url = settings.effective_prefect_api_url
        self.embedded_prefect = settings.prefect_api_url is None
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
        self.children: list[ChildProcess] = []
        self.forkserver: FlowForkServer | None = None

    def _child(self, name: str, command: list[str], *, log: bool = True, extra_env: dict | None = None) -> ChildProcess:
        env = {**self.env, **(extra_env or {})}
        child = ChildProcess(
            name, command, env=env, cwd=self.project_dir, log_file=self.logs / f"{name}.log" if log else None
        )
        child.start()
        self.children.append(child)
        return child

    def start(self) -> None:
        settings = self.settings
        python = sys.executable
        if self.embedded_prefect:
            ensure_port_free(settings.prefect_host, settings.prefect_port, "Prefect server")
        ensure_port_free(settings.api_host, settings.api_port, "API")
        if self.embedded_prefect:
            database = settings.prefect_home / "prefect.db"
            server = self._child(
                "prefect-server",
                [python, "-m", "prefect", "server", "start", "--host", settings.prefect_host,
                 "--port", str(settings.prefect_port)],
                extra_env={"PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{database}",
                           "PREFECT_UI_API_URL": self.prefect_api_url,
                           **{name: os.environ.get(name, value) for name, value in EMBEDDED_SERVER_ENV.items()}},
            )
            _say(f"starting Prefect server on {self.prefect_api_url} (log: {server.log_file})")
            wait_for_api(self.prefect_api_url, timeout=120, alive=server.alive)
        else:
            wait_for_api(self.prefect_api_url, timeout=30)
        forkserver = None
        if settings.flow_forkserver:
            forkserver = FlowForkServer(env=self.env, cwd=self.project_dir, log_file=self.logs / "flow-forkserver.log")
            forkserver.start()
            self.forkserver = forkserver
            self.children.append(forkserver.process)
        _say("deploying prefect.yaml")
        registration = register_all(
            self.prefect_api_url, work_pool=settings.work_pool, project_dir=self.project_dir, env=self.env,
            log_file=self.logs / "deploy.log", state_file=settings.prefect_home / DEPLOYED_FINGERPRINT_FILE,
        )
        if not registration.deployed:
            _say("deployments unchanged since the last start and all on the server: not redeployed")
        worker_env = {}
        if forkserver is not None:
            if forkserver.wait_ready():
                worker_env = forkserver.worker_env
            else:
                _say(f"flow-run fork server not ready (log: {forkserver.process.log_file}); runs start the engine")
        self._child(
            "prefect-worker",
            worker_command(work_pool=settings.work_pool, name=f"georeg-{socket.gethostname()}-{os.getpid()}",
                           limit=settings.work_pool_concurrency),
            extra_env=worker_env,
        )
        api = self._child(
            "api",
            [python, "-m", "uvicorn", "georeg.api.app:create_app", "--factory", "--host", settings.api_host,
             "--port", str(settings.api_port), "--no-access-log"],
            log=False,
        )
        wait_for_http(f"{self.api_url}/version", timeout=60, child=api)

    def first_dead_child(self) -> ChildProcess | None:
        return next((child for child in self.children if not child.alive()), None)

    def stop(self) -> None:
        for child in reversed(self.children):
            if child.pid is not None:
                _say(f"stopping {child.name}")
            child.stop()
        self.children.clear()
        if self.forkserver is not None:
            self.forkserver.remove_socket_directory()  # its process was stopped with the children


def serve(settings: Settings | None = None) -> int:
    """Run the embedded stack until interrupted. Returns the process exit code."""
    settings = settings or Settings()
    stop_requested = {"signal": None}

    def _request_stop(signum: int, _frame) -> None:  # noqa: ANN001
        stop_requested["signal"] = signum

    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)
    try:
        with data_dir_lock(settings):
            engine = make_engine(settings.effective_database_url)
            try:
                report = bootstrap(settings, engine)
            finally:
                engine.dispose()
            stack = Stack(settings)
            try:
                stack.start()
                _banner(settings, stack, report.generated_password)
                while stop_requested["signal"] is None:
                    dead = stack.first_dead_child()
                    if dead is not None:
                        _say(f"{dead.name} exited unexpectedly (code {dead.returncode()}); shutting down")
                        print(dead.tail(), file=sys.stderr)
                        return 1
                    time.sleep(0.5)
                _say("shutting down")
                return 0
            except SetupError as exc:
                _say(f"start-up failed: {exc}")
                for child in stack.children:
                    tail = child.tail(15)
                    if tail:
                        print(f"--- {child.name} log tail ---\n{tail}", file=sys.stderr)
                return 1
            finally:
                stack.stop()
                _say("stopped")
    except SetupError as exc:
        _say(f"start-up failed: {exc}")
        return 1


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
