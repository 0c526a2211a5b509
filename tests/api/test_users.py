"""Authentication, lockout, users, roles and memberships."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session

from georeg.core.registry import users as user_repo
from georeg.core.security import ACCESS, issue_token
from tests.helpers import ADMIN_PASSWORD, assert_error, create_dataset, login


def test_authenticate_returns_tokens(client):
    response = client.post("/users/authenticate", json={"userName": "admin", "password": ADMIN_PASSWORD})
    body = response.json()
    assert response.status_code == 200
    assert {"token", "expires", "refreshToken", "username", "email", "roles"} <= set(body)
    assert body["username"] == "admin" and body["roles"] == ["admin"]
    assert body["expires"].endswith("Z") or body["expires"].endswith("+00:00")


def test_wrong_password_and_unknown_user_are_401(client):
    assert_error(client.post("/users/authenticate", json={"userName": "admin", "password": "nope"}), 401,
                 "invalid_credentials")
    assert_error(client.post("/users/authenticate", json={"userName": "ghost", "password": "x"}), 401,
                 "invalid_credentials")


def test_bad_json_and_missing_fields_are_422(client):
    response = client.post("/users/authenticate", content=b"{not json", headers={"content-type": "application/json"})
    assert_error(response, 422, "validation_error")
    body = assert_error(client.post("/users/authenticate", json={"userName": "admin"}), 422, "validation_error")
    assert "password" in body["error"]


def test_lockout_after_five_failures(client, make_user):
    make_user("lena", "right-password")
    for _attempt in range(5):
        assert_error(client.post("/users/authenticate", json={"userName": "lena", "password": "bad"}), 401)
    locked = client.post("/users/authenticate", json={"userName": "lena", "password": "right-password"})
    assert_error(locked, 429, "account_locked")
    assert int(locked.headers["Retry-After"]) > 0


def test_lockout_expires(client, make_user):
    make_user("mia", "right-password")
    for _ in range(5):
        client.post("/users/authenticate", json={"userName": "mia", "password": "bad"})
    with Session(client.app.state.engine) as session:
        user = user_repo.get_user(session, username="mia")
        user.locked_until = user.locked_until - timedelta(minutes=16)
        session.add(user)
        session.commit()
    assert client.post("/users/authenticate", json={"userName": "mia", "password": "right-password"}).status_code == 200


def test_successful_login_resets_failure_count(client, make_user):
    make_user("nils", "right-password")
    for _ in range(4):
        client.post("/users/authenticate", json={"userName": "nils", "password": "bad"})
    login(client, "nils", "right-password")
    for _ in range(4):
        client.post("/users/authenticate", json={"userName": "nils", "password": "bad"})
    login(client, "nils", "right-password")


def test_refresh_with_refresh_token_or_bearer(client):
    tokens = client.post("/users/authenticate", json={"userName": "admin", "password": ADMIN_PASSWORD}).json()
    by_refresh = client.post("/users/authenticate/refresh", json={"refreshToken": tokens["refreshToken"]})
    assert by_refresh.status_code == 200 and by_refresh.json()["token"]
    by_bearer = client.post("/users/authenticate/refresh", headers={"Authorization": f"Bearer {tokens['token']}"})
    assert by_bearer.status_code == 200
    assert_error(client.post("/users/authenticate/refresh", json={"refreshToken": tokens["token"]}), 401,
                 "invalid_token")
    assert_error(client.post("/users/authenticate/refresh"), 401)


def test_invalid_and_expired_tokens_are_401(client):
    assert_error(client.get("/users/storage", headers={"Authorization": "Bearer garbage"}), 401, "invalid_token")
    assert_error(client.get("/users/storage", headers={"Authorization": "Basic abc"}), 401, "invalid_token")
    expired, _ = issue_token(username="admin", kind=ACCESS, secret="test-secret-key", lifetime=timedelta(seconds=-1))
    assert_error(client.get("/users/storage", headers={"Authorization": f"Bearer {expired}"}), 401, "invalid_token")
    response = client.get("/users/storage")
    assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_user_management_is_admin_only(client, admin_headers, make_user):
    user_headers = make_user("olga")
    for method, route, payload in [
        ("get", "/users", None), ("get", "/users/detailed", None),
        ("post", "/users", {"userName": "x1", "password": "p"}), ("put", "/users/olga", {"email": "a@b"}),
        ("delete", "/users/admin", None), ("put", "/users/admin/changepwd", {"newPassword": "p"}),
        ("post", "/users/roles/editor", None), ("delete", "/users/roles/admin", None),
        ("put", "/users/olga/orgs", []), ("get", "/users/admin/storage", None),
    ]:
        kwargs = {"json": payload} if payload is not None else {}
        assert_error(client.request(method, route, headers=user_headers, **kwargs), 403, "admin_required")
        assert_error(client.request(method, route, **kwargs), 401)


def test_user_crud(client, admin_headers, make_user):
    make_user("pia")
    listing = client.get("/users", headers=admin_headers).json()
    assert listing["total"] == 2 and [u["userName"] for u in listing["items"]] == ["admin", "pia"]
    detailed = client.get("/users/detailed", headers=admin_headers).json()["items"]
    pia = next(u for u in detailed if u["userName"] == "pia")
    assert pia["organizations"] == ["pia"] and pia["storageUsed"] == 0
    assert_error(client.post("/users", json={"userName": "pia", "password": "x"}, headers=admin_headers), 409,
                 "user_exists")
    assert_error(client.post("/users", json={"userName": "Bad Name", "password": "x"}, headers=admin_headers), 400)
    client.post("/users/roles/editor", headers=admin_headers)
    updated = client.put("/users/pia", json={"email": "p@x.org", "roles": ["editor"]}, headers=admin_headers)
    assert updated.json() == {"userName": "pia", "email": "p@x.org", "roles": ["editor"]}
    assert_error(client.put("/users/pia", json={"roles": ["nope"]}, headers=admin_headers), 400, "unknown_role")
    assert client.delete("/users/pia", headers=admin_headers).status_code == 204
    assert_error(client.get("/orgs/pia", headers=admin_headers), 404)
    assert_error(client.delete("/users/pia", headers=admin_headers), 404, "user_not_found")
    assert_error(client.delete("/users/admin", headers=admin_headers), 400, "self_delete")


def test_roles(client, admin_headers):
    assert client.get("/users/roles", headers=admin_headers).json() == ["admin"]
    assert client.post("/users/roles/editor", headers=admin_headers).status_code == 201
    assert_error(client.post("/users/roles/editor", headers=admin_headers), 409, "role_exists")
    assert_error(client.post("/users/roles/bad%20role", headers=admin_headers), 400, "invalid_role")
    assert client.get("/users/roles", headers=admin_headers).json() == ["admin", "editor"]
    assert client.delete("/users/roles/editor", headers=admin_headers).status_code == 204
    assert_error(client.delete("/users/roles/admin", headers=admin_headers), 400, "builtin_role")
    assert_error(client.delete("/users/roles/ghost", headers=admin_headers), 404)


def test_change_password(client, admin_headers, make_user):
    headers = make_user("quinn", "first-pw")
    assert_error(client.post("/users/changepwd", json={"oldPassword": "wrong", "newPassword": "x"}, headers=headers),
                 401, "wrong_password")
    assert client.post("/users/changepwd", json={"oldPassword": "first-pw", "newPassword": "second-pw"},
                       headers=headers).status_code == 204
    login(client, "quinn", "second-pw")
    assert client.put("/users/quinn/changepwd", json={"newPassword": "third-pw"},
                      headers=admin_headers).status_code == 204
    login(client, "quinn", "third-pw")


def test_user_orgs_membership(client, admin_headers, make_user):
    headers = make_user("rita")
    client.post("/orgs", json={"slug": "team", "name": "Team"}, headers=admin_headers)
    put = client.put("/users/rita/orgs", json=[{"slug": "team", "permission": "write"}], headers=admin_headers)
    assert put.status_code == 200
    orgs = client.get("/users/rita/orgs", headers=headers).json()
    assert {o["slug"]: o["permission"] for o in orgs} == {"rita": "admin", "team": "write"}
    assert_error(client.get("/users/admin/orgs", headers=headers), 403)
    assert_error(client.put("/users/rita/orgs", json=["missing-org"], headers=admin_headers), 404, "org_not_found")
    assert {o["slug"] for o in client.get("/users/rita/orgs", headers=headers).json()} == {"rita", "team"}


def test_storage_and_meta(client, admin_headers, make_user):
    headers = make_user("sam")
    assert client.get("/users/storage", headers=headers).json() == {"total": None, "used": 0}
    client.put("/users/sam", json={"storageQuota": 10}, headers=admin_headers)
    assert client.get("/users/sam/storage", headers=admin_headers).json() == {"total": 10, "used": 0}
    create_dataset(client, headers, org="sam")
    over = client.post("/orgs/sam/ds/d/obj", files={"file": ("a.bin", b"x" * 11)}, headers=headers)
    assert_error(over, 429, "storage_quota_exceeded")
    assert client.get("/orgs/sam/ds/d/list", headers=headers).json() == []
    assert client.post("/users/sam/meta", json={"theme": "dark"}, headers=admin_headers).json() == {"theme": "dark"}
    assert client.get("/users/sam/meta", headers=headers).json() == {"theme": "dark"}


def test_the_last_administrator_keeps_the_admin_role(client, admin_headers, make_user):
    assert_error(client.put("/users/admin", json={"roles": []}, headers=admin_headers), 409, "last_admin")
    assert client.get("/sys/tasks", headers=admin_headers).status_code == 200
    make_user("ada", roles=["admin"])
    response = client.put("/users/admin", json={"roles": []}, headers=admin_headers)
    assert response.status_code == 200 and response.json()["roles"] == [], response.text
