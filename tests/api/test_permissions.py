"""Permission matrix: role x route x dataset visibility -> exact status (after DroneDB's PermissionMatrixTest).

The world (built per test through the API): user ``owner`` owns the private organization ``acme``;
``reader``/``writer``/``orgadmin`` are members with read/write/admin; ``outsider`` is an authenticated
user with no membership; ``sysadmin`` is the built-in administrator; ``anonymous`` sends no token.
``acme`` holds one dataset per visibility (``pub``, ``unl``, ``priv``), each with the file ``a.txt``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from passlib.context import CryptContext

import georeg.core.security as security
from tests.conftest import assert_error

ORG = "acme"
PUBLIC_ORG = "pubco"
VISIBILITIES = {"public": "pub", "unlisted": "unl", "private": "priv"}
MEMBERS = {"reader": "read", "writer": "write", "orgadmin": "admin"}
ROLES = ["reader", "writer", "orgadmin", "owner", "sysadmin", "outsider", "anonymous"]
ERROR_CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found"}

# Argon2 at its cheapest: the matrix logs in six users per test; the hash cost is irrelevant here.
_FAST_HASHING = CryptContext(schemes=["argon2"], argon2__rounds=1, argon2__memory_cost=8, argon2__parallelism=1)


@pytest.fixture(autouse=True)
def _fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(security, "_context", lambda: _FAST_HASHING)


@dataclass
class World:
    client: object
    headers: dict[str, dict[str, str]]

    def call(self, role: str, method: str, url: str, **kwargs):  # noqa: ANN201
        return self.client.request(method, url, headers=self.headers[role], **kwargs)

    def admin(self, method: str, url: str, **kwargs):  # noqa: ANN201
        return self.call("sysadmin", method, url, **kwargs)


def _ok(response, status: int = 200):  # noqa: ANN001, ANN202
    assert response.status_code == status, response.text
    return response


def _create_datasets(client, headers: dict[str, str], org: str) -> None:  # noqa: ANN001
    for visibility, slug in VISIBILITIES.items():
        _ok(client.post(f"/orgs/{org}/ds", json={"slug": slug, "visibility": visibility}, headers=headers), 201)


@pytest.fixture
def world(client, admin_headers, make_user) -> World:  # noqa: ANN001
    headers = {name: make_user(name) for name in ["owner", *MEMBERS, "outsider"]}
    headers["sysadmin"] = admin_headers
    headers["anonymous"] = {}
    _ok(client.post("/orgs", json={"slug": ORG, "name": "Acme", "isPublic": False}, headers=headers["owner"]), 201)
    for name, permission in MEMBERS.items():
        _ok(client.put(f"/users/{name}/orgs", json=[{"slug": ORG, "permission": permission}], headers=admin_headers))
    _create_datasets(client, headers["owner"], ORG)
    for slug in VISIBILITIES.values():
        _ok(client.post(f"/orgs/{ORG}/ds/{slug}/obj", files={"file": ("a.txt", b"hello")}, data={"path": "a.txt"},
                        headers=headers["owner"]), 201)
    return World(client=client, headers=headers)


@pytest.fixture
def public_org(world: World) -> World:
    """Also ``pubco``: a public organization owned by ``owner`` with the same three datasets (no files)."""
    owner = world.headers["owner"]
    _ok(world.client.post("/orgs", json={"slug": PUBLIC_ORG, "name": "Pub Co", "isPublic": True}, headers=owner), 201)
    _create_datasets(world.client, owner, PUBLIC_ORG)
    return world


def _check(response, expected: int) -> None:  # noqa: ANN001
    if expected >= 400:
        assert_error(response, expected, ERROR_CODES[expected])
    else:
        assert response.status_code == expected, response.text


def _case_id(group: str, route: str, visibility: str | None, role: str, status: int) -> str:
    return "-".join(part for part in (group, route, visibility, role, str(status)) if part)


# --------------------------------------------------------------------------------------------- datasets


def _dataset_status(role: str, visibility: str, *, need: str, success: int) -> int:
    """The product's rules for a route on a dataset of ``acme`` (a private organization)."""
    if role == "anonymous":
        return success if need == "read" and visibility != "private" else 401
    allowed = {
        "read": {"reader", "writer", "orgadmin", "owner", "sysadmin"},
        "write": {"writer", "orgadmin", "owner", "sysadmin"},
        "admin": {"orgadmin", "owner", "sysadmin"},
    }[need]
    if role in allowed:
        return success
    if role == "outsider":
        if visibility == "private":
            return 404
        return success if need == "read" else 403
    return 403


READ_ROUTES = {
    # name: (method, url suffix after /orgs/acme/ds/{ds})
    "get_ds": ("GET", ""),
    "ex": ("GET", "/ex"),
    "stamp": ("GET", "/stamp"),
    "list": ("GET", "/list"),
    "get_obj": ("GET", "/obj?path=a.txt"),
    "download": ("GET", "/download?path=a.txt"),
}

WRITE_ROUTES = {
    # name: (method, url suffix, request kwargs, success status)
    "upload": ("POST", "/obj", {"files": {"file": ("b.txt", b"world")}, "data": {"path": "b.txt"}}, 201),
    "move": ("PUT", "/obj", {"json": {"source": "a.txt", "dest": "c.txt"}}, 200),
    "delete_obj": ("DELETE", "/obj?path=a.txt", {}, 200),
    "update_ds": ("PUT", "", {"json": {"description": "x"}}, 200),
}

ADMIN_ROUTES = {
    "chattr": ("POST", "/chattr", {"json": {"visibility": "private"}}, 200),
    "rename": ("POST", "/rename", {"json": {"slug": "renamed"}}, 200),
    "delete_ds": ("DELETE", "", {}, 204),
}


def _dataset_cases(group: str, routes: dict, need: str) -> list:
    cases = []
    for route, spec in routes.items():
        success = spec[-1] if need != "read" else 200
        for visibility in VISIBILITIES:
            for role in ROLES:
                status = _dataset_status(role, visibility, need=need, success=success)
                cases.append(pytest.param(route, visibility, role, status,
                                          id=_case_id(group, route, visibility, role, status)))
    return cases


@pytest.mark.parametrize(("route", "visibility", "role", "expected"), _dataset_cases("read", READ_ROUTES, "read"))
def test_read_routes(world: World, route: str, visibility: str, role: str, expected: int) -> None:
    method, suffix = READ_ROUTES[route]
    response = world.call(role, method, f"/orgs/{ORG}/ds/{VISIBILITIES[visibility]}{suffix}")
    _check(response, expected)
    if expected != 200:
        return
    if route == "download":
        assert response.content == b"hello"
    elif route in ("get_ds", "list"):
        assert [entry["path"] for entry in response.json()] == ["a.txt"]
    elif route == "get_obj":
        assert response.json()["path"] == "a.txt"
    elif route == "ex":
        body = response.json()
        assert body["slug"] == VISIBILITIES[visibility] and body["visibility"] == visibility
        assert body["permissions"]["canRead"] is True


def _paths(world: World, ds: str) -> set[str]:
    return {entry["path"] for entry in _ok(world.admin("GET", f"/orgs/{ORG}/ds/{ds}/list")).json()}


@pytest.mark.parametrize(("route", "visibility", "role", "expected"), _dataset_cases("write", WRITE_ROUTES, "write"))
def test_write_routes(world: World, route: str, visibility: str, role: str, expected: int) -> None:
    method, suffix, kwargs, _ = WRITE_ROUTES[route]
    ds = VISIBILITIES[visibility]
    response = world.call(role, method, f"/orgs/{ORG}/ds/{ds}{suffix}", **kwargs)
    _check(response, expected)
    if expected < 400:
        return
    # Denied: nothing changed.
    assert _paths(world, ds) == {"a.txt"}
    info = _ok(world.admin("GET", f"/orgs/{ORG}/ds/{ds}/ex")).json()
    assert info["description"] != "x"


@pytest.mark.parametrize(("route", "visibility", "role", "expected"), _dataset_cases("admin", ADMIN_ROUTES, "admin"))
def test_admin_routes(world: World, route: str, visibility: str, role: str, expected: int) -> None:
    method, suffix, kwargs, _ = ADMIN_ROUTES[route]
    ds = VISIBILITIES[visibility]
    response = world.call(role, method, f"/orgs/{ORG}/ds/{ds}{suffix}", **kwargs)
    _check(response, expected)
    if expected < 400:
        return
    # Denied: the dataset is still there, under its slug and with its visibility.
    info = _ok(world.admin("GET", f"/orgs/{ORG}/ds/{ds}/ex")).json()
    assert (info["slug"], info["visibility"]) == (ds, visibility)
    assert_error(world.admin("GET", f"/orgs/{ORG}/ds/renamed/ex"), 404)


# ------------------------------------------------------------------------------------- organizations


def _org_status(role: str, *, need: str, success: int) -> int:
    """The rules on ``acme``, a private organization."""
    if role == "anonymous":
        return 401
    if role == "outsider":
        return 404
    allowed = {
        "read": {"reader", "writer", "orgadmin", "owner", "sysadmin"},
        "write": {"writer", "orgadmin", "owner", "sysadmin"},
        "admin": {"orgadmin", "owner", "sysadmin"},
    }[need]
    return success if role in allowed else 403


ORG_ROUTES = {
    # name: (method, url, request kwargs, needed permission, success status)
    "get_org": ("GET", f"/orgs/{ORG}", {}, "read", 200),
    "update_org": ("PUT", f"/orgs/{ORG}", {"json": {"description": "x"}}, "admin", 200),
    "create_ds": ("POST", f"/orgs/{ORG}/ds", {"json": {"slug": "newds", "visibility": "public"}}, "write", 201),
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
def test_private_org_routes(world: World, route: str, role: str, expected: int) -> None:
    method, url, kwargs, _, _ = ORG_ROUTES[route]
    response = world.call(role, method, url, **kwargs)
    _check(response, expected)
    if expected < 400:
        if route == "get_org":
            body = response.json()
            assert (body["slug"], body["owner"], body["isPublic"]) == (ORG, "owner", False)
        return
    # Denied: the organization is unchanged and no dataset was created.
    org = _ok(world.admin("GET", f"/orgs/{ORG}")).json()
    assert org["description"] != "x"
    listing = _ok(world.admin("GET", f"/orgs/{ORG}/ds")).json()
    assert sorted(ds["slug"] for ds in listing["items"]) == ["priv", "pub", "unl"]


PUBLIC_ORG_CASES = [
    ("get_org", "anonymous", 200),
    ("get_org", "outsider", 200),
    ("get_org", "reader", 200),  # a member of acme only: an outsider to pubco
    ("get_org", "owner", 200),
    ("get_org", "sysadmin", 200),
    ("update_org", "anonymous", 401),
    ("update_org", "outsider", 403),
    ("update_org", "reader", 403),
    ("update_org", "owner", 200),
    ("update_org", "sysadmin", 200),
]


@pytest.mark.parametrize(
    ("route", "role", "expected"),
    [pytest.param(*case, id=_case_id("org", case[0], "public_org", case[1], case[2])) for case in PUBLIC_ORG_CASES],
)
def test_public_org_routes(public_org: World, route: str, role: str, expected: int) -> None:
    world = public_org
    if route == "get_org":
        response = world.call(role, "GET", f"/orgs/{PUBLIC_ORG}")
    else:
        response = world.call(role, "PUT", f"/orgs/{PUBLIC_ORG}", json={"description": "x"})
    _check(response, expected)
    org = _ok(world.admin("GET", f"/orgs/{PUBLIC_ORG}")).json()
    assert (org["slug"], org["isPublic"]) == (PUBLIC_ORG, True)
    assert (org["description"] == "x") == (route == "update_org" and expected == 200)


PUBLIC_ORG_DATASET_CASES = [
    # Datasets of a public organization: visibility still rules for non-members.
    ("get_ds", "public", "anonymous", 200),
    ("get_ds", "unlisted", "anonymous", 200),
    ("get_ds", "private", "anonymous", 401),
    ("get_ds", "private", "outsider", 404),
    ("get_ds", "private", "owner", 200),
    ("update_ds", "public", "outsider", 403),
    ("update_ds", "public", "anonymous", 401),
    ("update_ds", "private", "outsider", 404),
]


@pytest.mark.parametrize(
    ("route", "visibility", "role", "expected"),
    [pytest.param(*case, id=_case_id("pubds", *case)) for case in PUBLIC_ORG_DATASET_CASES],
)
def test_public_org_datasets(public_org: World, route: str, visibility: str, role: str, expected: int) -> None:
    url = f"/orgs/{PUBLIC_ORG}/ds/{VISIBILITIES[visibility]}"
    if route == "get_ds":
        response = public_org.call(role, "GET", url)
    else:
        response = public_org.call(role, "PUT", url, json={"description": "x"})
    _check(response, expected)


# ------------------------------------------------------------------------------------------- listings


LISTING_CASES = [
    # (org, role, expected status, expected dataset slugs)
    (ORG, "reader", 200, ["priv", "pub", "unl"]),
    (ORG, "writer", 200, ["priv", "pub", "unl"]),
    (ORG, "orgadmin", 200, ["priv", "pub", "unl"]),
    (ORG, "owner", 200, ["priv", "pub", "unl"]),
    (ORG, "sysadmin", 200, ["priv", "pub", "unl"]),
    (ORG, "outsider", 404, None),
    (ORG, "anonymous", 401, None),
    (PUBLIC_ORG, "anonymous", 200, ["pub"]),
    (PUBLIC_ORG, "outsider", 200, ["pub"]),
    (PUBLIC_ORG, "owner", 200, ["priv", "pub", "unl"]),
    (PUBLIC_ORG, "sysadmin", 200, ["priv", "pub", "unl"]),
]


@pytest.mark.parametrize(
    ("org", "role", "expected", "slugs"),
    [pytest.param(*case, id=_case_id("list_ds", case[0], None, case[1], case[2])) for case in LISTING_CASES],
)
def test_list_datasets(public_org: World, org: str, role: str, expected: int, slugs: list[str] | None) -> None:
    response = public_org.call(role, "GET", f"/orgs/{org}/ds")
    _check(response, expected)
    if expected == 200:
        body = response.json()
        assert body["total"] == len(slugs)
        assert sorted(ds["slug"] for ds in body["items"]) == slugs


ORG_LISTING_CASES = [
    # role -> organizations GET /orgs shows (every user has a private personal org named after it)
    ("anonymous", [PUBLIC_ORG]),
    ("outsider", ["outsider", PUBLIC_ORG]),
    ("reader", [ORG, PUBLIC_ORG, "reader"]),
    ("owner", [ORG, "owner", PUBLIC_ORG]),
    ("sysadmin", [ORG, "admin", "default", "orgadmin", "outsider", "owner", PUBLIC_ORG, "reader", "writer"]),
]


@pytest.mark.parametrize(
    ("role", "orgs"), [pytest.param(*case, id=_case_id("list_orgs", "orgs", None, case[0], 200)) for case in ORG_LISTING_CASES]
)
def test_list_orgs(public_org: World, role: str, orgs: list[str]) -> None:
    body = _ok(public_org.call(role, "GET", "/orgs")).json()
    assert body["total"] == len(orgs)
    assert sorted(org["slug"] for org in body["items"]) == sorted(orgs)
    public = _ok(public_org.call(role, "GET", "/orgs/public")).json()
    assert public["total"] == 1
    assert [org["slug"] for org in public["items"]] == [PUBLIC_ORG]
