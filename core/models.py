"""Registry data model (SQLModel tables), the enums they use, and the bases of the API schemas.

The Registry API's Create/Update/Public schemas live in ``georeg.core.registry.schemas``; they speak camelCase
(DroneDB style) through :class:`CamelModel`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import Enum
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict
from pydantic.alias_generators import to_camel
from sqlalchemy import JSON, BigInteger, Column, DateTime, ForeignKey, Index, Integer, String, UniqueConstraint, event
from sqlmodel import Field, SQLModel

from georeg.core.timeutil import as_utc, utcnow

UtcDateTime = Annotated[datetime, AfterValidator(as_utc)]


def _new_public_id() -> str:
    return uuid.uuid4().hex


class CamelModel(SQLModel):
    """Base of API schemas: camelCase on the wire, snake_case in Python."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)


class Permission(str, Enum):
    read = "read"
    write = "write"
    admin = "admin"

    @property
    def rank(self) -> int:
        return {"read": 1, "write": 2, "admin": 3}[self.value]


class Visibility(str, Enum):
    private = "private"
    unlisted = "unlisted"
    public = "public"


class EntryType(str, Enum):
    directory = "directory"
    generic = "generic"
    raster = "raster"
    pointcloud = "pointcloud"
    image = "image"
    netcdf = "netcdf"


ADMIN_ROLE = "admin"


# --------------------------------------------------------------------------- tables


class Role(SQLModel, table=True):
    __tablename__ = "roles"

    name: str = Field(primary_key=True, max_length=64)


class UserRoleLink(SQLModel, table=True):
    __tablename__ = "user_roles"

    user_id: int = Field(sa_column=Column(Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True))
    role_name: str = Field(
        sa_column=Column(String(64), ForeignKey("roles.name", ondelete="CASCADE"), primary_key=True)
    )


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(index=True, unique=True, max_length=128)
    email: str = Field(default="", max_length=256)
    password_hash: str
    failed_logins: int = 0
    locked_until: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    storage_quota: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    meta: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))


class Organization(SQLModel, table=True):
    __tablename__ = "organizations"

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(index=True, unique=True, max_length=128)
    name: str = Field(max_length=256)
    description: str = ""
    is_public: bool = False
    owner_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    )
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))


class OrgMember(SQLModel, table=True):
    __tablename__ = "org_members"
    __table_args__ = (UniqueConstraint("org_id", "user_id", name="uq_org_member"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(sa_column=Column(Integer, ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False))
    user_id: int = Field(sa_column=Column(Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False))
    permission: str = Field(default=Permission.read.value, max_length=16)


class Dataset(SQLModel, table=True):
    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("org_id", "slug", name="uq_dataset_org_slug"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(
        sa_column=Column(Integer, ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    slug: str = Field(max_length=128)
    name: str = Field(max_length=256)
    description: str = ""
    visibility: str = Field(default=Visibility.private.value, max_length=16)
    meta: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))


class Entry(SQLModel, table=True):
    """A file (or directory) inside a dataset."""

    __tablename__ = "entries"
    __table_args__ = (UniqueConstraint("dataset_id", "path", name="uq_entry_dataset_path"),)

    id: int | None = Field(default=None, primary_key=True)
    public_id: str = Field(default_factory=_new_public_id, index=True, unique=True, max_length=32)
    dataset_id: int = Field(
        sa_column=Column(Integer, ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    path: str = Field(max_length=1024)
    type: str = Field(default=EntryType.generic.value, max_length=16)
    size: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    sha256: str | None = Field(default=None, max_length=64)
    mtime: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))
    properties: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    footprint: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    crs: str | None = None
    bounds: list[float] | None = Field(default=None, sa_column=Column(JSON, nullable=True))


class DatasetMeta(SQLModel, table=True):
    """A metadata value of a dataset (``path`` "") or of one of its entries (``path`` the entry's path).

    Keys ending in ``s`` are plural (a list of values), any other key holds one value; ``data`` is any JSON
    value. The values of an entry follow it when it moves and go with it when it is deleted (``core.registry
    .entries``); a dataset's go with the dataset (foreign key cascade)."""

    __tablename__ = "dataset_meta"
    __table_args__ = (Index("ix_dataset_meta_lookup", "dataset_id", "path", "key"),)

    # ids are unique per dataset (the primary key is (dataset_id, id)): a push restores a dump's ids into another
    # dataset, as DroneDB's per-dataset index does
    id: str = Field(default_factory=lambda: str(uuid.uuid4()), primary_key=True, max_length=36)
    dataset_id: int = Field(
        sa_column=Column(Integer, ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True, nullable=False)
    )
    path: str = Field(default="", max_length=1024)
    key: str = Field(max_length=128)
    data: Any = Field(default=None, sa_column=Column(JSON, nullable=True))
    mtime: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))


class BatchKind(str, Enum):
    share = "share"
    push = "push"


class BatchStatus(str, Enum):
    running = "running"
    committed = "committed"
    rolledback = "rolledback"


class UploadBatch(SQLModel, table=True):
    """A share or push session on one dataset: its token, owner, state and (push) the delta agreed at init.

    ``created_dataset`` records that the batch created its dataset, so a rollback removes the dataset only then;
    ``last_activity_at`` is what the stale-batch cleanup compares with ``GEOREG_UPLOAD_BATCH_TIMEOUT_MINUTES``."""

    __tablename__ = "upload_batches"
    __table_args__ = (Index("ix_upload_batches_dataset", "dataset_id", "started_at"),
                      Index("ix_upload_batches_status_activity", "status", "last_activity_at"))

    token: str = Field(default_factory=_new_public_id, primary_key=True, max_length=32)
    kind: str = Field(default=BatchKind.share.value, max_length=8)
    dataset_id: int = Field(
        sa_column=Column(Integer, ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False)
    )
    user_id: int = Field(sa_column=Column(Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False))
    status: str = Field(default=BatchStatus.running.value, max_length=16)
    created_dataset: bool = False
    started_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))
    ended_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    last_activity_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    state: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class BatchFile(SQLModel, table=True):
    """A file a batch received: complete (``sha256`` set) or a chunked upload still collecting chunks.

    The bytes wait in the batch's staging directory under the data dir until the batch commits."""

    __tablename__ = "batch_files"
    __table_args__ = (UniqueConstraint("batch_token", "path", name="uq_batch_file_path"),
                      UniqueConstraint("batch_token", "file_id", name="uq_batch_file_id"))

    id: int | None = Field(default=None, primary_key=True)
    batch_token: str = Field(
        sa_column=Column(String(32), ForeignKey("upload_batches.token", ondelete="CASCADE"), nullable=False)
    )
    path: str = Field(max_length=1024)
    file_id: str | None = Field(default=None, max_length=128)
    total_chunks: int | None = None
    total_size: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    size: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    sha256: str | None = Field(default=None, max_length=64)
    added_on: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))


class BatchChunk(SQLModel, table=True):
    """One received chunk of a chunked upload (a resent chunk replaces its row and its file)."""

    __tablename__ = "batch_chunks"
    __table_args__ = (UniqueConstraint("batch_file_id", "chunk_index", name="uq_batch_chunk_index"),)

    id: int | None = Field(default=None, primary_key=True)
    batch_file_id: int = Field(
        sa_column=Column(Integer, ForeignKey("batch_files.id", ondelete="CASCADE"), nullable=False)
    )
    chunk_index: int
    size: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    received_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))


class Task(SQLModel, table=True):
    """A tool invocation on a dataset; each attempt is one Prefect flow run."""

    __tablename__ = "tasks"

    id: str = Field(default_factory=_new_public_id, primary_key=True, max_length=32)
    org_id: int = Field(sa_column=Column(Integer, ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False))
    dataset_id: int = Field(
        sa_column=Column(Integer, ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    user_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("users.id", ondelete="SET NULL"), nullable=True, index=True)
    )
    tool_id: str = Field(max_length=64, index=True)
    tool_version: str = Field(max_length=32)
    path: str | None = Field(default=None, max_length=1024)
    parameters: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    dedup_key: str = Field(max_length=64, index=True)
    state: str = Field(default="Scheduled", max_length=16, index=True)
    flow_run_id: str | None = Field(default=None, max_length=64)
    attempts: int = 1
    executed_attempt: int | None = None  # claimed by the flow run that starts the tool (runner.execute_task)
    history: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    progress: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    result: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    error: str | None = None
    artifact: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    artifact_bytes: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))
    started_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    finished_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


class Raster(SQLModel, table=True):
    """Raster details of an entry: the record behind the Datasets API's ``/datasets`` routes.

    Listing indexes: ``ix_rasters_listing`` (registration order) and ``ix_rasters_acquired`` (acquisition order) hold
    every column ``GET /datasets`` filters on, so counts and page selection scan a narrow index instead of the wide
    rows (no single-column indexes on those columns: they lead SQLite's planner into row lookups); ``search_text``
    (lowercased title, identifier, source path and id, kept by an ORM hook) carries ``q``, with a trigram index on
    PostgreSQL. Platforms are stored upper-case."""

    __tablename__ = "rasters"
    __table_args__ = (
        Index("ix_rasters_listing", "created_at", "id", "minx", "miny", "maxx", "maxy", "acquired_at", "platform",
              "source"),
        Index("ix_rasters_acquired", "acquired_at", "id", "minx", "miny", "maxx", "maxy", "platform", "source",
              "created_at"),
        Index("ix_rasters_search_text", "search_text", postgresql_using="gin",
              postgresql_ops={"search_text": "gin_trgm_ops"}),
    )

    id: int | None = Field(default=None, primary_key=True)
    entry_id: int = Field(
        sa_column=Column(Integer, ForeignKey("entries.id", ondelete="CASCADE"), nullable=False, unique=True)
    )
    public_id: str = Field(max_length=32, index=True, unique=True)
    title: str = Field(default="", max_length=512, index=True)
    source: str = Field(default="upload", max_length=16)
    source_identifier: str | None = Field(default=None, max_length=256, index=True)
    source_path: str | None = Field(default=None, max_length=2048)
    owned: bool = True
    platform: str | None = Field(default=None, max_length=16)
    profile: str | None = Field(default=None, max_length=64)
    acquired_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    sha256: str = Field(max_length=64, index=True)
    size: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0, index=True))
    width: int
    height: int
    band_count: int
    dtype: str = Field(max_length=16)
    nodata: float | None = None
    epsg: int | None = None
    crs_wkt: str | None = None
    minx: float | None = None
    miny: float | None = None
    maxx: float | None = None
    maxy: float | None = None
    native_bounds: list[float] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    footprint: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    stats: list | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    bands: list | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    meta: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))
    search_text: str = Field(default="", sa_column=Column(String(3000), nullable=False, server_default=""))


def raster_search_text(raster: Raster) -> str:
    """What ``GET /datasets?q=`` matches (substring, case-insensitive)."""
    parts = (raster.title, raster.source_identifier, raster.source_path, raster.public_id)
    return "\n".join(part for part in parts if part).lower()


@event.listens_for(Raster, "before_insert")
@event.listens_for(Raster, "before_update")
def _keep_search_text(mapper, connection, raster: Raster) -> None:  # noqa: ANN001, ARG001
    raster.search_text = raster_search_text(raster)
