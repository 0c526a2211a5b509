"""Shared fixtures: registry databases (SQLite and PostgreSQL), the app, users and the Prefect harness."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from georeg.api.app import create_app
from georeg.core.config import Settings
from georeg.core.db import make_engine, migrate

pytest_plugins = [
    "tests.csw_fixtures",  # pycsw CSW server + NBS-like file server (session, built on first use)
    "tests.netcdf_fixtures",  # NetCDF files + an OPeNDAP server (xpublish-opendap) (session, built on first use)
]

ADMIN_PASSWORD = "admin-secret-pw"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _postgres_base_url() -> str | None:
    """The PostgreSQL server for registry tests, or None when nothing answers."""
    url = os.environ.get("GEOREG_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    if not url:
        return None
    try:
        engine = make_engine(url)
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
        return url
    except Exception:  # noqa: BLE001
        return None


POSTGRES_URL = _postgres_base_url()
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    POSTGRES_URL is None, reason=f"PostgreSQL not answering at {os.environ.get('GEOREG_TEST_POSTGRES_URL', DEFAULT_POSTGRES_URL)}"
))]


class _PostgresDatabase:
    """A database of its own for this test session, dropped at the end."""

    def __init__(self, base_url: str):
        self.admin = make_engine(base_url).execution_options(isolation_level="AUTOCOMMIT")
        self.name = f"georeg_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        with self.admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{self.name}"'))
        self.url = make_engine(base_url).url.set(database=self.name).render_as_string(hide_password=False)

    def drop(self) -> None:
        with self.admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.admin.dispose()


@pytest.fixture(scope="session")
def database_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    urls = {"sqlite": f"sqlite:///{tmp_path_factory.mktemp('registry') / 'georeg.db'}"}
    postgres = _PostgresDatabase(POSTGRES_URL) if POSTGRES_URL else None
    if postgres:
        urls["postgresql"] = postgres.url
    for url in urls.values():
        engine = make_engine(url)
        migrate(engine)
        engine.dispose()
    yield urls
    if postgres:
        postgres.drop()


def truncate_all(engine: Engine) -> None:
    tables = list(reversed(SQLModel.metadata.sorted_tables))
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in tables)
            connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                connection.execute(table.delete())


@pytest.fixture(scope="session")
def prefect_api_url() -> Iterator[str]:
    """One Prefect test harness (temporary server and database) for the whole session, heartbeats off and,
    as under ``georeg serve``, no telemetry (its writes competed with the session's first set-up writes)."""
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        PREFECT_SERVER_ANALYTICS_ENABLED,
        temporary_settings,
    )
    from prefect.testing.utilities import prefect_test_harness

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None, PREFECT_SERVER_ANALYTICS_ENABLED: False}):
        with prefect_test_harness(server_startup_timeout=60):
            yield PREFECT_API_URL.value()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def settings(backend: str, database_urls: dict[str, str], tmp_path: Path, prefect_api_url: str) -> Settings:
    url = database_urls[backend]
    engine = make_engine(url)
    truncate_all(engine)
    engine.dispose()
    return Settings(
        data_dir=tmp_path / "data",
        database_url=url,
        admin_password=ADMIN_PASSWORD,
        secret_key="test-secret-key",
        prefect_api_url=prefect_api_url,
        max_upload_bytes=4 * 1024 * 1024,
        password_hash_memory_kib=64,
        password_hash_time_cost=1,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def login(client: TestClient, username: str, password: str) -> dict[str, str]:
    response = client.post("/users/authenticate", json={"userName": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


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


def assert_error(response, status: int, code: str | None = None) -> dict:
    """The response is a JSON error of the georeg shape with that status (and code)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= {"error", "code"}, body
    assert isinstance(body["error"], str) and body["error"]
    if code is not None:
        assert body["code"] == code, body
    return body
