"""Settings: one pydantic-settings class, environment prefix ``GEOREG_``."""

from __future__ import annotations

import json
import secrets
from functools import cached_property
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

SECRET_KEY_FILE = "secret_key"
TASK_SETTINGS = ("artifact_ttl_hours", "archive_max_files", "archive_max_bytes", "archive_max_ratio",
                 "temp_file_ttl_hours", "csw_timeout_seconds", "download_max_bytes", "flow_heartbeats",
                 "pointcloud_max_cells", "hyspex_child_concurrency")
LIST_TASK_SETTINGS = ("mount_roots", "safe_roots", "csw_endpoints", "download_hosts")
LIST_SETTINGS = (*LIST_TASK_SETTINGS, "csw_harvest_keywords", "cors_origins")
NBS_CSW_ENDPOINT = "https://nbs.csw.met.no/csw"
NBS_DOWNLOAD_HOSTS = ("nbs.met.no", "nbs.csw.met.no")


class Settings(BaseSettings):
    """Every knob of georeg, read from ``GEOREG_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="GEOREG_", extra="ignore")

    data_dir: Path = Path("./data")
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    prefect_host: str = "127.0.0.1"
    prefect_port: int = 4200
    prefect_api_url: str | None = None
    database_url: str | None = None

    admin_username: str = "admin"
    admin_password: str | None = None
    admin_email: str = "admin@localhost"
    secret_key: str | None = None

    access_token_minutes: int = 60 * 24
    refresh_token_days: int = 7
    lockout_attempts: int = 5
    lockout_minutes: int = 15
    password_hash_memory_kib: int = Field(default=65536, ge=8)
    password_hash_time_cost: int = Field(default=3, ge=1)

    max_upload_bytes: int = 2 * 1024**3
    gdal_cache_mb: int = Field(default=64, ge=8)
    temp_file_ttl_hours: int = 24
    artifact_ttl_hours: float = 24
    max_active_tasks_per_user: int = 4
    daily_artifact_bytes_per_org: int = 10 * 1024**3
    admins_exempt_from_quotas: bool = False
    task_dedup_hours: float = 24
    archive_max_files: int = 10_000
    archive_max_bytes: int = 20 * 1024**3
    archive_max_ratio: float = 200.0
    default_user_storage_bytes: int | None = None
    build_on_upload: bool = True
    upload_batch_timeout_minutes: float = Field(default=60.0, gt=0)
    share_max_chunk_bytes: int = Field(default=256 * 1024**2, ge=1024)
    work_pool: str = "georeg"
    work_pool_concurrency: int | None = Field(default=4, ge=1)
    flow_forkserver: bool = True
    flow_heartbeats: bool = False
    project_dir: Path | None = None
    mount_roots: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    safe_roots: Annotated[list[Path], NoDecode] = Field(default_factory=list)

    csw_endpoints: Annotated[list[str], NoDecode] = Field(default_factory=lambda: [NBS_CSW_ENDPOINT])
    csw_timeout_seconds: float = Field(default=30.0, gt=0)
    download_hosts: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(NBS_DOWNLOAD_HOSTS))
    download_max_bytes: int = Field(default=8 * 1024**3, gt=0)
    # cells of a raster gridded from a point cloud (about 12-30 bytes a cell while gridding): 413 past it
    pointcloud_max_cells: int = Field(default=25_000_000, ge=1)
    query_max_points: int = Field(default=10_000, ge=1, le=1_000_000)
    csw_harvest_endpoint: str | None = None
    csw_harvest_keywords: Annotated[list[str], NoDecode] = Field(default_factory=list)
    csw_harvest_anytext: str | None = None
    csw_harvest_window_hours: float = Field(default=24.0, gt=0)
    csw_harvest_max_records: int = Field(default=200, ge=1)
    # child flow runs a hyspex-parent job keeps going at once
    hyspex_child_concurrency: int = Field(default=4, ge=1, le=64)
    # origins (scheme://host[:port]) whose pages may call the API from a browser (CORS); none: CORS stays off
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    task_state_sync_seconds: float = Field(default=2.0, gt=0, le=3600)
    # a queued task whose flow run cannot be created (Prefect busy or down) for this long ends Failed
    task_submit_budget_seconds: float = Field(default=600.0, gt=0, le=7 * 24 * 3600)
    # how long a submission request waits for its flow run before answering 202 with the task still Queued
    task_submit_wait_seconds: float = Field(default=2.0, ge=0, le=60)

    @field_validator(*LIST_SETTINGS, mode="before")
    @classmethod
    def _split_lists(cls, value: object, info: ValidationInfo) -> object:
        """A JSON list (``["a", "b"]``, the pydantic-settings convention) or comma-separated text (``a,b``)."""
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"GEOREG_{info.field_name.upper()} is not a valid JSON list ({exc.msg} at character "
                                 f"{exc.pos}); give a JSON list of strings or comma-separated values") from exc
            if not isinstance(parsed, list) or not all(isinstance(item, str) for item in parsed):
                raise ValueError(f"GEOREG_{info.field_name.upper()} must be a JSON list of strings")
            return [item.strip() for item in parsed if item.strip()]
        return [part.strip() for part in text.replace(";", ",").split(",") if part.strip()]

    @cached_property
    def resolved_data_dir(self) -> Path:
        """Absolute data directory (created on demand by :func:`ensure_layout`)."""
        return self.data_dir.expanduser().resolve()

    @property
    def storage_dir(self) -> Path:
        return self.resolved_data_dir / "storage"

    @property
    def tmp_dir(self) -> Path:
        return self.resolved_data_dir / "tmp"

    @property
    def cache_dir(self) -> Path:
        return self.resolved_data_dir / "cache"

    @property
    def prefect_home(self) -> Path:
        return self.resolved_data_dir / "prefect"

    @property
    def effective_database_url(self) -> str:
        """The registry database: ``GEOREG_DATABASE_URL`` or a SQLite file in the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_data_dir / 'georeg.db'}"

    @property
    def effective_prefect_api_url(self) -> str:
        if self.prefect_api_url:
            return self.prefect_api_url.rstrip("/")
        return f"http://{self.prefect_host}:{self.prefect_port}/api"

    def task_environment(self) -> dict[str, str]:
        """``GEOREG_*`` variables handed to every task's flow run, so the worker works on the same
        registry and data dir, with the same limits, as the API that launched it (and GDAL's block cache
        limit, read by GDAL itself when the run first reads a raster)."""
        env = {
            "GEOREG_DATA_DIR": str(self.resolved_data_dir),
            "GEOREG_DATABASE_URL": self.effective_database_url,
            "GDAL_CACHEMAX": str(self.gdal_cache_mb),
        }
        for name in TASK_SETTINGS:
            env[f"GEOREG_{name.upper()}"] = str(getattr(self, name))
        for name in LIST_TASK_SETTINGS:
            env[f"GEOREG_{name.upper()}"] = json.dumps([str(item) for item in getattr(self, name)])
        return env

    def ensure_layout(self) -> None:
        """Create the data directory tree (idempotent)."""
        for path in (self.resolved_data_dir, self.storage_dir, self.tmp_dir, self.cache_dir):
            path.mkdir(parents=True, exist_ok=True)

    def resolve_secret_key(self) -> str:
        """``GEOREG_SECRET_KEY``, else a key generated once and persisted in the data dir."""
        if self.secret_key:
            return self.secret_key
        key_file = self.resolved_data_dir / SECRET_KEY_FILE
        if key_file.exists():
            return key_file.read_text().strip()
        self.ensure_layout()
        key = secrets.token_urlsafe(48)
        tmp = key_file.with_suffix(".tmp")
        tmp.write_text(key)
        tmp.chmod(0o600)
        tmp.replace(key_file)
        return key


class SettingsError(Exception):
    """Settings that cannot be read; the message names each offending ``GEOREG_*`` variable."""


def load_settings() -> Settings:
    """:class:`Settings` from the environment, or :class:`SettingsError` saying which variables are wrong."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = "GEOREG_" + "_".join(str(part) for part in error["loc"][:1]).upper()
            message = error["msg"].removeprefix("Value error, ")
            problems.append(message if message.startswith(name) else f"{name}: {message}")
        raise SettingsError("invalid settings: " + "; ".join(problems)) from exc
