"""The georeg API (``bench._common.running_api``) with a logged-in client and its process for RSS, and a scratch
PostgreSQL database, for the raster benchmarks."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil

from bench._common import BENCH_ADMIN_PASSWORD, check, running_api, upload_file


class Api:
    """``with Api(folder) as api``: a fresh data dir, the API on a free port, an authenticated httpx client."""

    def __init__(self, folder: Path, *, database_url: str | None = None, mount_roots: list[Path] | None = None):
        self.folder = folder
        self.env = {"GEOREG_MAX_UPLOAD_BYTES": str(8 * 1024**3),
                    "GEOREG_MOUNT_ROOTS": ",".join(str(p) for p in mount_roots or [])}
        if database_url:
            self.env["GEOREG_DATABASE_URL"] = database_url
        self._stack = contextlib.ExitStack()
        self.base_url = ""
        self.token = ""
        self.process: psutil.Process | None = None
        self.client: httpx.Client | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def __enter__(self) -> Api:
        self.folder.mkdir(parents=True, exist_ok=True)
        with self._stack as stack:
            self.base_url = stack.enter_context(running_api(self.folder, env=self.env))
            port = self.base_url.rsplit(":", 1)[1]
            self.process = next(child for child in psutil.Process().children()
                                if "uvicorn" in child.cmdline() and port in child.cmdline())
            self.client = stack.enter_context(httpx.Client(base_url=self.base_url,
                                                           timeout=httpx.Timeout(600.0, connect=10.0)))
            self.token = check(self.client.post("/users/authenticate", json={
                "userName": "admin", "password": BENCH_ADMIN_PASSWORD}), "authenticate").json()["token"]
            self.client.headers["Authorization"] = f"Bearer {self.token}"
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def rss(self) -> int:
        """Resident memory of the API process and its children, in bytes."""
        try:
            return self.process.memory_info().rss + sum(c.memory_info().rss for c in self.process.children(True))
        except psutil.NoSuchProcess:
            return 0

    def get(self, url: str, **kwargs: object) -> httpx.Response:
        return check(self.client.get(url, **kwargs), f"GET {url}")

    def delete(self, url: str) -> httpx.Response:
        return check(self.client.delete(url), f"DELETE {url}")

    def register_path(self, path: Path) -> dict:
        return check(self.client.post("/datasets/from-string", json={"path": str(path)}), f"register {path}").json()

    def upload_raster(self, path: Path) -> dict:
        return upload_file(self.base_url, self.token, "/datasets", path, content_type="image/tiff")


@contextlib.contextmanager
def postgres_scratch(admin_url: str) -> Iterator[str | None]:
    """A throw-away database on the server of ``admin_url`` (its URL), dropped afterwards; None when unreachable."""
    import psycopg

    conninfo = admin_url.replace("postgresql+psycopg://", "postgresql://")
    name = f"georeg_bench_{os.getpid()}"
    try:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError:
        yield None
        return
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
