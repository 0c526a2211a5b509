"""Register the ``georeg`` work pool and every deployment of ``prefect.yaml`` on a Prefect server."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import yaml

if TYPE_CHECKING:
    from prefect.flows import Flow

BASE_JOB_TEMPLATE = Path(__file__).parent / "process-base-job-template.json"
BUSY_STATUS = frozenset({429, 500, 502, 503, 504})
SETUP_RETRY_SECONDS = 60.0


class SetupError(RuntimeError):
    """The Prefect server could not be prepared."""


@dataclass(frozen=True)
class Registration:
    """The ``flow/deployment`` names on the server, and whether they were deployed now (else found there)."""

    names: list[str]
    deployed: bool


def find_project_dir(explicit: Path | None = None) -> Path:
    """The directory holding ``prefect.yaml`` and ``flows/``: explicit, the source checkout, or cwd."""
    candidates = [explicit] if explicit else []
    candidates += [Path(__file__).resolve().parents[1], Path.cwd()]
    for candidate in candidates:
        if candidate and (candidate / "prefect.yaml").is_file() and (candidate / "flows").is_dir():
            return candidate.resolve()
    raise SetupError("cannot find prefect.yaml: run from the georeg checkout or set GEOREG_PROJECT_DIR")


def declared_deployments(project_dir: Path) -> list[str]:
    """``flow-name/deployment-name`` of every deployment in prefect.yaml (flow names read from the code)."""
    return [f"{flow.name}/{declared['name']}" for declared, flow in _declared(project_dir)]


def _declared(project_dir: Path) -> list[tuple[dict, Flow]]:
    """Every deployment of prefect.yaml with its flow, loaded from its entrypoint."""
    from prefect.flows import load_flow_from_entrypoint

    spec = yaml.safe_load((project_dir / "prefect.yaml").read_text())
    declared = []
    for deployment in spec.get("deployments") or []:
        try:
            flow = load_flow_from_entrypoint(str(project_dir / deployment["entrypoint"]))
        except Exception as exc:
            raise SetupError(f"cannot load the flow of deployment {deployment.get('name')!r} "
                             f"({deployment.get('entrypoint')}): {exc}") from exc
        declared.append((deployment, flow))
    return declared


def wait_for_api(api_url: str, *, timeout: float, alive: callable = lambda: True) -> None:
    deadline = time.monotonic() + timeout
    last_error = "no answer"
    while time.monotonic() < deadline:
        if not alive():
            raise SetupError("the Prefect server exited during start-up")
        try:
            if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError as exc:
            last_error = str(exc)
        time.sleep(0.3)
    raise SetupError(f"Prefect API at {api_url} not ready after {timeout:.0f}s: {last_error}")


def engine_command() -> str:
    """The command a worker of this install starts per flow run: the flow-run launcher, which has the
    run forked from the fork server when the worker's environment names one, and otherwise becomes
    this interpreter running ``-m prefect.engine``."""
    from georeg.deployments.forkserver import launcher_command

    return shlex.join(launcher_command())


def setup_call(client: httpx.Client, method: str, url: str, **kwargs) -> httpx.Response:  # noqa: ANN003
    """One idempotent set-up request, repeated with back-off while the server answers busy (429/5xx) or
    times out, for up to ``SETUP_RETRY_SECONDS``: a Prefect server on SQLite answers 503 "database is
    locked" while its own services write, which is most likely right after it started. The last busy
    answer is returned (a timeout re-raised) when the time is up; connection errors are not retried."""
    deadline = time.monotonic() + SETUP_RETRY_SECONDS
    delay = 0.25
    while True:
        try:
            response = client.request(method, url, **kwargs)
        except httpx.TimeoutException:
            if time.monotonic() + delay > deadline:
                raise
        else:
            if response.status_code not in BUSY_STATUS or time.monotonic() + delay > deadline:
                return response
        time.sleep(delay)
        delay = min(delay * 2, 4.0)


def ensure_work_pool(api_url: str, name: str) -> None:
    """Create the process work pool (or refresh its base job template), without a concurrency limit.

    The pool's default command is the flow-run launcher (see :func:`engine_command`; the worker is
    expected on this machine, like the deployments' pull step names this project directory). Without
    a command a process worker starts Prefect's workspace supervisor, which prepares the run and then
    execs the engine in a second fresh interpreter: two Python starts and Prefect imports per run.

    Concurrency is the worker's (``prefect worker start --limit``, see :func:`worker_command`), not the
    pool's: the server-side slot leasing of a pool limit stalled the embedded SQLite server for 60 s at
    a time under a burst (writers waiting out SQLite's busy timeout), while the worker's own limit
    leaves the runs Scheduled at no cost to the server. A limit left on the pool by an older georeg
    is cleared here.
    """
    template = json.loads(BASE_JOB_TEMPLATE.read_text())
    template["variables"]["properties"]["command"]["default"] = engine_command()
    settings = {"base_job_template": template, "concurrency_limit": None}
    try:
        with httpx.Client(base_url=api_url, timeout=30) as client:
            response = setup_call(client, "POST", "/work_pools/", json={"name": name, "type": "process", **settings})
            if response.status_code == 409:
                response = setup_call(client, "PATCH", f"/work_pools/{name}", json=settings)
    except httpx.HTTPError as exc:
        raise SetupError(f"Prefect API at {api_url} not reachable: {exc}") from exc
    if response.status_code >= 400:
        raise SetupError(f"cannot create work pool {name!r}: HTTP {response.status_code} {response.text}")


def deploy_all(api_url: str, project_dir: Path, *, work_pool: str) -> None:
    """Create or update every prefect.yaml deployment on ``work_pool`` through the REST API, storing what
    ``prefect deploy --all`` run from ``project_dir`` stores (flow, entrypoint, description, tags, parameters and
    their schema, schedules, the pull step setting the working directory to ``project_dir``) in one process and
    about a second, where the CLI took about 10 s of which 8 s of CPU. Operators may still run the CLI on the same
    prefect.yaml."""
    from prefect.utilities.callables import parameter_schema

    for declared, flow in _declared(project_dir):
        _upsert_deployment(api_url, flow_name=flow.name, deployment={
            "name": declared["name"], "entrypoint": declared["entrypoint"], "version": flow.version,
            "description": declared.get("description"), "tags": declared.get("tags") or [],
            "parameters": declared.get("parameters") or {}, "enforce_parameter_schema": True,
            "parameter_openapi_schema": parameter_schema(flow).model_dump_for_openapi(),
            "schedules": [{"schedule": {"cron": schedule["cron"], "timezone": schedule.get("timezone", "UTC")},
                           "active": schedule.get("active", True)} for schedule in declared.get("schedules") or []],
        }, project_dir=project_dir, work_pool=work_pool)


def verify_deployments(api_url: str, expected: list[str]) -> list[str]:
    """Names of ``expected`` deployments missing on the server."""
    missing = []
    with httpx.Client(base_url=api_url, timeout=30) as client:
        for name in expected:
            if setup_call(client, "GET", f"/deployments/name/{name}").status_code != 200:
                missing.append(name)
    return missing


def worker_command(*, work_pool: str, name: str, limit: int | None) -> list[str]:
    """A process worker of this install on ``work_pool`` running at most ``limit`` flow runs at once."""
    command = [sys.executable, "-m", "prefect", "worker", "start", "--pool", work_pool, "--type", "process",
               "--name", name]
    return command + (["--limit", str(limit)] if limit else [])


def deployment_fingerprint(project_dir: Path, api_url: str) -> str:
    """What a deployment of ``project_dir`` to ``api_url`` depends on: the server, prefect.yaml, the flow
    modules (names, parameters, entrypoints), the project's place on disk and the Prefect version."""
    from importlib.metadata import version

    digest = hashlib.sha256(f"{api_url}\n{project_dir}\n{version('prefect')}\n".encode())
    for path in [project_dir / "prefect.yaml", *sorted((project_dir / "flows").rglob("*.py"))]:
        digest.update(f"{path.relative_to(project_dir)}\n".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def register_all(
    api_url: str, *, work_pool: str, project_dir: Path, state_file: Path | None = None,
) -> Registration:
    """Work pool, then every prefect.yaml deployment, then a check that each one exists on the server.

    With a ``state_file``, the deployment is skipped when that file holds the :func:`deployment_fingerprint` of
    the last deployment and every deployment is still on the server, as when ``georeg serve`` restarts on the same
    data dir with the same code."""
    ensure_work_pool(api_url, work_pool)
    expected = declared_deployments(project_dir)
    fingerprint = deployment_fingerprint(project_dir, api_url)
    if state_file is not None and _read_text(state_file) == fingerprint and not verify_deployments(api_url, expected):
        return Registration(names=expected, deployed=False)
    if state_file is not None:
        state_file.unlink(missing_ok=True)
    deploy_all(api_url, project_dir, work_pool=work_pool)
    missing = verify_deployments(api_url, expected)
    if missing:
        raise SetupError(f"deployments missing after deploy: {', '.join(missing)}")
    if state_file is not None:
        state_file.write_text(fingerprint)
    return Registration(names=expected, deployed=True)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def register_deployment(
    api_url: str, *, flow_name: str, name: str, entrypoint: str, project_dir: Path, work_pool: str
) -> str:
    """Create or update one deployment of a flow not in prefect.yaml (no schedule, parameters unchecked); its id."""
    return _upsert_deployment(api_url, flow_name=flow_name, deployment={
        "name": name, "entrypoint": entrypoint, "enforce_parameter_schema": False}, project_dir=project_dir,
        work_pool=work_pool)


def _upsert_deployment(api_url: str, *, flow_name: str, deployment: dict, project_dir: Path, work_pool: str) -> str:
    """The flow, then ``deployment`` on ``work_pool`` with its working directory ``project_dir``; its id (the
    server updates a deployment of the same flow and name, and replaces its schedules)."""
    try:
        with httpx.Client(base_url=api_url, timeout=30) as client:
            flow = setup_call(client, "POST", "/flows/", json={"name": flow_name})
            if flow.status_code >= 400:
                raise SetupError(f"cannot register flow {flow_name}: HTTP {flow.status_code} {flow.text}")
            response = setup_call(client, "POST", "/deployments/", json={
                **deployment, "flow_id": flow.json()["id"], "work_pool_name": work_pool,
                "pull_steps": [{"prefect.deployments.steps.set_working_directory": {"directory": str(project_dir)}}],
            })
    except httpx.HTTPError as exc:
        raise SetupError(f"Prefect API at {api_url} not reachable: {exc}") from exc
    if response.status_code >= 400:
        raise SetupError(f"cannot register {flow_name}/{deployment['name']}: HTTP {response.status_code} "
                         f"{response.text}")
    return response.json()["id"]


def prefect_database_url(registry_url: str) -> str | None:
    """The embedded Prefect server's database next to a PostgreSQL registry: the same server and user, the
    database ``<registry database>_prefect``, through asyncpg (Prefect's PostgreSQL driver). None for any
    other registry (the server then keeps SQLite in the Prefect home). Query parameters are dropped: they
    are the registry driver's (psycopg), not asyncpg's."""
    from sqlalchemy.engine import make_url

    url = make_url(registry_url)
    if url.get_backend_name() != "postgresql" or not url.database:
        return None
    prefect_url = url.set(drivername="postgresql+asyncpg", database=f"{url.database}_prefect", query={})
    return prefect_url.render_as_string(hide_password=False)


def embedded_server_database(registry_url: str, prefect_home: Path) -> tuple[str, str | None]:
    """The embedded Prefect server's database: SQLite in the Prefect home, or next to a PostgreSQL registry
    :func:`prefect_database_url`, created if missing. Also the name of a database created now (else None)."""
    from sqlalchemy.engine import make_url

    postgres_url = prefect_database_url(registry_url)
    if postgres_url is None:
        return f"sqlite+aiosqlite:///{prefect_home / 'prefect.db'}", None
    database = make_url(postgres_url).database
    return postgres_url, database if ensure_postgres_database(registry_url, database) else None


def ensure_postgres_database(registry_url: str, database: str) -> bool:
    """Create ``database`` on the registry's PostgreSQL server unless it exists (connecting as the registry
    does); True if it was created. The user needs CREATEDB, or an administrator creates it beforehand."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    engine = create_engine(registry_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            exists = connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": database})
            if exists.first() is not None:
                return False
            quoted = connection.dialect.identifier_preparer.quote_identifier(database)
            connection.execute(text(f"CREATE DATABASE {quoted}"))
            return True
    except SQLAlchemyError as exc:
        raise SetupError(f"cannot create the Prefect database {database!r} on the registry's server: {exc}") from exc
    finally:
        engine.dispose()


def prefect_env(*, api_url: str, prefect_home: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for every Prefect process of the stack."""
    env = dict(base if base is not None else os.environ)
    env.update(
        {
            "PREFECT_API_URL": api_url,
            "PREFECT_HOME": str(prefect_home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_WORKER_QUERY_SECONDS": env.get("PREFECT_WORKER_QUERY_SECONDS", "0.5"),
            "PREFECT_WORKER_PREFETCH_SECONDS": env.get("PREFECT_WORKER_PREFETCH_SECONDS", "5"),
            "PREFECT_CLI_COLORS": "false",
            # a busy server (SQLite under a burst) answers 503: retry for ~4 min (2 s, 4 s, ... 128 s)
            # instead of the default ~1 min, after which the worker gives up and the run crashes
            "PREFECT_CLIENT_MAX_RETRIES": env.get("PREFECT_CLIENT_MAX_RETRIES", "7"),
        }
    )
    return env
