"""Shared test helpers (no fixtures): logins, error checks, polling, uploads and the registry databases.

Importing this module opens no connection; PostgreSQL is probed only by :func:`postgres_answers`, which
the session fixture ``postgres_base_url`` in ``tests/conftest.py`` calls on first use.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from georeg.core.config import Settings
from georeg.core.db import make_engine

ADMIN_PASSWORD = "admin-secret-pw"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BACKENDS = ["sqlite", "postgresql"]
"""The registry backends, for ``@pytest.mark.parametrize("backend", BACKENDS, indirect=True)``; a PostgreSQL
case skips itself at set-up (see :func:`require_postgres`) when no server answers."""


def login(client: TestClient, username: str, password: str) -> dict[str, str]:
    """Authenticate ``username`` and return its bearer-token headers."""
    response = client.post("/users/authenticate", json={"userName": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    """The response is a JSON error of the georeg shape with that status (and code); return its body."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= {"error", "code"}, body
    assert isinstance(body["error"], str) and body["error"]
    if code is not None:
        assert body["code"] == code, body
    return body


def eventually(predicate: Callable[[], object], timeout: float = 15.0, interval: float = 0.2) -> bool:
    """Call ``predicate`` every ``interval`` seconds until it returns something truthy (True) or ``timeout``
    seconds have passed (False, after one last call at the deadline). Write ``assert eventually(...)``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def create_dataset(client: TestClient, headers: dict[str, str], *, org: str = "admin", slug: str = "d") -> None:
    """Create the dataset ``org/slug`` through the API; it must be created (201)."""
    response = client.post(f"/orgs/{org}/ds", json={"slug": slug}, headers=headers)
    assert response.status_code == 201, response.text


def upload_object(client: TestClient, headers: dict[str, str], path: str | None, content: bytes, *,
                  dataset: str = "/orgs/admin/ds/d", name: str = "x",
                  content_type: str = "application/octet-stream") -> httpx.Response:
    """POST ``content`` as the file ``name`` to ``{dataset}/obj``, stored at ``path`` (no ``path`` field when
    None: the server picks the name). Returns the response unchecked."""
    data = {"path": path} if path is not None else {}
    return client.post(f"{dataset}/obj", files={"file": (name, content, content_type)}, data=data, headers=headers)


def upload_raster(client: TestClient, headers: dict[str, str], path: Path, **form: str | None) -> httpx.Response:
    """POST the GeoTIFF at ``path`` to ``/datasets`` with the form fields ``form`` (those given as None are
    left out). Returns the response unchecked."""
    data = {key: value for key, value in form.items() if value is not None}
    with open(path, "rb") as handle:
        return client.post("/datasets", files={"file": (path.name, handle, "image/tiff")}, data=data, headers=headers)


def postgres_test_url() -> str:
    """The PostgreSQL server the registry tests use: ``GEOREG_TEST_POSTGRES_URL`` or the default (empty
    when the variable is set empty, meaning: no PostgreSQL)."""
    return os.environ.get("GEOREG_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def postgres_answers(url: str) -> bool:
    """Whether a PostgreSQL server answers ``SELECT 1`` at ``url`` (False for an empty URL)."""
    if not url:
        return False
    try:
        engine = make_engine(url)
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        finally:
            engine.dispose()
        return True
    except Exception:  # noqa: BLE001 - any failure means: no usable server
        return False


def require_postgres(request: pytest.FixtureRequest) -> str:
    """The PostgreSQL base URL (from the session fixture ``postgres_base_url``), or skip the requesting test
    when nothing answers there."""
    url = request.getfixturevalue("postgres_base_url")
    if url is None:
        where = postgres_test_url()
        pytest.skip(f"PostgreSQL not answering at {where}" if where else "GEOREG_TEST_POSTGRES_URL is empty")
    return url


class PostgresDatabase:
    """A database of its own on the server at ``base_url``, created now; :meth:`drop` removes it."""

    def __init__(self, base_url: str) -> None:
        self.admin = make_engine(base_url).execution_options(isolation_level="AUTOCOMMIT")
        self.name = f"georeg_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        with self.admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{self.name}"'))
        self.url = make_engine(base_url).url.set(database=self.name).render_as_string(hide_password=False)

    def drop(self) -> None:
        """Drop the database (closing its connections) and dispose of the admin engine."""
        with self.admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.admin.dispose()


def truncate_all(engine: Engine) -> None:
    """Empty every registry table, children first (PostgreSQL: identities restarted too). DELETE, not TRUNCATE:
    on the small tables of a test, TRUNCATE's new files per table cost ~0.1 s a test, DELETE ~0.01 s."""
    tables = list(reversed(SQLModel.metadata.sorted_tables))
    with engine.begin() as connection:
        for table in tables:
            connection.execute(table.delete())
        if engine.dialect.name == "postgresql":
            sequences = connection.execute(text("SELECT sequence_schema, sequence_name FROM "
                                                "information_schema.sequences")).all()
            for schema, name in sequences:
                connection.execute(text(f'ALTER SEQUENCE "{schema}"."{name}" RESTART'))



def app_settings(*, data_dir: Path, database_url: str, prefect_api_url: str, **overrides: Any) -> Settings:
    """The settings every test app runs with (known admin password and key, small uploads, cheap password hashing,
    no builds started by uploads: tests/flows/test_builds.py turns them on), with ``overrides`` on top."""
    values: dict[str, Any] = {"admin_password": ADMIN_PASSWORD, "secret_key": "test-secret-key",
                              "max_upload_bytes": 4 * 1024 * 1024, "password_hash_memory_kib": 64,
                              "password_hash_time_cost": 1, "build_on_upload": False}
    return Settings(data_dir=data_dir, database_url=database_url, prefect_api_url=prefect_api_url,
                    **{**values, **overrides})


def prefect_call(method: str, url: str, *, json: dict | None = None, patience: float = 120.0) -> httpx.Response:
    """A request straight to the session's Prefect server, patient: its SQLite database was seen stalling over a
    minute on a loaded machine (answers 503 or 429, or none within 30 s). Any other answer is returned as it is."""
    deadline = time.monotonic() + patience
    while True:
        try:
            response = httpx.request(method, url, json=json, timeout=30)
            if response.status_code not in (429, 503):
                return response
        except httpx.TimeoutException:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"the Prefect server did not answer {method} {url} within {patience:.0f} s")
        time.sleep(1.0)


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
