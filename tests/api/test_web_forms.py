"""The web interface's forms without a browser: the session cookie (flags, the same JWT as the JSON API), CSRF
tokens, readable error pages, permissions of the pages, and that the pages stay out of the JSON API."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.helpers import ADMIN_PASSWORD, create_dataset, upload_object

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


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
    assert not [path for path in paths if path == "/" or path.startswith(("/r/", "/signin", "/signout", "/web"))]
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
              "/?skip={s}", "/r/admin?q={s}&skip={s}"]


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
            if not response.request.url.path.startswith(("/r", "/signin", "/rasters")) and template != "/?skip={s}":
                continue  # '..' took the address out of the pages (the client resolves it): the JSON API's 404
            redirected = response.status_code in (303, 307)  # to the sign-in page; Starlette's slash redirects
            if response.status_code >= 500 or (not redirected
                                               and not response.headers["content-type"].startswith("text/html")):
                failures.append((template, segment, response.status_code, response.text[:200]))
    for path in ["/r/admin", "/r/admin/d/move", "/r/admin/d/delete", "/r/admin/d/tasks", "/signin"]:
        for data in [{"csrf_token": token, "slug": "..", "source": "../x", "destination": "/etc", "path": "\x00",
                      "tool_id": "..", "parameters": "{}", "visibility": "nope"}, {"csrf_token": token}]:
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
