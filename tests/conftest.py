"""Shared fixtures: registry databases (SQLite and PostgreSQL), the app, users, a dataset and the Prefect harness.

Importing this file opens no connection: PostgreSQL is probed by the ``postgres_base_url`` fixture. The helpers
that are not fixtures live in ``tests/helpers.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from georeg.api.app import create_app
from georeg.core.config import Settings
from georeg.core.db import make_engine, migrate
from tests.helpers import (
    ADMIN_PASSWORD,
    BACKENDS,
    PostgresDatabase,
    app_settings,
    create_dataset,
    free_port,
    login,
    postgres_answers,
    postgres_test_url,
    require_postgres,
    truncate_all,
)

pytest_plugins = [
    "tests.csw_fixtures",  # pycsw CSW server + NBS-like file server (session, built on first use)
    "tests.netcdf_fixtures",  # NetCDF files + an OPeNDAP server (xpublish-opendap) (session, built on first use)
    "tests.hyspex_fixtures",  # a HySpex campaign in its own pycsw + OPeNDAP server (session, built on first use)
    "tests.worker_fixtures",  # the session's Prefect worker and fork server (session, started on first use)
]


@pytest.fixture(scope="session")
def postgres_base_url() -> str | None:
    """The PostgreSQL server for registry tests (``GEOREG_TEST_POSTGRES_URL`` or the default), or None when
    nothing answers there. Probed once, on first use."""
    url = postgres_test_url()
    return url if postgres_answers(url) else None


@pytest.fixture(scope="session")
def database_urls(tmp_path_factory: pytest.TempPathFactory, postgres_base_url: str | None) -> Iterator[dict[str, str]]:
    """Migrated registry databases for the session: ``sqlite`` always, ``postgresql`` (a database of its own,
    dropped at the end) only when a server answers."""
    urls = {"sqlite": f"sqlite:///{tmp_path_factory.mktemp('registry') / 'georeg.db'}"}
    postgres = PostgresDatabase(postgres_base_url) if postgres_base_url else None
    if postgres:
        urls["postgresql"] = postgres.url
    try:
        for url in urls.values():
            engine = make_engine(url)
            migrate(engine)
            engine.dispose()
        yield urls
    finally:
        if postgres:
            postgres.drop()


@pytest.fixture(scope="session")
def prefect_api_url(postgres_base_url: str | None) -> Iterator[str]:
    """One Prefect server (a subprocess, as in Prefect's test harness) for the whole session, heartbeats off and,
    as under ``georeg serve``, no telemetry. Its database is PostgreSQL (a database of its own, dropped at the end)
    when a server answers, as in the scale-out deployment: the SQLite database of Prefect's own harness takes one
    writer at a time and was seen locked for over 60 s on the loaded 2-core machine (503s, a cancellation not
    recorded). SQLite, through Prefect's harness, otherwise."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.server.database.dependencies import temporary_database_interface
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        PREFECT_SERVER_ANALYTICS_ENABLED,
        PREFECT_SERVER_DATABASE_CONNECTION_URL,
        temporary_settings,
    )
    from prefect.testing.utilities import prefect_test_harness

    quiet = {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None, PREFECT_SERVER_ANALYTICS_ENABLED: False}
    if postgres_base_url is None:
        with temporary_settings(updates=quiet), prefect_test_harness(server_startup_timeout=60):
            yield PREFECT_API_URL.value()
        return
    database = PostgresDatabase(postgres_base_url)
    asyncpg_url = make_engine(database.url).url.set(drivername="postgresql+asyncpg").render_as_string(
        hide_password=False)
    try:
        with (
            temporary_settings(updates={**quiet, PREFECT_SERVER_DATABASE_CONNECTION_URL: asyncpg_url}),
            temporary_database_interface(),
        ):
            server = SubprocessASGIServer(port=free_port())
            server.start(timeout=120)
            try:
                with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
                    yield server.api_url
            finally:
                server.stop()
    finally:
        database.drop()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The registry backend; a PostgreSQL case is skipped when no server answers."""
    if request.param == "postgresql":
        require_postgres(request)
    return request.param


@pytest.fixture
def settings(backend: str, database_urls: dict[str, str], tmp_path: Path, prefect_api_url: str) -> Settings:
    url = database_urls[backend]
    engine = make_engine(url)
    truncate_all(engine)
    engine.dispose()
    return app_settings(data_dir=tmp_path / "data", database_url=url, prefect_api_url=prefect_api_url)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def admin_headers(client: TestClient) -> dict[str, str]:
    return login(client, "admin", ADMIN_PASSWORD)


@pytest.fixture
def make_user(client: TestClient, admin_headers: dict[str, str]):
    """Create a user through the API and return its auth headers."""

    def _make(username: str, password: str = "user-password", roles: list[str] | None = None) -> dict[str, str]:
        response = client.post(
            "/users", json={"userName": username, "password": password, "email": f"{username}@example.org",
                            "roles": roles or []},
            headers=admin_headers,
        )
        assert response.status_code == 201, response.text
        return login(client, username, password)

    return _make


@pytest.fixture
def ds(client: TestClient, admin_headers: dict[str, str]) -> dict[str, str]:
    """Admin headers, with the (empty) dataset ``admin/d`` created."""
    create_dataset(client, admin_headers)
    return admin_headers


# The permission matrix (tests/api/test_permissions.py) runs every role on SQLite; on PostgreSQL the roles at the
# boundaries (read vs write member, outsider, anonymous): the rules live in Python, the database only stores them.
POSTGRES_MATRIX_ROLES = {"reader", "writer", "outsider", "anonymous"}
MATRIX_ROLES = {"reader", "writer", "orgadmin", "owner", "sysadmin", "outsider", "anonymous"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept, dropped = [], []
    for item in items:
        parts = set(item.name.partition("[")[2].rstrip("]").split("-"))
        in_matrix = item.nodeid.startswith("tests/api/test_permissions.py") and "postgresql" in parts
        if in_matrix and parts & MATRIX_ROLES and not parts & POSTGRES_MATRIX_ROLES:
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    # Longest files first: with several processes (make test, `--dist loadfile --no-loadscope-reorder`), each takes
    # the next file when it is free, so the slowest ones start early instead of trailing at the end.
    items[:] = sorted(kept, key=_file_order)


# Files by the time they took in make test (3 processes, 2 cores), slowest first; then the rest by folder.
SLOWEST_FILES = [
    "flows/test_hyspex.py", "flows/test_tasks.py", "api/test_permissions.py", "e2e/test_faults.py",
    "flows/test_openapi_contract.py", "e2e/test_scale_out.py", "browser/test_web_pages.py", "e2e/test_serve.py",
    "flows/test_concurrent_submissions.py", "api/test_no_500.py", "api/test_meta.py", "flows/test_tools.py",
]
LONG_FIRST = {"e2e": 0, "browser": 1, "flows": 2}


def _file_order(item: pytest.Item) -> tuple[int, int]:
    path = item.nodeid.split("::")[0].removeprefix("tests/")
    rank = SLOWEST_FILES.index(path) if path in SLOWEST_FILES else len(SLOWEST_FILES)
    return rank, LONG_FIRST.get(path.split("/")[0], len(LONG_FIRST))
