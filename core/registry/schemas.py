"""The Registry API's schemas (camelCase on the wire): the Create/Update/Public split of users, organizations,
datasets and entries, and the small bodies of their routes. Constraints the API enforces are stated here, so
the OpenAPI document tells them."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field

from georeg.core.models import CamelModel, EntryType, Permission, UtcDateTime, Visibility
from georeg.core.paging import SkipTakePage
from georeg.core.slugs import ROLE_PATTERN, SLUG_PATTERN
from georeg.core.storage import MAX_PATH_LENGTH, normalize_entry_path

ENTRY_PATH_RULES = ("a path relative to the dataset root with '/' separators: no leading '/', no drive letter, no "
                    "'..' segment, no backslash or control character, names of at most 255 bytes")
# documented (what a client may send); the rules above are checked by normalize_entry_path (400 invalid_path)
ENTRY_PATH_PATTERN = r"^[^/\\\x00-\x1f\x7f][^\\\x00-\x1f\x7f]*$"
ROOT_OR_ENTRY_PATH_PATTERN = r"^([^/\\\x00-\x1f\x7f][^\\\x00-\x1f\x7f]*)?$"

# Slugs and role names are checked by the repositories (400 with a code naming what was wrong); the schema states
# the same rule.
Slug = Annotated[str, Field(max_length=128, description="lowercase letters, digits, '-' and '_' (not at the ends)",
                            json_schema_extra={"pattern": SLUG_PATTERN})]
RoleName = Annotated[str, Field(max_length=64, json_schema_extra={"pattern": ROLE_PATTERN})]
Password = Annotated[str, Field(min_length=1, max_length=1024)]
EntryPath = Annotated[str, Field(max_length=MAX_PATH_LENGTH, description=ENTRY_PATH_RULES,
                                 json_schema_extra={"pattern": ENTRY_PATH_PATTERN}),
                      AfterValidator(normalize_entry_path)]
RootOrEntryPath = Annotated[str, Field(max_length=MAX_PATH_LENGTH, description=f"{ENTRY_PATH_RULES}; '' is the root",
                                       json_schema_extra={"pattern": ROOT_OR_ENTRY_PATH_PATTERN}),
                            AfterValidator(lambda value: normalize_entry_path(value, allow_root=True))]


# --- users -------------------------------------------------------------------------------------------------------


class TokenPublic(CamelModel):
    token: str
    expires: UtcDateTime
    refresh_token: str
    username: str
    email: str
    roles: list[str]


class Credentials(CamelModel):
    user_name: str = Field(max_length=128)
    password: str = Field(max_length=1024)


class RefreshRequest(CamelModel):
    refresh_token: str | None = Field(default=None, max_length=4096)


class UserBase(CamelModel):
    user_name: Slug
    email: str = Field(default="", max_length=256)


class UserCreate(UserBase):
    password: Password
    roles: list[RoleName] = Field(default_factory=list, max_length=100)


class UserUpdate(CamelModel):
    email: str | None = Field(default=None, max_length=256)
    roles: list[RoleName] | None = Field(default=None, max_length=100)
    storage_quota: int | None = Field(default=None, ge=0, le=2**63 - 1)


class UserPublic(UserBase):
    roles: list[str]


class UserDetailed(UserPublic):
    organizations: list[str]
    storage_quota: int | None
    storage_used: int
    failed_logins: int
    locked_until: UtcDateTime | None
    created_at: UtcDateTime


class UserPage(SkipTakePage[UserPublic]):
    """A page of users."""


class UserDetailedPage(SkipTakePage[UserDetailed]):
    """A page of users with their details."""


class PasswordChange(CamelModel):
    old_password: str = Field(max_length=1024)
    new_password: Password


class AdminPasswordChange(CamelModel):
    new_password: Password


class StorageInfo(CamelModel):
    total: int | None = Field(description="the quota in bytes (null: unlimited)")
    used: int


class RolePublic(CamelModel):
    name: str


class OrgMembership(CamelModel):
    slug: Slug
    permission: Permission = Permission.read


class UserOrg(CamelModel):
    slug: str
    name: str
    permission: Permission | None


# --- organizations -----------------------------------------------------------------------------------------------


class OrgBase(CamelModel):
    name: str = Field(min_length=1, max_length=256)
    description: str = Field(default="", max_length=4096)
    is_public: bool = False


class OrgCreate(OrgBase):
    slug: Slug


class OrgUpdate(CamelModel):
    name: str | None = Field(default=None, min_length=1, max_length=256)
    description: str | None = Field(default=None, max_length=4096)
    is_public: bool | None = None


class OrgPublic(OrgBase):
    slug: str
    owner: str | None
    creation_date: UtcDateTime


class OrgPage(SkipTakePage[OrgPublic]):
    """A page of organizations."""


# --- datasets ----------------------------------------------------------------------------------------------------


class DatasetBase(CamelModel):
    name: str | None = Field(default=None, max_length=256)
    description: str = Field(default="", max_length=4096)
    visibility: Visibility = Visibility.private


class DatasetCreate(DatasetBase):
    slug: Slug


class DatasetUpdate(CamelModel):
    name: str | None = Field(default=None, min_length=1, max_length=256)
    description: str | None = Field(default=None, max_length=4096)
    visibility: Visibility | None = None
    meta: dict[str, Any] | None = None


class DatasetPublic(DatasetBase):
    slug: str
    org_slug: str
    name: str
    meta: dict[str, Any]
    creation_date: UtcDateTime
    last_update: UtcDateTime
    entries: int
    size: int


class DatasetPermissions(CamelModel):
    can_read: bool
    can_write: bool
    can_delete: bool


class DatasetInfo(DatasetPublic):
    """A dataset with what the caller may do with it (``GET .../ex``)."""

    permissions: DatasetPermissions


class DatasetPage(SkipTakePage[DatasetPublic]):
    """A page of datasets."""


class RenameRequest(CamelModel):
    slug: Slug


class ChattrRequest(CamelModel):
    visibility: Visibility


class DatasetStamp(CamelModel):
    """What a sync client compares: every entry's hash and every metadata id, with a checksum over both."""

    checksum: str = Field(description="sha256 over each entry's path then hash (entries by path, folders with an "
                                      "empty hash), then each metadata id in ascending order")
    entries: list[dict[str, str]] = Field(description="one ``{path: sha256}`` object per entry ('' for a folder), "
                                                      "in path order (DroneDB's shape)")
    meta: list[str] = Field(description="the ids of the dataset's metadata values (its entries' included), ascending")


# --- entries -----------------------------------------------------------------------------------------------------


class EntryPublic(CamelModel):
    id: str
    path: str
    type: EntryType
    size: int
    hash: str | None
    mtime: UtcDateTime
    properties: dict[str, Any]
    footprint: dict[str, Any] | None
    crs: str | None
    bounds: list[float] | None


class PathBody(CamelModel):
    path: RootOrEntryPath = ""


class PathsBody(CamelModel):
    paths: list[Annotated[str, Field(max_length=MAX_PATH_LENGTH)]] = Field(max_length=10_000)


class MoveBody(CamelModel):
    source: EntryPath
    dest: EntryPath


class SearchBody(CamelModel):
    query: str = Field(default="*", max_length=1024, description="a glob pattern of names (of paths with a '/')")
    path: RootOrEntryPath = ""
    recursive: bool = True


class Removed(CamelModel):
    removed: int


# --- metadata ----------------------------------------------------------------------------------------------------


class MetaValue(CamelModel):
    """One metadata value: a singular key has one, a plural key (ending in 's') a list of them."""

    id: str
    data: Any = Field(description="any JSON value")
    mtime: UtcDateTime


class MetaRecord(MetaValue):
    """A metadata value with where it belongs (``path`` "" is the dataset itself) and its key."""

    path: str
    key: str


class MetaKeyCount(CamelModel):
    key: str
    path: str
    count: int


# --- push --------------------------------------------------------------------------------------------------------


class PushInit(CamelModel):
    """The answer of ``push/init``: either ``pullRequired`` (nothing else) or the delta's needs and the token."""

    pull_required: bool = Field(description="the dataset changed since the client's last sync: pull first")
    needed_files: list[str] = Field(description="paths whose content the registry lacks: upload them")
    needed_meta: list[str] = Field(description="metadata ids the registry lacks: send them with push/meta")
    token: str | None = Field(description="the push session (null when a pull is required)")


class PushReceived(CamelModel):
    """What ``push/upload`` and ``push/meta`` staged."""

    path: str | None = None
    hash: str | None = None
    size: int | None = None
    meta: int | None = Field(default=None, description="metadata values staged in this request")
