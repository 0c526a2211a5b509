"""The web interface's forms without a browser: the session cookie (flags, the same JWT as the JSON API), CSRF
tokens, readable error pages, permissions of the pages, and that the pages stay out of the JSON API."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from georeg.core.db import make_engine
from georeg.core.models import Dataset, Organization, Task
from tests.helpers import ADMIN_PASSWORD, create_dataset, upload_object

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def backend() -> str:
    """The pages call the same core functions as the JSON API, whose tests run on both databases: SQLite here."""
    return "sqlite"


def csrf_of(client: TestClient, path: str = "/signin") -> str:
    response = client.get(path)
    assert response.status_code == 200, response.text
    match = CSRF.search(response.text)
    assert match, response.text
    assert client.cookies.get("georeg_csrf") == match.group(1)
    return match.group(1)


def sign_in(client: TestClient, username: str = "admin", password: str = ADMIN_PASSWORD) -> httpx.Response:
    token = csrf_of(client)
    return client.post("/signin", data={"username": username, "password": password, "csrf_token": token,
                                        "next": "/"}, follow_redirects=False)


def set_cookie_headers(response: httpx.Response, name: str) -> list[str]:
    return [value for key, value in response.headers.multi_items()
            if key == "set-cookie" and value.startswith(f"{name}=")]


def assert_html_error(response: httpx.Response, status: int, text: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert text in response.text
    assert "Traceback" not in response.text


def test_home_page_is_html_with_a_strict_policy(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert "<h1>Organizations</h1>" in response.text
    (cookie,) = set_cookie_headers(response, "georeg_csrf")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict") and "Path=/" in cookie


def test_sign_in_sets_an_httponly_strict_cookie_holding_the_api_jwt(client: TestClient) -> None:
    response = sign_in(client)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/"
    (cookie,) = set_cookie_headers(response, "georeg_session")
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite", "path", "max-age"} <= attributes
    assert re.search(r"samesite=strict", cookie, re.IGNORECASE)
    assert "Path=/" in cookie
    jwt = client.cookies.get("georeg_session")
    # the same JWT as POST /users/authenticate's: the JSON API takes it as a Bearer token
    assert client.get("/users/storage", headers={"Authorization": f"Bearer {jwt}"}).status_code == 200
    page = client.get("/")
    assert "Signed in as <strong>admin</strong>" in page.text


def test_the_json_api_ignores_the_session_cookie(client: TestClient) -> None:
    assert sign_in(client).status_code == 303
    assert client.cookies.get("georeg_session")
    response = client.get("/users/storage")
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"


def test_wrong_password_shows_a_readable_message(client: TestClient) -> None:
    response = sign_in(client, password="not-the-password")
    assert_html_error(response, 401, "Wrong user name or password.")
    assert set_cookie_headers(response, "georeg_session") == []
    assert 'value="admin"' in response.text  # the user name is kept in the form


def test_bad_or_missing_csrf_token_is_refused(client: TestClient) -> None:
    csrf_of(client)
    response = client.post("/signin", data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": "forged"})
    assert_html_error(response, 403, "reload the page and try again")
    assert set_cookie_headers(response, "georeg_session") == []
    response = client.post("/signin", data={"username": "admin", "password": ADMIN_PASSWORD})
    assert_html_error(response, 403, "reload the page and try again")


def test_a_form_from_another_site_is_refused(client: TestClient) -> None:
    token = csrf_of(client)
    response = client.post("/signin", data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token},
                           headers={"Origin": "https://evil.example"})
    assert_html_error(response, 403, "sent from another site")


def test_sign_out_clears_the_cookie(client: TestClient) -> None:
    assert sign_in(client).status_code == 303
    token = csrf_of(client, "/")
    response = client.post("/signout", data={"csrf_token": token}, follow_redirects=False)
    assert response.status_code == 303
    (cookie,) = set_cookie_headers(response, "georeg_session")
    assert "Max-Age=0" in cookie or "expires=Thu, 01 Jan 1970" in cookie
    assert "You are signed out." in client.get(response.headers["location"]).text
    assert "Signed in as" not in client.get("/").text


def test_an_invalid_session_cookie_counts_as_signed_out(client: TestClient) -> None:
    client.cookies.set("georeg_session", "not-a-jwt")
    response = client.get("/")
    assert response.status_code == 200
    assert "Signed in as" not in response.text
    assert set_cookie_headers(response, "georeg_session")  # cleared


def test_create_dataset_form(client: TestClient) -> None:
    assert sign_in(client).status_code == 303
    token = csrf_of(client, "/r/admin")
    response = client.post("/r/admin", data={"slug": "survey-1", "name": "Survey 1", "visibility": "private",
                                            "csrf_token": token}, follow_redirects=False)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/r/admin/survey-1?created=1"
    page = client.get(response.headers["location"])
    assert page.status_code == 200
    assert "Survey 1" in page.text and "This dataset has no files yet." in page.text
    again = client.post("/r/admin", data={"slug": "survey-1", "visibility": "private", "csrf_token": token})
    assert_html_error(again, 409, "already exists")
    bad = client.post("/r/admin", data={"slug": "Not A Slug", "visibility": "private", "csrf_token": token})
    assert_html_error(bad, 400, "dataset slug")
    forged = client.post("/r/admin", data={"slug": "survey-2", "visibility": "private", "csrf_token": "x"})
    assert_html_error(forged, 403, "reload the page")
    listing = client.get("/r/admin?q=SURVEY")
    assert "1 dataset matching" in listing.text and "/r/admin/survey-1" in listing.text
    assert "0 datasets matching" in client.get("/r/admin?q=nothing-like-it").text


def test_private_dataset_pages_follow_the_api_permissions(client: TestClient, admin_headers, make_user) -> None:
    create_dataset(client, admin_headers, slug="secret")
    assert upload_object(client, admin_headers, "a/b.txt", b"hello", dataset="/orgs/admin/ds/secret").status_code == 201
    anonymous = client.get("/r/admin/secret", follow_redirects=False)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/signin?next=%2Fr%2Fadmin%2Fsecret"
    make_user("outsider")
    assert sign_in(client, "outsider", "user-password").status_code == 303
    assert_html_error(client.get("/r/admin/secret"), 404, "not found")
    assert_html_error(client.get("/r/admin/secret/download?path=a/b.txt"), 404, "not found")
    assert_html_error(client.get("/r/admin/nothing-here"), 404, "not found")


def test_dataset_page_lists_downloads_moves_and_deletes(client: TestClient, admin_headers) -> None:
    create_dataset(client, admin_headers, slug="files")
    dataset = "/orgs/admin/ds/files"
    assert upload_object(client, admin_headers, "docs/readme.txt", b"read me", dataset=dataset).status_code == 201
    assert upload_object(client, admin_headers, "top.bin", b"x" * 3000, dataset=dataset).status_code == 201
    assert client.post(f"{dataset}/meta/title/set", json="A title", headers=admin_headers).status_code == 200
    assert sign_in(client).status_code == 303
    page = client.get("/r/admin/files")
    assert page.status_code == 200
    assert "docs/</a>" in page.text and "top.bin" in page.text and "2.9 KiB" in page.text
    assert "A title" in page.text and "/orgs/admin/ds/files/stac" in page.text
    assert "readme.txt" in client.get("/r/admin/files?path=docs").text
    download = client.get("/r/admin/files/download?path=docs/readme.txt")
    assert download.status_code == 200 and download.content == b"read me"
    assert client.get("/r/admin/files/download?path=docs").headers["content-type"] == "application/zip"
    token = CSRF.search(page.text).group(1)
    moved = client.post("/r/admin/files/move", data={"source": "top.bin", "destination": "docs/top.bin",
                                                    "csrf_token": token}, follow_redirects=False)
    assert moved.status_code == 303 and moved.headers["location"] == "/r/admin/files?path=docs"
    conflict = client.post("/r/admin/files/move", data={"source": "docs/top.bin", "destination": "docs/readme.txt",
                                                       "csrf_token": token})
    assert conflict.status_code == 409 and "Traceback" not in conflict.text
    deleted = client.post("/r/admin/files/delete", data={"path": "docs/readme.txt", "csrf_token": token},
                          follow_redirects=False)
    assert deleted.status_code == 303
    listing = client.get(f"{dataset}/list?path=docs", headers=admin_headers).json()
    assert [entry["path"] for entry in listing] == ["docs/top.bin"]


def test_script_token_needs_the_csrf_header(client: TestClient) -> None:
    assert sign_in(client).status_code == 303
    token = csrf_of(client, "/")
    refused = client.post("/web/token")
    assert refused.status_code == 403 and refused.json()["code"] == "csrf_failed"
    answer = client.post("/web/token", headers={"X-CSRF-Token": token})
    assert answer.status_code == 200
    bearer = answer.json()["token"]
    assert client.get("/users/storage", headers={"Authorization": f"Bearer {bearer}"}).status_code == 200
    client.cookies.delete("georeg_session")
    assert client.post("/web/token", headers={"X-CSRF-Token": token}).status_code == 401


def test_pages_stay_out_of_the_json_api(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    pages = ("/r/", "/signin", "/signout", "/web", "/admin")
    assert not [path for path in paths if path == "/" or path.startswith(pages)]
    assert client.get("/docs").status_code == 200
    assert client.get("/version").headers["content-type"].startswith("application/json")
    missing = client.get("/orgs/admin/ds/nothing")
    assert missing.headers["content-type"].startswith("application/json")
    static = client.get("/web/static/vendor/leaflet-1.9.4/leaflet.js")
    assert static.status_code == 200 and "javascript" in static.headers["content-type"]
    assert client.get("/web/static/vendor/htmx-2.0.11/LICENSE").status_code == 200


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil"])
def test_sign_in_never_redirects_to_another_site(client: TestClient, target: str) -> None:
    token = csrf_of(client)
    response = client.post("/signin", data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token,
                                            "next": target}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/"


def test_task_pages_without_tasks(client: TestClient, admin_headers) -> None:
    create_dataset(client, admin_headers, slug="work")
    assert sign_in(client).status_code == 303
    page = client.get("/r/admin/work/tasks")
    assert page.status_code == 200
    assert "No task has run on this dataset yet." in page.text and 'value="bulk-download"' in page.text
    token = CSRF.search(page.text).group(1)
    bad_json = client.post("/r/admin/work/tasks", data={"tool_id": "bulk-download", "parameters": "{oops",
                                                        "csrf_token": token})
    assert_html_error(bad_json, 400, "the parameters are not valid JSON")
    not_object = client.post("/r/admin/work/tasks", data={"tool_id": "bulk-download", "parameters": "[]",
                                                          "csrf_token": token})
    assert_html_error(not_object, 400, "must be a JSON object")
    unknown = client.post("/r/admin/work/tasks", data={"tool_id": "no-such-tool", "parameters": "{}",
                                                       "csrf_token": token})
    assert unknown.status_code == 404 and "Traceback" not in unknown.text
    assert_html_error(client.get("/r/admin/work/tasks/0123456789abcdef"), 404, "not found")
    assert client.get("/r/admin/work/tasks/0123456789abcdef/status").status_code == 404


HOSTILE = ["..", "%2e%2e", "x" * 300, "ÅÆØ", "%5C..%5Cetc", "a%20b"]
PAGE_PATHS = ["/r/{s}", "/r/admin/{s}", "/r/admin/{s}/download?path={s}", "/r/admin/d?path={s}", "/rasters/{s}",
              "/rasters?q={s}&offset={s}", "/r/admin/d/tasks/{s}", "/r/{s}/{s}/tasks", "/signin?next={s}",
              "/?skip={s}", "/r/admin?q={s}&skip={s}", "/r/admin/d?edit={s}&done={s}", "/admin/users/{s}",
              "/admin/users/{s}/delete", "/admin/orgs/{s}/delete", "/admin/tasks?state={s}&skip={s}", "/admin?skip={s}"]


@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "admin"])
def test_pages_never_fail_on_hostile_input(client: TestClient, admin_headers, signed_in: bool) -> None:
    create_dataset(client, admin_headers)
    if signed_in:
        assert sign_in(client).status_code == 303
    token = csrf_of(client)
    failures = []
    for template in PAGE_PATHS:
        for segment in HOSTILE:
            response = client.get(template.replace("{s}", segment), follow_redirects=False)
            if not response.request.url.path.startswith(("/r", "/signin", "/rasters", "/admin")) \
                    and template != "/?skip={s}":
                continue  # '..' took the address out of the pages (the client resolves it): the JSON API's 404
            redirected = response.status_code in (303, 307)  # to the sign-in page; Starlette's slash redirects
            if response.status_code >= 500 or (not redirected
                                               and not response.headers["content-type"].startswith("text/html")):
                failures.append((template, segment, response.status_code, response.text[:200]))
    for path in ["/r/admin", "/r/admin/d/move", "/r/admin/d/delete", "/r/admin/d/tasks", "/signin", "/r/admin/d/meta",
                 "/r/admin/d/meta/remove", "/r/admin/d/visibility", "/admin/users", "/admin/roles", "/admin/orgs",
                 "/admin/users/admin/roles", "/admin/users/admin/orgs", "/admin/users/admin/password",
                 "/admin/roles/%2e%2e/delete", "/admin/orgs/%2e%2e/delete"]:
        for data in [{"csrf_token": token, "slug": "..", "source": "../x", "destination": "/etc", "path": "\x00",
                      "tool_id": "..", "parameters": "{}", "visibility": "nope", "key": "../\x00", "value": "{\x00",
                      "user_name": "..", "password": "", "roles": ["..", "admin"], "role": "\x00", "org": [".."],
                      "permission": ["x", "y"], "new_org": "..", "new_password": "\x00"}, {"csrf_token": token}]:
            response = client.post(path, data=data, follow_redirects=False)
            if response.status_code >= 500 or "Traceback" in response.text:
                failures.append((path, data, response.status_code, response.text[:200]))
    assert failures == [], failures[:5]


def test_admin_page_is_for_administrators(client: TestClient, make_user) -> None:
    assert client.get("/admin", follow_redirects=False).status_code == 303  # anonymous: sign in first
    assert sign_in(client).status_code == 303
    page = client.get("/admin")
    assert page.status_code == 200
    assert "Users (" in page.text and "Organizations (" in page.text and "No task has run yet." in page.text
    assert '<a href="/admin">Administration</a>' in page.text
    make_user("plain")
    assert sign_in(client, "plain", "user-password").status_code == 303
    assert_html_error(client.get("/admin"), 403, "administrator role required")
    assert '<a href="/admin">' not in client.get("/").text


# --- administration, metadata, visibility and the task log (issue 17) ---------------------------------------------


def post_form(client: TestClient, path: str, data: dict, token: str, **kwargs) -> httpx.Response:
    return client.post(path, data={**data, "csrf_token": token}, follow_redirects=False, **kwargs)


def json_users(client: TestClient, headers: dict[str, str]) -> dict[str, dict]:
    return {user["userName"]: user for user in client.get("/users", headers=headers).json()["items"]}


def test_admin_creates_changes_and_deletes_a_user(client: TestClient, admin_headers) -> None:
    assert sign_in(client).status_code == 303
    token = csrf_of(client, "/admin")
    form = {"user_name": "bob", "email": "bob@example.org", "password": "bob-password-1"}
    forged = post_form(client, "/admin/users", form, "forged")
    assert_html_error(forged, 403, "reload the page")
    bad = post_form(client, "/admin/users", {**form, "user_name": "Bob Smith"}, token)
    assert_html_error(bad, 400, "invalid user name")
    assert 'value="bob@example.org"' in bad.text  # the form is kept
    unknown_role = post_form(client, "/admin/users", {**form, "roles": ["no-such-role"]}, token)
    assert_html_error(unknown_role, 400, "unknown roles: no-such-role")
    no_password = post_form(client, "/admin/users", {**form, "password": ""}, token)
    assert_html_error(no_password, 422, "password")
    assert "bob" not in json_users(client, admin_headers)
    created = post_form(client, "/admin/users", form, token)
    assert created.status_code == 303, created.text
    assert created.headers["location"] == "/admin/users/bob?done=created"
    page = client.get(created.headers["location"])
    assert "User created." in page.text and "bob@example.org" in page.text
    assert_html_error(post_form(client, "/admin/users", form, token), 409, "already exists")

    # roles: the JSON API's roles afterwards; the last administrator keeps its role
    assert client.post("/users/roles/surveyor", headers=admin_headers).status_code == 201
    assert_html_error(post_form(client, "/admin/users/bob/roles", {"roles": ["surveyor"]}, "x"), 403, "reload")
    saved = post_form(client, "/admin/users/bob/roles", {"roles": ["surveyor"]}, token)
    assert saved.status_code == 303 and saved.headers["location"] == "/admin/users/bob?done=roles"
    assert json_users(client, admin_headers)["bob"]["roles"] == ["surveyor"]
    last_admin = post_form(client, "/admin/users/admin/roles", {"roles": []}, token)
    assert_html_error(last_admin, 409, "last administrator")
    assert json_users(client, admin_headers)["admin"]["roles"] == ["admin"]

    # a new password (typed twice); the old one stops working
    mismatch = post_form(client, "/admin/users/bob/password", {"new_password": "a1", "repeat_password": "a2"}, token)
    assert_html_error(mismatch, 400, "the two passwords differ")
    assert client.post("/users/authenticate", json={"userName": "bob", "password": "bob-password-1"}).status_code \
        == 200
    changed = post_form(client, "/admin/users/bob/password", {"new_password": "bob-password-2",
                                                              "repeat_password": "bob-password-2"}, token)
    assert changed.status_code == 303, changed.text
    assert client.post("/users/authenticate", json={"userName": "bob", "password": "bob-password-1"}).status_code \
        == 401
    assert client.post("/users/authenticate", json={"userName": "bob", "password": "bob-password-2"}).status_code \
        == 200

    # memberships, as PUT /users/{name}/orgs: add, change, leave; an unknown organization changes nothing
    added = post_form(client, "/admin/users/bob/orgs", {"new_org": "admin", "new_permission": "write"}, token)
    assert added.status_code == 303, added.text
    orgs = {org["slug"]: org["permission"] for org in client.get("/users/bob/orgs", headers=admin_headers).json()}
    assert orgs == {"bob": "admin", "admin": "write"}
    page = client.get("/admin/users/bob")
    assert 'name="org" value="admin"' in page.text and 'name="org" value="bob"' not in page.text  # owned: fixed
    unknown = post_form(client, "/admin/users/bob/orgs", {"org": ["admin"], "permission": ["read"],
                                                          "new_org": "nowhere"}, token)
    assert_html_error(unknown, 404, "not found")
    assert "nowhere" in unknown.text
    bad_level = post_form(client, "/admin/users/bob/orgs", {"org": ["admin"], "permission": ["owner"]}, token)
    assert_html_error(bad_level, 422, "permission")
    orgs = {org["slug"]: org["permission"] for org in client.get("/users/bob/orgs", headers=admin_headers).json()}
    assert orgs == {"bob": "admin", "admin": "write"}  # the refused forms changed nothing
    left = post_form(client, "/admin/users/bob/orgs", {"org": ["admin"], "permission": ["none"]}, token)
    assert left.status_code == 303
    assert [org["slug"] for org in client.get("/users/bob/orgs", headers=admin_headers).json()] == ["bob"]

    # deleting: a confirmation page first; an administrator cannot delete itself
    confirm = client.get("/admin/users/bob/delete")
    assert confirm.status_code == 200 and "Delete the user bob?" in confirm.text and "bob." in confirm.text
    assert "bob" in json_users(client, admin_headers)  # asking changed nothing
    assert_html_error(post_form(client, "/admin/users/admin/delete", {}, token), 400, "cannot delete themselves")
    assert_html_error(post_form(client, "/admin/users/bob/delete", {}, "x"), 403, "reload")
    deleted = post_form(client, "/admin/users/bob/delete", {}, token)
    assert deleted.status_code == 303
    assert deleted.headers["location"] == "/admin?done=user-deleted&name=bob#users-heading"
    assert "User bob deleted." in client.get(deleted.headers["location"]).text
    assert "bob" not in json_users(client, admin_headers)
    assert_html_error(client.get("/admin/users/bob"), 404, "not found")


def test_admin_roles_and_organizations(client: TestClient, admin_headers) -> None:
    assert sign_in(client).status_code == 303
    token = csrf_of(client, "/admin")
    assert post_form(client, "/admin/roles", {"role": "surveyor"}, token).status_code == 303
    assert "surveyor" in client.get("/users/roles", headers=admin_headers).json()
    assert "Role surveyor created." in client.get("/admin?done=role-created&name=surveyor").text
    assert "Call" not in client.get("/admin?done=role-created&name=Call%20us%20now").text  # names only
    assert_html_error(post_form(client, "/admin/roles", {"role": "surveyor"}, token), 409, "already exists")
    assert_html_error(post_form(client, "/admin/roles", {"role": "no spaces"}, token), 400, "invalid role name")
    assert_html_error(post_form(client, "/admin/roles/admin/delete", {}, token), 400, "built in")
    assert post_form(client, "/admin/roles/surveyor/delete", {}, token).status_code == 303
    assert "surveyor" not in client.get("/users/roles", headers=admin_headers).json()

    org = {"slug": "polar", "name": "Polar institute", "description": "", "is_public": "1"}
    assert_html_error(post_form(client, "/admin/orgs", org, "x"), 403, "reload")
    assert_html_error(post_form(client, "/admin/orgs", {**org, "slug": "Polar!"}, token), 400,
                      "invalid organization slug")
    created = post_form(client, "/admin/orgs", org, token)
    assert created.status_code == 303 and created.headers["location"] == "/r/polar"
    body = client.get("/orgs/polar", headers=admin_headers).json()
    assert body["name"] == "Polar institute" and body["isPublic"] is True and body["owner"] == "admin"
    assert_html_error(post_form(client, "/admin/orgs", org, token), 409, "already exists")
    confirm = client.get("/admin/orgs/polar/delete")
    assert confirm.status_code == 200 and "Delete the organization polar?" in confirm.text
    assert client.get("/orgs/polar", headers=admin_headers).status_code == 200
    assert_html_error(post_form(client, "/admin/orgs/admin/delete", {}, token), 400, "personal organization")
    deleted = post_form(client, "/admin/orgs/polar/delete", {}, token)
    assert deleted.status_code == 303
    assert client.get("/orgs/polar", headers=admin_headers).status_code == 404


def test_admin_pages_refuse_other_users(client: TestClient, make_user, admin_headers) -> None:
    make_user("plain")
    assert sign_in(client, "plain", "user-password").status_code == 303
    token = csrf_of(client, "/")
    for path in ["/admin/users/admin", "/admin/tasks", "/admin/users/admin/delete", "/admin/orgs/admin/delete"]:
        assert_html_error(client.get(path), 403, "administrator role required")
    refused = post_form(client, "/admin/users", {"user_name": "sneaky", "password": "p"}, token)
    assert_html_error(refused, 403, "administrator role required")
    assert_html_error(post_form(client, "/admin/users/admin/password", {"new_password": "x", "repeat_password": "x"},
                                token), 403, "administrator role required")
    assert_html_error(post_form(client, "/admin/orgs", {"slug": "sneaky"}, token), 403, "administrator role")
    assert "sneaky" not in json_users(client, admin_headers)
    assert client.get("/orgs/sneaky", headers=admin_headers).status_code == 404
    client.cookies.delete("georeg_session")
    anonymous = client.get("/admin/tasks", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/signin?next=%2Fadmin%2Ftasks"


def prefect_post(api_url: str, path: str, body: object) -> httpx.Response:
    """POST to the session's Prefect server, again while it answers 503 (busy writing, as its clients do)."""
    for _ in range(40):
        response = httpx.post(f"{api_url.rstrip('/')}/{path}", json=body, timeout=30)
        if response.status_code != 503:
            assert response.status_code in (200, 201), response.text
            return response
        time.sleep(float(response.headers.get("Retry-After", 0.5)))
    raise AssertionError(f"Prefect kept answering 503 to {path}")


def prefect_flow_run(api_url: str, state: str) -> str:
    """A flow run on the session's Prefect server (no deployment, nothing runs it)."""
    flow = prefect_post(api_url, "flows/", {"name": "georeg-web-forms"}).json()
    return prefect_post(api_url, "flow_runs/", {"flow_id": flow["id"], "state": {"type": state}}).json()["id"]


def prefect_log(api_url: str, flow_run_id: str, *messages: str) -> None:
    now = datetime.now(UTC)
    prefect_post(api_url, "logs/", [{"name": "georeg.test", "level": 20, "message": message, "flow_run_id": flow_run_id,
                                     "timestamp": (now + timedelta(milliseconds=index)).isoformat()}
                                    for index, message in enumerate(messages)])


def add_task(settings, *, flow_run_id: str, state: str, ds_slug: str = "d") -> str:
    """A task row of ``admin/{ds_slug}`` on the flow run (as the submitter writes it)."""
    engine = make_engine(settings.effective_database_url)
    try:
        with Session(engine) as session:
            org = session.exec(select(Organization).where(Organization.slug == "admin")).one()
            dataset = session.exec(select(Dataset).where(Dataset.org_id == org.id, Dataset.slug == ds_slug)).one()
            task = Task(org_id=org.id, dataset_id=dataset.id, user_id=org.owner_id, tool_id="bulk-download",
                        tool_version="1", parameters={}, dedup_key=uuid.uuid4().hex, state=state,
                        flow_run_id=flow_run_id)
            session.add(task)
            session.commit()
            return task.id
    finally:
        engine.dispose()


def test_admin_task_list_filters_pages_and_cancels(client: TestClient, ds, settings, prefect_api_url) -> None:
    assert sign_in(client).status_code == 303
    assert "No task has run yet." in client.get("/admin/tasks").text
    waiting = add_task(settings, flow_run_id=prefect_flow_run(prefect_api_url, "SCHEDULED"), state="Scheduled")
    done = add_task(settings, flow_run_id=None, state="Succeeded")
    page = client.get("/admin/tasks")
    assert page.status_code == 200 and "2 tasks, 1 to 2 shown" in page.text
    assert f"/r/admin/d/tasks/{waiting}/cancel" in page.text and f"/r/admin/d/tasks/{done}/cancel" not in page.text
    succeeded = client.get("/admin/tasks?state=Succeeded")
    assert "1 task in state Succeeded" in succeeded.text and done in succeeded.text and waiting not in succeeded.text
    assert "No task is in state Failed." in client.get("/admin/tasks?state=Failed").text
    assert "Next page" not in page.text and "No task on this page." in client.get("/admin/tasks?skip=50").text
    assert_html_error(client.get("/admin/tasks?state=Sleeping"), 422, "state")
    token = CSRF.search(page.text).group(1)
    here = "/admin/tasks?state=&skip=0"
    assert_html_error(post_form(client, f"/r/admin/d/tasks/{waiting}/cancel", {"next": here}, "x"), 403, "reload")
    cancelled = post_form(client, f"/r/admin/d/tasks/{waiting}/cancel", {"next": here}, token)
    assert cancelled.status_code == 303 and cancelled.headers["location"] == here
    state = client.get(f"/orgs/admin/ds/d/tasks/{waiting}", headers=ds).json()["state"]
    assert state == "Cancelled"
    away = post_form(client, f"/r/admin/d/tasks/{done}/cancel", {"next": "https://evil.example/"}, token)
    assert away.status_code == 303 and away.headers["location"] == "/"  # deleted; never to another site


def test_task_page_follows_the_log_with_its_cursor(client: TestClient, ds, settings, prefect_api_url) -> None:
    run = prefect_flow_run(prefect_api_url, "RUNNING")
    prefect_log(prefect_api_url, run, "first line", "second line")
    task_id = add_task(settings, flow_run_id=run, state="Processing")
    assert sign_in(client).status_code == 303
    page = client.get(f"/r/admin/d/tasks/{task_id}")
    assert page.status_code == 200 and "first line" in page.text and "second line" in page.text
    cursor = re.search(r'data-log-cursor="([^"]+)"', page.text).group(1)
    status = client.get(f"/r/admin/d/tasks/{task_id}/status", params={"since": cursor}).json()
    assert status["state"] == "Processing" and status["active"] is True
    assert status["log"] == [] and status["logCursor"] and status["logComplete"] is False
    prefect_log(prefect_api_url, run, "third line")
    fresh = client.get(f"/r/admin/d/tasks/{task_id}/status", params={"since": status["logCursor"]}).json()
    assert [line.split(" ", 1)[1] for line in fresh["log"]] == ["third line"]  # only the new line
    again = client.get(f"/r/admin/d/tasks/{task_id}/status", params={"since": fresh["logCursor"]}).json()
    assert again["log"] == []
    everything = client.get(f"/r/admin/d/tasks/{task_id}/status").json()  # no cursor: from the start
    assert [line.split(" ", 1)[1] for line in everything["log"]] == ["first line", "second line", "third line"]
    bad = client.get(f"/r/admin/d/tasks/{task_id}/status", params={"since": "garbage!"})
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_cursor"


def test_metadata_forms_follow_the_write_permission(client: TestClient, ds, make_user) -> None:
    make_user("writer")
    make_user("reader")
    assert client.put("/users/writer/orgs", json=[{"slug": "admin", "permission": "write"}], headers=ds).status_code \
        == 200
    assert client.put("/users/reader/orgs", json=[{"slug": "admin", "permission": "read"}], headers=ds).status_code \
        == 200
    meta = "/orgs/admin/ds/d/meta"
    assert sign_in(client, "writer", "user-password").status_code == 303
    page = client.get("/r/admin/d")
    assert "No metadata yet." in page.text and "Save metadata" in page.text
    assert "Change visibility" not in page.text  # write is not admin
    token = CSRF.search(page.text).group(1)
    assert_html_error(post_form(client, "/r/admin/d/meta", {"key": "title", "value": '"x"'}, "x"), 403, "reload")
    bad_json = post_form(client, "/r/admin/d/meta", {"key": "title", "value": "Svalbard 2024"}, token)
    assert_html_error(bad_json, 400, "the value is not valid JSON")
    assert "Svalbard 2024</textarea>" in bad_json.text  # kept for correcting
    bad_key = post_form(client, "/r/admin/d/meta", {"key": "Bad Key", "value": "1"}, token)
    assert_html_error(bad_key, 400, "is invalid: lowercase letters")
    assert client.get(f"{meta}/list", headers=ds).json() == []
    saved = post_form(client, "/r/admin/d/meta", {"key": "title", "value": '"Svalbard 2024"'}, token)
    assert saved.status_code == 303 and saved.headers["location"] == "/r/admin/d?done=meta#meta-heading"
    assert client.get(f"{meta}/title", headers=ds).json()["data"] == "Svalbard 2024"
    assert post_form(client, "/r/admin/d/meta", {"key": "tags", "value": '["ice"]'}, token).status_code == 303
    assert post_form(client, "/r/admin/d/meta", {"key": "tags", "value": '"snow"'}, token).status_code == 303
    assert [v["data"] for v in client.get(f"{meta}/tags", headers=ds).json()] == [["ice"], "snow"]
    edit = client.get("/r/admin/d?edit=title")
    assert "&#34;Svalbard 2024&#34;</textarea>" in edit.text or '"Svalbard 2024"</textarea>' in edit.text
    assert "Metadata saved." in client.get("/r/admin/d?done=meta").text
    removed = post_form(client, "/r/admin/d/meta/remove", {"key": "tags"}, token)
    assert removed.status_code == 303
    assert_html_error(post_form(client, "/r/admin/d/meta/remove", {"key": "tags"}, token), 404, "no metadata")
    assert [k["key"] for k in client.get(f"{meta}/list", headers=ds).json()] == ["title"]
    assert_html_error(post_form(client, "/r/admin/d/visibility", {"visibility": "public"}, token), 403,
                      "admin permission required")

    assert sign_in(client, "reader", "user-password").status_code == 303
    page = client.get("/r/admin/d")
    assert "Svalbard 2024" in page.text and "Save metadata" not in page.text and ">Remove" not in page.text
    token = CSRF.search(page.text).group(1)
    refused = post_form(client, "/r/admin/d/meta", {"key": "title", "value": '"mine"'}, token)
    assert_html_error(refused, 403, "write permission required")
    assert_html_error(post_form(client, "/r/admin/d/meta/remove", {"key": "title"}, token), 403, "write permission")
    assert client.get(f"{meta}/title", headers=ds).json()["data"] == "Svalbard 2024"


def test_visibility_form_for_dataset_admins(client: TestClient, ds) -> None:
    assert sign_in(client).status_code == 303
    page = client.get("/r/admin/d")
    assert "Change visibility" in page.text
    token = CSRF.search(page.text).group(1)
    assert_html_error(post_form(client, "/r/admin/d/visibility", {"visibility": "public"}, "x"), 403, "reload")
    bad = post_form(client, "/r/admin/d/visibility", {"visibility": "everyone"}, token)
    assert_html_error(bad, 400, "Choose a visibility")
    assert client.get("/orgs/admin/ds/d/ex", headers=ds).json()["visibility"] == "private"
    changed = post_form(client, "/r/admin/d/visibility", {"visibility": "public"}, token)
    assert changed.status_code == 303 and changed.headers["location"] == "/r/admin/d?done=visibility"
    assert client.get("/orgs/admin/ds/d/ex", headers=ds).json()["visibility"] == "public"
    client.cookies.delete("georeg_session")
    assert client.get("/r/admin/d").status_code == 200  # public: anyone may see it now
