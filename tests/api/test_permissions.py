"""Permission matrix: role x route x dataset visibility -> exact status (after DroneDB's PermissionMatrixTest).

The world, built through the API: user ``owner`` owns the private organization ``acme``;
``reader``/``writer``/``orgadmin`` are members with read/write/admin; ``outsider`` is an authenticated
user with no membership; ``sysadmin`` is the built-in administrator; ``anonymous`` sends no token.
``acme`` holds one dataset per visibility (``pub``, ``unl``, ``priv``), each with the file ``a.txt`` and the
metadata ``name``.
``pubco`` is a public organization of ``owner`` with the same three (empty) datasets.

Speed: one app and database per backend for the whole module (its own database, so the per-test
truncation of the shared ``client`` fixture never touches it), the users created once, and an
organization rebuilt only when a test may have changed it. A test that sends a mutating request marks
the organization dirty first; a denied request clears the mark only after proving, from an admin's
snapshot (organization, datasets with their timestamps, every dataset's entries and metadata), that nothing
changed.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from georeg.api.app import create_app
from georeg.core.config import Settings
from tests.helpers import ADMIN_PASSWORD, BACKENDS, PostgresDatabase, assert_error, login, require_postgres

ORG = "acme"
PUBLIC_ORG = "pubco"
VISIBILITIES = {"public": "pub", "unlisted": "unl", "private": "priv"}
MEMBERS = {"reader": "read", "writer": "write", "orgadmin": "admin"}
USERS = ["owner", *MEMBERS, "outsider"]
ROLES = ["reader", "writer", "orgadmin", "owner", "sysadmin", "outsider", "anonymous"]
ALLOWED = {  # who holds at least this permission on acme
    "read": {"reader", "writer", "orgadmin", "owner", "sysadmin"},
    "write": {"writer", "orgadmin", "owner", "sysadmin"},
    "admin": {"orgadmin", "owner", "sysadmin"},
}
ERROR_CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found"}


def _ok(response, status: int = 200):
    assert response.status_code == status, response.text
    return response


class Registry:
    """The running app of one backend, the callers' headers and the organizations' pristine state."""

    def __init__(self, client: TestClient):
        self.client = client
        self.headers: dict[str, dict[str, str]] = {"anonymous": {}, "sysadmin": login(client, "admin", ADMIN_PASSWORD)}
        for name in USERS:
            _ok(client.post("/users", json={"userName": name, "password": "user-password",
                                            "email": f"{name}@example.org", "roles": []},
                            headers=self.headers["sysadmin"]), 201)
            self.headers[name] = login(client, name, "user-password")
        self.pristine: dict[str, dict] = {}
        self.dirty: set[str] = {ORG, PUBLIC_ORG}

    def call(self, role: str, method: str, url: str, **kwargs):
        return self.client.request(method, url, headers=self.headers[role], **kwargs)

    def admin(self, method: str, url: str, **kwargs):
        return self.call("sysadmin", method, url, **kwargs)

    def snapshot(self, org: str) -> dict:
        """What an admin sees of ``org``: the organization, its datasets, their entries and metadata."""
        response = self.admin("GET", f"/orgs/{org}")
        if response.status_code != 200:
            return {"org": response.status_code}
        datasets = _ok(self.admin("GET", f"/orgs/{org}/ds")).json()
        entries = {ds["slug"]: _ok(self.admin("GET", f"/orgs/{org}/ds/{ds['slug']}/list")).json()
                   for ds in datasets["items"]}
        meta = {ds["slug"]: _ok(self.admin("POST", f"/orgs/{org}/ds/{ds['slug']}/meta/dump")).json()
                for ds in datasets["items"]}
        return {"org": response.json(), "datasets": datasets, "entries": entries, "meta": meta}

    def assert_unchanged(self, org: str) -> None:
        assert self.snapshot(org) == self.pristine[org]
        self.dirty.discard(org)

    def _build(self, org: str) -> None:
        assert self.admin("DELETE", f"/orgs/{org}").status_code in (204, 404)
        owner = self.headers["owner"]
        public = org == PUBLIC_ORG
        _ok(self.client.post("/orgs", json={"slug": org, "name": org.title(), "isPublic": public}, headers=owner), 201)
        for visibility, slug in VISIBILITIES.items():
            _ok(self.client.post(f"/orgs/{org}/ds", json={"slug": slug, "visibility": visibility}, headers=owner), 201)
        if not public:
            for name, permission in MEMBERS.items():
                _ok(self.admin("PUT", f"/users/{name}/orgs", json=[{"slug": org, "permission": permission}]))
            for slug in VISIBILITIES.values():
                _ok(self.client.post(f"/orgs/{org}/ds/{slug}/obj", files={"file": ("a.txt", b"hello")},
                                     data={"path": "a.txt"}, headers=owner), 201)
                _ok(self.client.post(f"/orgs/{org}/ds/{slug}/meta/name/set", json="n", headers=owner))
        snapshot = self.snapshot(org)
        assert sorted(snapshot["entries"]) == ["priv", "pub", "unl"]
        assert all([e["path"] for e in entries] == ([] if public else ["a.txt"])
                   for entries in snapshot["entries"].values())
        self.pristine[org] = snapshot

    def ensure_fresh(self) -> None:
        for org in sorted(self.dirty):
            self._build(org)
            self.dirty.discard(org)


@pytest.fixture(scope="module", params=BACKENDS)
def registry(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """One app per backend for the module, on a database of its own (PostgreSQL: skipped when no server
    answers). Nothing here talks to Prefect."""
    postgres = PostgresDatabase(require_postgres(request)) if request.param == "postgresql" else None
    directory = tmp_path_factory.mktemp(f"permissions-{request.param}")
    url = postgres.url if postgres else f"sqlite:///{directory / 'georeg.db'}"
    settings = Settings(
        data_dir=directory / "data", database_url=url, admin_password=ADMIN_PASSWORD, secret_key="test-secret-key",
        prefect_api_url="http://127.0.0.1:9/api", max_upload_bytes=4 * 1024 * 1024,
        password_hash_memory_kib=64, password_hash_time_cost=1,  # cheap argon2, as in tests/conftest.py
    )
    try:
        with TestClient(create_app(settings)) as client:
            yield Registry(client)
    finally:
        if postgres:
            postgres.drop()


@pytest.fixture
def world(registry: Registry) -> Registry:
    """The registry with ``acme`` and ``pubco`` in their pristine state."""
    registry.ensure_fresh()
    return registry


def _check(response, expected: int) -> None:
    if expected >= 400:
        assert_error(response, expected, ERROR_CODES.get(expected))
    else:
        assert response.status_code == expected, response.text


def _case_id(group: str, route: str, visibility: str | None, role: str, status: int) -> str:
    return "-".join(part for part in (group, route, visibility, role, str(status)) if part)


# --------------------------------------------------------------------------------------------- datasets


def _dataset_status(role: str, visibility: str, *, need: str, success: int) -> int:
    """The product's rules for a route on a dataset of ``acme`` (a private organization)."""
    if role == "anonymous":
        return success if need == "read" and visibility != "private" else 401
    if role in ALLOWED[need]:
        return success
    if role == "outsider":
        if visibility == "private":
            return 404
        return success if need == "read" else 403
    return 403


READ_ROUTES = {
    # name: url suffix after /orgs/acme/ds/{ds} (GET), or (method, url suffix, request kwargs)
    "get_ds": "",
    "ex": "/ex",
    "stamp": "/stamp",
    "ddb": "/ddb",
    "stac": "/stac",
    "builds": "/builds",
    "list": "/list",
    "get_obj": "/obj?path=a.txt",
    "download": "/download?path=a.txt",
    "meta_list": "/meta/list",
    "meta_get": "/meta/name",
    "meta_dump": ("POST", "/meta/dump", {}),
    # a.txt is neither an image nor a raster: whoever may read gets past the permission check to a 422
    "thumb": ("GET", "/thumb?path=a.txt", {}, 422),
    "tile": ("GET", "/tiles/3/4/2.png?path=a.txt", {}, 422),
    "tile_2x": ("GET", "/tiles/3/4/2@2x.png?path=a.txt", {}, 422),
}

WRITE_ROUTES = {
    # name: (method, url suffix, request kwargs, success status)
    "upload": ("POST", "/obj", {"files": {"file": ("b.txt", b"world")}, "data": {"path": "b.txt"}}, 201),
    "move": ("PUT", "/obj", {"json": {"source": "a.txt", "dest": "c.txt"}}, 200),
    "delete_obj": ("DELETE", "/obj?path=a.txt", {}, 200),
    "update_ds": ("PUT", "", {"json": {"description": "x"}}, 200),
    "meta_add": ("POST", "/meta/tags", {"json": "x"}, 200),
    "meta_set": ("POST", "/meta/name/set", {"json": "y"}, 200),
    "meta_delete": ("DELETE", "/meta/name", {}, 200),
    "builds_clear": ("POST", "/builds/clear", {}, 200),
    "build": ("POST", "/build", {"data": {"path": "a.txt"}}, 422),  # not buildable: refused before any task
}

ADMIN_ROUTES = {
    "chattr": ("POST", "/chattr", {"json": {"visibility": "private"}}, 200),
    "rename": ("POST", "/rename", {"json": {"slug": "renamed"}}, 200),
    "delete_ds": ("DELETE", "", {}, 204),
}


def _dataset_cases(group: str, routes: dict, need: str) -> list:
    cases = []
    for route, spec in routes.items():
        success = spec[-1] if isinstance(spec, tuple) and len(spec) == 4 else 200
        for visibility in VISIBILITIES:
            for role in ROLES:
                status = _dataset_status(role, visibility, need=need, success=success)
                cases.append(pytest.param(route, visibility, role, status,
                                          id=_case_id(group, route, visibility, role, status)))
    return cases


@pytest.mark.parametrize(("route", "visibility", "role", "expected"), _dataset_cases("read", READ_ROUTES, "read"))
def test_read_routes(world: Registry, route: str, visibility: str, role: str, expected: int) -> None:
    ds = VISIBILITIES[visibility]
    spec = READ_ROUTES[route]
    method, suffix, kwargs = ("GET", spec, {}) if isinstance(spec, str) else spec[:3]
    response = world.call(role, method, f"/orgs/{ORG}/ds/{ds}{suffix}", **kwargs)
    _check(response, expected)
    if expected != 200:
        return
    if route == "download":
        assert response.content == b"hello"
    elif route in ("get_ds", "list"):
        assert [entry["path"] for entry in response.json()] == ["a.txt"]
    elif route == "get_obj":
        assert response.json()["path"] == "a.txt"
    elif route == "meta_list":
        assert response.json() == [{"key": "name", "path": "", "count": 1}]
    elif route == "meta_get":
        assert response.json()["data"] == "n"
    elif route == "meta_dump":
        assert [(row["key"], row["data"]) for row in response.json()] == [("name", "n")]
    elif route == "ex":
        body = response.json()
        assert (body["slug"], body["visibility"]) == (ds, visibility)
        assert body["permissions"] == {
            "canRead": True, "canWrite": role in ALLOWED["write"], "canDelete": role in ALLOWED["admin"],
        }


@pytest.mark.parametrize(("route", "visibility", "role", "expected"), _dataset_cases("write", WRITE_ROUTES, "write"))
def test_write_routes(world: Registry, route: str, visibility: str, role: str, expected: int) -> None:
    method, suffix, kwargs, _ = WRITE_ROUTES[route]
    world.dirty.add(ORG)
    response = world.call(role, method, f"/orgs/{ORG}/ds/{VISIBILITIES[visibility]}{suffix}", **kwargs)
    _check(response, expected)
    if expected >= 400:
        world.assert_unchanged(ORG)


@pytest.mark.parametrize(("route", "visibility", "role", "expected"), _dataset_cases("admin", ADMIN_ROUTES, "admin"))
def test_admin_routes(world: Registry, route: str, visibility: str, role: str, expected: int) -> None:
    method, suffix, kwargs, _ = ADMIN_ROUTES[route]
    world.dirty.add(ORG)
    response = world.call(role, method, f"/orgs/{ORG}/ds/{VISIBILITIES[visibility]}{suffix}", **kwargs)
    _check(response, expected)
    if expected >= 400:
        world.assert_unchanged(ORG)


# ---------------------------------------------------------------------------------------------- push

PUSH_ROUTES = ["push_init", "push_upload", "push_meta", "push_commit"]


def _push_request(world: Registry, role: str, ds: str, route: str):
    """``route`` of a push adding ``b.txt`` and one metadata value to ``acme/ds``, sent by ``role``; the token is
    the caller's own when it may push, else the owner's (the dataset is checked before the token)."""
    url = f"/orgs/{ORG}/ds/{ds}/push"
    stamp = _ok(world.admin("GET", f"/orgs/{ORG}/ds/{ds}/stamp")).json()
    meta_id = str(uuid.uuid4())
    client_stamp = {"entries": [*stamp["entries"], {"b.txt": hashlib.sha256(b"world").hexdigest()}],
                    "meta": [*stamp["meta"], meta_id]}
    init = {"data": {"checksum": stamp["checksum"], "stamp": json.dumps(client_stamp)}}
    if route == "push_init":
        return world.call(role, "POST", f"{url}/init", **init)
    pusher = role if role in ALLOWED["write"] else "owner"
    token = _ok(world.call(pusher, "POST", f"{url}/init", **init)).json()["token"]
    upload = {"data": {"token": token, "path": "b.txt"}, "files": {"file": ("b.txt", b"world")}}
    meta = {"data": {"token": token, "meta": json.dumps([{"id": meta_id, "path": "", "key": "tags", "data": "x",
                                                          "mtime": 1_700_000_000}])}}
    if route == "push_upload":
        return world.call(role, "POST", f"{url}/upload", **upload)
    if route == "push_meta":
        return world.call(role, "POST", f"{url}/meta", **meta)
    _ok(world.call(pusher, "POST", f"{url}/upload", **upload))
    _ok(world.call(pusher, "POST", f"{url}/meta", **meta))
    return world.call(role, "POST", f"{url}/commit", data={"token": token})


@pytest.mark.parametrize(("route", "visibility", "role", "expected"), _dataset_cases(
    "push", {route: (200,) for route in PUSH_ROUTES}, "write"))
def test_push_routes(world: Registry, route: str, visibility: str, role: str, expected: int) -> None:
    world.dirty.add(ORG)
    response = _push_request(world, role, VISIBILITIES[visibility], route)
    _check(response, expected)
    if expected >= 400:
        world.assert_unchanged(ORG)
    elif route == "push_commit":
        assert [next(iter(entry)) for entry in response.json()["entries"]] == ["a.txt", "b.txt"]


# ---------------------------------------------------------------------------------------------- share

SHARE_TOKEN_ROUTES = {
    # name: (method, url suffix after /share/{token}, request kwargs)
    "share_get": ("GET", "", {}),
    "share_upload": ("POST", "/upload", {"data": {"path": "b.txt"}, "files": {"file": ("b.txt", b"world")}}),
    "share_chunked": ("POST", "/upload/chunked", {"data": {"fileId": "f", "chunkIndex": "0", "totalChunks": "1",
                                                           "totalFileSize": "5", "path": "b.txt"},
                                                  "files": {"chunk": ("blob", b"world")}}),
    "share_commit": ("POST", "/commit", {}),
    "share_rollback": ("POST", "/rollback", {}),
}


@pytest.mark.parametrize(("route", "visibility", "role", "expected"), _dataset_cases(
    "share", {"share_init": (200,), "batches": (200,)}, "write"))
def test_share_dataset_routes(world: Registry, route: str, visibility: str, role: str, expected: int) -> None:
    """``share/init`` into an existing dataset of acme (tag) and the dataset's batch listing: write permission."""
    ds = VISIBILITIES[visibility]
    world.dirty.add(ORG)
    if route == "share_init":
        response = world.call(role, "POST", "/share/init", data={"tag": f"{ORG}/{ds}"})
    else:
        response = world.call(role, "GET", f"/orgs/{ORG}/ds/{ds}/batches")
    _check(response, expected)
    if expected >= 400:
        world.assert_unchanged(ORG)
    elif route == "batches":
        assert set(response.json()) == {"items", "total", "skip", "take"}


def _share_token_status(role: str) -> int:
    """A share token is its user's: anyone else gets 403 (401 without a token)."""
    if role == "anonymous":
        return 401
    return 200 if role in ALLOWED["write"] else 403


@pytest.mark.parametrize(("route", "role", "expected"), [
    pytest.param(route, role, _share_token_status(role), id=_case_id("share", route, None, role,
                                                                      _share_token_status(role)))
    for route in SHARE_TOKEN_ROUTES for role in ROLES])
def test_share_token_routes(world: Registry, route: str, role: str, expected: int) -> None:
    """The token is the caller's own when it may write to ``acme/pub``, else the writer's."""
    world.dirty.add(ORG)
    sharer = role if role in ALLOWED["write"] else "writer"
    token = _ok(world.call(sharer, "POST", "/share/init", data={"tag": f"{ORG}/pub"})).json()["token"]
    if route == "share_commit":
        _ok(world.call(sharer, "POST", f"/share/{token}/upload", **SHARE_TOKEN_ROUTES["share_upload"][2]))
    method, suffix, kwargs = SHARE_TOKEN_ROUTES[route]
    response = world.call(role, method, f"/share/{token}{suffix}", **kwargs)
    _check(response, expected)
    if expected >= 400:
        _ok(world.call(sharer, "POST", f"/share/{token}/rollback"))
        world.assert_unchanged(ORG)
    elif route == "share_commit":
        listed = _ok(world.admin("GET", f"/orgs/{ORG}/ds/pub/list")).json()
        assert [entry["path"] for entry in listed] == ["a.txt", "b.txt"]


@pytest.mark.parametrize(("role", "expected"), [
    pytest.param(role, status, id=_case_id("sys", "cleanupbatches", None, role, status))
    for role, status in [(role, 200 if role == "sysadmin" else 401 if role == "anonymous" else 403)
                         for role in ROLES]])
def test_sys_cleanupbatches(world: Registry, role: str, expected: int) -> None:
    response = world.call(role, "POST", "/sys/cleanupbatches")
    if expected >= 400:
        assert_error(response, expected)  # 403 is ``admin_required``
    else:
        assert response.status_code == 200, response.text
        assert set(response.json()) == {"removedBatches", "removedDirs", "removeBatchErrors"}


SYS_ADMIN_ROUTES = {
    # name: (method, url, request kwargs) of the /sys administration routes that change nothing in the world
    # (cleanupdatasets would remove pubco's empty datasets: tests/api/test_admin.py checks its 401/403)
    "migratevisibility": ("POST", "/sys/migratevisibility", {}),
    "cleanup_jobindices": ("POST", "/sys/cleanup-jobindices", {"params": {"retentionDays": 30}}),
    "cleanup_dataset": ("POST", "/sys/cleanup", {"params": {"orgSlug": ORG, "dsSlug": "pub"}}),
    "move_datasets": ("POST", "/sys/move-datasets", {"json": {"sourceOrgSlug": ORG, "datasetSlugs": ["missing"],
                                                              "destinationOrgSlug": PUBLIC_ORG}}),
    "build_pending_status": ("GET", "/sys/build-pending-status", {}),
}


@pytest.mark.parametrize(("route", "role", "expected"), [
    pytest.param(route, role, status, id=_case_id("sys", route, None, role, status))
    for route in SYS_ADMIN_ROUTES
    for role, status in [(role, 200 if role == "sysadmin" else 401 if role == "anonymous" else 403)
                         for role in ROLES]])
def test_sys_administration(world: Registry, route: str, role: str, expected: int) -> None:
    method, url, kwargs = SYS_ADMIN_ROUTES[route]
    world.dirty.update({ORG, PUBLIC_ORG})
    response = world.call(role, method, url, **kwargs)
    if expected >= 400:
        assert_error(response, expected)  # 403 is ``admin_required``
    else:
        assert response.status_code == expected, response.text
    world.assert_unchanged(ORG)
    world.assert_unchanged(PUBLIC_ORG)


SYS_IMPORT_ROUTES = {
    # name: (url, body) of the imports from another registry, with a source URL that has a path: an admin gets
    # ``400 invalid_source_url`` before any network call (tests/flows/test_registry_import.py imports for real)
    "import_dataset": ("/sys/import-dataset", {"sourceRegistryUrl": "http://127.0.0.1:9/orgs",
                                              "sourceOrganization": ORG, "sourceDataset": "pub", "mode": "files"}),
    "import_organization": ("/sys/import-organization", {"sourceRegistryUrl": "http://127.0.0.1:9/orgs",
                                                         "sourceOrganization": ORG, "mode": "archive"}),
}


@pytest.mark.parametrize(("route", "role", "expected"), [
    pytest.param(route, role, status, id=_case_id("sys", route, None, role, status))
    for route in SYS_IMPORT_ROUTES
    for role, status in [(role, 400 if role == "sysadmin" else 401 if role == "anonymous" else 403)
                         for role in ROLES]])
def test_sys_imports(world: Registry, route: str, role: str, expected: int) -> None:
    url, body = SYS_IMPORT_ROUTES[route]
    world.dirty.update({ORG, PUBLIC_ORG})
    response = world.call(role, "POST", url, json=body)
    code = {400: "invalid_source_url", 401: None, 403: "admin_required"}[expected]
    assert_error(response, expected, code)
    world.assert_unchanged(ORG)
    world.assert_unchanged(PUBLIC_ORG)


# ------------------------------------------------------------------------------------- organizations


def _org_status(role: str, *, need: str, success: int) -> int:
    """The rules on ``acme``, a private organization."""
    if role == "anonymous":
        return 401
    if role == "outsider":
        return 404
    return success if role in ALLOWED[need] else 403


ORG_ROUTES = {
    # name: (method, url, request kwargs, needed permission, success status)
    "get_org": ("GET", f"/orgs/{ORG}", {}, "read", 200),
    "update_org": ("PUT", f"/orgs/{ORG}", {"json": {"description": "x"}}, "admin", 200),
    "create_ds": ("POST", f"/orgs/{ORG}/ds", {"json": {"slug": "newds", "visibility": "public"}}, "write", 201),
    "push_init_new_ds": ("POST", f"/orgs/{ORG}/ds/newds/push/init",
                         {"data": {"checksum": "", "stamp": '{"entries": [], "meta": []}'}}, "write", 200),
    "share_init_new_ds": ("POST", "/share/init", {"data": {"orgSlug": ORG, "datasetName": "Shared"}}, "write", 200),
    "share_init_tag_new_ds": ("POST", "/share/init", {"data": {"tag": f"{ORG}/newds"}}, "write", 200),
    "delete_org": ("DELETE", f"/orgs/{ORG}", {}, "admin", 204),
}


def _org_cases() -> list:
    cases = []
    for route, (_, _, _, need, success) in ORG_ROUTES.items():
        for role in ROLES:
            status = _org_status(role, need=need, success=success)
            cases.append(pytest.param(route, role, status, id=_case_id("org", route, "private_org", role, status)))
    return cases


@pytest.mark.parametrize(("route", "role", "expected"), _org_cases())
def test_private_org_routes(world: Registry, route: str, role: str, expected: int) -> None:
    method, url, kwargs, _, _ = ORG_ROUTES[route]
    if method != "GET":
        world.dirty.add(ORG)
    response = world.call(role, method, url, **kwargs)
    _check(response, expected)
    if expected >= 400:
        world.assert_unchanged(ORG)
    elif route == "get_org":
        body = response.json()
        assert (body["slug"], body["owner"], body["isPublic"]) == (ORG, "owner", False)


PUBLIC_ORG_CASES = [
    ("get_org", "anonymous", 200),
    ("get_org", "outsider", 200),
    ("get_org", "reader", 200),  # a member of acme only: an outsider to pubco
    ("get_org", "owner", 200),
    ("get_org", "sysadmin", 200),
    ("update_org", "anonymous", 401),
    ("update_org", "outsider", 403),
    ("update_org", "orgadmin", 403),  # admin of acme, not of pubco
    ("update_org", "owner", 200),
    ("update_org", "sysadmin", 200),
]


@pytest.mark.parametrize(
    ("route", "role", "expected"),
    [pytest.param(*case, id=_case_id("org", case[0], "public_org", case[1], case[2])) for case in PUBLIC_ORG_CASES],
)
def test_public_org_routes(world: Registry, route: str, role: str, expected: int) -> None:
    if route == "get_org":
        response = world.call(role, "GET", f"/orgs/{PUBLIC_ORG}")
    else:
        world.dirty.add(PUBLIC_ORG)
        response = world.call(role, "PUT", f"/orgs/{PUBLIC_ORG}", json={"description": "x"})
    _check(response, expected)
    if expected >= 400:
        world.assert_unchanged(PUBLIC_ORG)
    elif route == "get_org":
        assert (response.json()["slug"], response.json()["isPublic"]) == (PUBLIC_ORG, True)
    else:
        assert _ok(world.admin("GET", f"/orgs/{PUBLIC_ORG}")).json()["description"] == "x"


PUBLIC_ORG_DATASET_CASES = [
    # Datasets of a public organization: for non-members the dataset's visibility still rules.
    ("get_ds", "public", "anonymous", 200),
    ("get_ds", "unlisted", "anonymous", 200),
    ("get_ds", "private", "anonymous", 401),
    ("get_ds", "public", "outsider", 200),
    ("get_ds", "private", "outsider", 404),
    ("get_ds", "private", "owner", 200),
    ("update_ds", "public", "anonymous", 401),
    ("update_ds", "public", "outsider", 403),
    ("update_ds", "unlisted", "outsider", 403),
    ("update_ds", "private", "outsider", 404),
    ("update_ds", "private", "owner", 200),
]


@pytest.mark.parametrize(
    ("route", "visibility", "role", "expected"),
    [pytest.param(*case, id=_case_id("pubds", *case)) for case in PUBLIC_ORG_DATASET_CASES],
)
def test_public_org_datasets(world: Registry, route: str, visibility: str, role: str, expected: int) -> None:
    url = f"/orgs/{PUBLIC_ORG}/ds/{VISIBILITIES[visibility]}"
    if route == "get_ds":
        response = world.call(role, "GET", url)
    else:
        world.dirty.add(PUBLIC_ORG)
        response = world.call(role, "PUT", url, json={"description": "x"})
    _check(response, expected)
    if expected >= 400 and route != "get_ds":
        world.assert_unchanged(PUBLIC_ORG)
    elif route == "get_ds" and expected == 200:
        assert response.json() == []


# ------------------------------------------------------------------------------------------- listings


LISTING_CASES = [
    # (org, role, expected status, dataset slugs listed)
    (ORG, "reader", 200, ["priv", "pub", "unl"]),
    (ORG, "writer", 200, ["priv", "pub", "unl"]),
    (ORG, "orgadmin", 200, ["priv", "pub", "unl"]),
    (ORG, "owner", 200, ["priv", "pub", "unl"]),
    (ORG, "sysadmin", 200, ["priv", "pub", "unl"]),
    (ORG, "outsider", 404, None),
    (ORG, "anonymous", 401, None),
    (PUBLIC_ORG, "anonymous", 200, ["pub"]),
    (PUBLIC_ORG, "outsider", 200, ["pub"]),
    (PUBLIC_ORG, "reader", 200, ["pub"]),  # not a member of pubco
    (PUBLIC_ORG, "owner", 200, ["priv", "pub", "unl"]),
    (PUBLIC_ORG, "sysadmin", 200, ["priv", "pub", "unl"]),
]


@pytest.mark.parametrize(
    ("org", "role", "expected", "slugs"),
    [pytest.param(*case, id=_case_id("list_ds", case[0], None, case[1], case[2])) for case in LISTING_CASES],
)
def test_list_datasets(world: Registry, org: str, role: str, expected: int, slugs: list[str] | None) -> None:
    response = world.call(role, "GET", f"/orgs/{org}/ds")
    _check(response, expected)
    if expected == 200:
        body = response.json()
        assert body["total"] == len(slugs)
        assert sorted(ds["slug"] for ds in body["items"]) == slugs


PERSONAL_ORGS = ["admin", *USERS]  # every user has a private personal organization named after it
ORG_LISTING_CASES = [
    # role -> organizations listed by GET /orgs
    ("anonymous", [PUBLIC_ORG]),
    ("outsider", ["outsider", PUBLIC_ORG]),
    ("reader", [ORG, PUBLIC_ORG, "reader"]),
    ("owner", [ORG, "owner", PUBLIC_ORG]),
    ("sysadmin", [ORG, "default", PUBLIC_ORG, *PERSONAL_ORGS]),
]


@pytest.mark.parametrize(
    ("role", "orgs"),
    [pytest.param(*case, id=_case_id("list_orgs", "orgs", None, case[0], 200)) for case in ORG_LISTING_CASES],
)
def test_list_orgs(world: Registry, role: str, orgs: list[str]) -> None:
    body = _ok(world.call(role, "GET", "/orgs")).json()
    assert body["total"] == len(orgs)
    assert sorted(org["slug"] for org in body["items"]) == sorted(orgs)
    public = _ok(world.call(role, "GET", "/orgs/public")).json()
    assert public["total"] == 1
    assert [org["slug"] for org in public["items"]] == [PUBLIC_ORG]
