"""Security: forged and stale tokens, path traversal on every route that takes a path, the headers of every answer
(``nosniff``, CORS only when configured) and errors that never show a traceback.

Path handling and token checks are Python, not SQL: these tests run on SQLite only (the registry tests cover both
backends)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from jose import jwt

from georeg.api.app import create_app
from georeg.core.registry import entries as entry_repo
from tests.helpers import ADMIN_PASSWORD, assert_error, upload_object
from tests.rasters import write_geotiff

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

BASE = "/orgs/admin/ds/d"
SECRET = b"TOP-SECRET-CONTENT"
KEY = "test-secret-key"  # tests.helpers.app_settings' signing key


# --- tokens ----------------------------------------------------------------------------------------------------


def _b64(value: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def _claims(**changes: object) -> dict:
    now = int(time.time())
    claims = {"sub": "admin", "typ": "access", "iat": now, "exp": now + 3600, **changes}
    return {name: value for name, value in claims.items() if value is not None}


FORGED = {
    "alg none": lambda: f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims())}.",
    "alg none, signature kept": lambda: ".".join([_b64({"alg": "none", "typ": "JWT"}), _b64(_claims()),
                                                  jwt.encode(_claims(), KEY, algorithm="HS256").split(".")[2]]),
    "wrong key": lambda: jwt.encode(_claims(), "not-the-server-key", algorithm="HS256"),
    "HS512 with the right key": lambda: jwt.encode(_claims(), KEY, algorithm="HS512"),
    "expired": lambda: jwt.encode(_claims(exp=int(time.time()) - 5), KEY, algorithm="HS256"),
    "refresh kind": lambda: jwt.encode(_claims(typ="refresh"), KEY, algorithm="HS256"),
    "no kind": lambda: jwt.encode(_claims(typ=None), KEY, algorithm="HS256"),
    "no subject": lambda: jwt.encode(_claims(sub=None), KEY, algorithm="HS256"),
    "payload swapped": lambda: ".".join([*jwt.encode(_claims(sub="nobody"), KEY, algorithm="HS256").split(".")[:1],
                                         _b64(_claims()),
                                         jwt.encode(_claims(sub="nobody"), KEY, algorithm="HS256").split(".")[2]]),
    "not a JWT": lambda: "abc.def.ghi",
}


def _refused(response) -> None:
    body = assert_error(response, 401, "invalid_token")
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "Traceback" not in body["error"]


@sqlite_only
@pytest.mark.parametrize("forge", FORGED.values(), ids=FORGED.keys())
def test_forged_expired_and_wrong_kind_tokens_are_401(client, forge):
    headers = {"Authorization": f"Bearer {forge()}"}
    _refused(client.get("/users/storage", headers=headers))  # a route that needs a user
    _refused(client.get("/orgs/public", headers=headers))  # a bad token is refused, not taken for anonymous
    _refused(client.post("/users/authenticate/refresh", headers=headers))


@sqlite_only
def test_refresh_and_access_tokens_are_not_interchangeable(client):
    """georeg issues refresh tokens (claim ``typ``: access/refresh): neither works in the other's place."""
    tokens = client.post("/users/authenticate", json={"userName": "admin", "password": ADMIN_PASSWORD}).json()
    _refused(client.get("/users/storage", headers={"Authorization": f"Bearer {tokens['refreshToken']}"}))
    _refused(client.post("/users/authenticate/refresh", json={"refreshToken": tokens["token"]}))
    assert client.get("/users/storage", headers={"Authorization": f"Bearer {tokens['token']}"}).status_code == 200
    assert client.post("/users/authenticate/refresh", json={"refreshToken": tokens["refreshToken"]}).status_code == 200


@sqlite_only
def test_a_deleted_users_tokens_are_401(client, admin_headers, make_user):
    headers = make_user("leaving")
    refresh = client.post("/users/authenticate", json={"userName": "leaving", "password": "user-password"}).json()
    assert client.get("/users/storage", headers=headers).status_code == 200
    assert client.delete("/users/leaving", headers=admin_headers).status_code == 204
    _refused(client.get("/users/storage", headers=headers))
    _refused(client.get("/orgs/public", headers=headers))
    _refused(client.post("/users/authenticate/refresh", json={"refreshToken": refresh["refreshToken"]}))


# --- path traversal --------------------------------------------------------------------------------------------

# decoded values, sent in bodies and (percent-encoded by the test) in query strings; ``{secret}`` is the absolute
# path of a file next to the dataset's folder, which "../secret.txt" from the dataset's root would reach
HOSTILE = {
    "dotdot": "../secret.txt",
    "nested dotdot": "a/../../secret.txt",
    "dot then dotdot": "./a/./../../secret.txt",
    "absolute": "{secret}",
    "etc": "/etc/passwd",
    "backslashes": "..\\secret.txt",
    "NUL": "a.txt\x00.png",
    "drive": "C:/secret.txt",
}
# raw query-string values: the server decodes them once (to traversals, or to a literal name never decoded again)
ENCODED = {"%2e%2e%2fsecret.txt": 400, "%2E%2E/secret.txt": 400, "..%2f..%2fsecret.txt": 400,
           "%2e%2e%5csecret.txt": 400, "a%00b": 400, "%2fetc%2fpasswd": 400, "%252e%252e%252fsecret.txt": 404}


@pytest.fixture
def planted(client, ds, settings) -> dict:
    """The dataset ``admin/d`` with ``a.txt`` (sha256 known), a secret file beside the dataset's folder, and a
    snapshot of every file under the test's directory."""
    assert upload_object(client, ds, "a.txt", b"a").status_code == 201
    dataset_root = settings.storage_dir / "admin" / "d"
    secret = dataset_root.parent / "secret.txt"
    secret.write_bytes(SECRET)
    root = settings.data_dir.parent
    return {"secret": secret, "hash": hashlib.sha256(b"a").hexdigest(), "root": root, "before": _files(root),
            "headers": ds}


def _files(root: Path) -> dict[str, tuple[int, float]]:
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            if "tmp" in path.relative_to(root).parts[:2] or path.suffix in (".db", ".db-wal", ".db-shm"):
                continue
            stat = path.stat()
            found[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime)
    return found


def _hostile(secret: Path) -> dict[str, str]:
    return {name: value.replace("{secret}", str(secret)) for name, value in HOSTILE.items()}


def _check(response, what: str, statuses=(400,)) -> str | None:
    """None when ``response`` is a clear 4xx (JSON shape, the expected status, no secret), else a description."""
    if response.content and SECRET in response.content:
        return f"{what}: the secret was served"
    if response.status_code not in statuses:
        return f"{what}: {response.status_code} {response.text[:200]}"
    body = response.json()
    if not ({"error", "code"} <= set(body)) or "Traceback" in body["error"]:
        return f"{what}: bad error body {body}"
    return None


def _unchanged(planted: dict, client) -> None:
    assert planted["secret"].read_bytes() == SECRET
    assert _files(planted["root"]) == planted["before"]
    assert client.get(f"{BASE}/obj", params={"path": "a.txt"}, headers=planted["headers"]).status_code == 200


QUERY_ROUTES = [  # (method, route, JSON body)
    ("GET", "/list", None), ("GET", "/obj", None), ("DELETE", "/obj", None), ("GET", "/download", None),
    ("GET", "/thumb", None), ("GET", "/tiles/0/0/0.png", None), ("GET", "/tiles/0/0/0@2x.png", None),
    ("GET", "/meta/list", None), ("GET", "/meta/title", None), ("POST", "/meta/tags", "x"),
    ("POST", "/meta/title/set", "x"), ("DELETE", "/meta/tags", None),
]


@sqlite_only
def test_query_paths_are_refused(client, planted):
    headers, failures = planted["headers"], []
    values = {name: quote(value, safe="") for name, value in _hostile(planted["secret"]).items()}
    values.update({raw: raw for raw in ENCODED})
    for method, route, body in QUERY_ROUTES:
        for name, raw in values.items():
            response = client.request(method, f"{BASE}{route}?path={raw}", headers=headers,
                                      json=body if body is not None else None)
            failures.append(_check(response, f"{method} {route} {name}", (ENCODED.get(name, 400),)))
    assert [failure for failure in failures if failure] == []
    _unchanged(planted, client)


@sqlite_only
def test_body_paths_are_refused(client, planted):
    headers, failures = planted["headers"], []
    for name, value in _hostile(planted["secret"]).items():
        cases = {
            "POST /list": client.post(f"{BASE}/list", json={"path": value}, headers=headers),
            "POST /search": client.post(f"{BASE}/search", json={"query": "*", "path": value}, headers=headers),
            "PUT /obj source": client.put(f"{BASE}/obj", json={"source": value, "dest": "moved.txt"}, headers=headers),
            "PUT /obj dest": client.put(f"{BASE}/obj", json={"source": "a.txt", "dest": value}, headers=headers),
            "DELETE /obj/batch": client.request("DELETE", f"{BASE}/obj/batch", json={"paths": [value]},
                                                headers=headers),
            "POST /download": client.post(f"{BASE}/download", json={"paths": [value]}, headers=headers),
            "POST /build": client.post(f"{BASE}/build", data={"path": value}, headers=headers),
            "POST /obj path": upload_object(client, headers, value, b"escape"),
            "POST /obj filename": _upload_named(client, headers, value),
            "POST /meta form path": client.post(f"{BASE}/meta/tags", data={"data": '"x"', "path": value},
                                                headers=headers),
        }
        failures += [_check(response, f"{case} {name}", (400, 422)) for case, response in cases.items()]
    assert [failure for failure in failures if failure] == []
    _unchanged(planted, client)


def _upload_named(client, headers: dict, filename: str):
    """``POST .../obj`` of a file named ``filename`` into ``sub/``, the name's bytes sent as they are (an HTTP
    client would percent-encode a NUL, which makes a harmless literal name)."""
    body = (b'--B\r\nContent-Disposition: form-data; name="path"\r\n\r\nsub/\r\n--B\r\nContent-Disposition: '
            b'form-data; name="file"; filename="' + filename.encode() + b'"\r\n\r\nescape\r\n--B--\r\n')
    return client.post(f"{BASE}/obj", content=body,
                       headers={**headers, "Content-Type": "multipart/form-data; boundary=B"})


@sqlite_only
def test_artifact_url_paths_are_refused(client, planted):
    """``GET .../build/{hash}/{path}``: the path is part of the URL, so only its encoded forms reach the server
    (a client resolves a plain ``..`` segment itself)."""
    prefix = f"{BASE}/build/{planted['hash']}/"
    raws = ["%2e%2e/%2e%2e/%2e%2e/secret.txt", "..%2f..%2f..%2fsecret.txt", "%2e%2e%5c%2e%2e%5csecret.txt",
            quote(str(planted["secret"]), safe=""), "%2fetc%2fpasswd", "cog/a%00b", "cog\\..\\..\\x"]
    failures = [_check(client.get(prefix + raw, headers=planted["headers"]), raw, (400,)) for raw in raws]
    for method in ("GET", "HEAD"):
        response = client.request(method, prefix + "cog/cog.tif", headers=planted["headers"])
        assert response.status_code == 404, response.text  # a well-formed path: simply not built
    assert [failure for failure in failures if failure] == []
    _unchanged(planted, client)


@sqlite_only
def test_share_and_push_upload_paths_are_refused(client, planted):
    headers, failures = planted["headers"], []
    token = client.post("/share/init", data={"tag": "admin/d"}, headers=headers).json()["token"]
    stamp = {"entries": [{"a.txt": planted["hash"]}, {"b.txt": hashlib.sha256(b"b").hexdigest()}]}
    push = client.post(f"{BASE}/push/init", data={"checksum": "", "stamp": json.dumps(stamp)}, headers=headers)
    assert push.status_code == 200, push.text
    push_token = push.json()["token"]
    for name, value in _hostile(planted["secret"]).items():
        chunk = {"fileId": f"f-{len(failures)}", "chunkIndex": "0", "totalChunks": "1", "totalFileSize": "6",
                 "path": value}
        cases = {
            "share upload": client.post(f"/share/{token}/upload", data={"path": value},
                                        files={"file": ("x", b"escape")}, headers=headers),
            "share chunked": client.post(f"/share/{token}/upload/chunked", data=chunk,
                                         files={"chunk": ("x", b"escape")}, headers=headers),
            "push upload": client.post(f"{BASE}/push/upload", data={"token": push_token, "path": value},
                                       files={"file": ("x", b"escape")}, headers=headers),
            "push init stamp": client.post(f"{BASE}/push/init", data={"checksum": "", "stamp": json.dumps(
                {"entries": [{value: hashlib.sha256(b"escape").hexdigest()}]})}, headers=headers),
        }
        failures += [_check(response, f"{case} {name}", (400,)) for case, response in cases.items()]
    assert [failure for failure in failures if failure] == []
    share = client.get(f"/share/{token}", headers=headers).json()
    assert (share["entries"], share["uploads"]) == ([], []), share
    _unchanged(planted, client)


@sqlite_only
def test_from_string_registration_stays_inside_the_mount_roots(client, admin_headers, settings, tmp_path):
    mount = tmp_path / "mount"
    outside = write_geotiff(tmp_path / "outside" / "secret.tif")
    inside = write_geotiff(mount / "inside.tif")
    (mount / "link.tif").symlink_to(outside)
    (mount / "dir-link").symlink_to(outside.parent, target_is_directory=True)
    settings.mount_roots = [mount]
    cases = {
        str(outside): 403, f"{mount}/../outside/secret.tif": 403, "../outside/secret.tif": 403,
        str(mount / "link.tif"): 403, "dir-link/secret.tif": 403, "/etc/passwd": 403,
        f"{mount}/inside.tif\x00.png": 400, f"{mount}\\..\\outside\\secret.tif": 403,
        "%2e%2e%2foutside%2fsecret.tif": 404, str(mount): 404,
    }
    failures = [_check(client.post("/datasets/from-string", json={"path": raw}, headers=admin_headers), raw,
                       (status,)) for raw, status in cases.items()]
    assert [failure for failure in failures if failure] == []
    assert client.get("/datasets", headers=admin_headers).json()["total"] == 0
    registered = client.post("/datasets/from-string", json={"path": str(inside)}, headers=admin_headers)
    assert registered.status_code == 201, registered.text


# --- headers and errors ----------------------------------------------------------------------------------------


@sqlite_only
def test_every_answer_says_nosniff(client, ds):
    assert upload_object(client, ds, "a.txt", b"a").status_code == 201
    answers = [
        client.get("/version"), client.get("/openapi.json"), client.get("/docs"), client.get("/"),
        client.get(f"{BASE}/download", params={"path": "a.txt"}, headers=ds),
        client.get(f"{BASE}/download", headers=ds),  # a zip stream
        client.get(f"{BASE}/list", headers=ds), client.get("/users/storage"), client.get("/nowhere"),
        client.get(f"{BASE}/obj?path=a%00b", headers=ds), client.post("/users/authenticate", json={}),
        client.get("/web/static/vendor/README.md"),
    ]
    for response in answers:
        assert response.headers.get_list("x-content-type-options") == ["nosniff"], (response.url, response.headers)


@sqlite_only
def test_an_unexpected_error_is_a_500_without_traceback(client, ds, monkeypatch, caplog):
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals /etc/shadow line 42")

    monkeypatch.setattr(entry_repo, "list_children", broken)
    quiet = TestClient(client.app, raise_server_exceptions=False)  # as a real server: the answer, not the raise
    response = quiet.get(f"{BASE}/list", headers=ds)
    assert response.status_code == 500
    assert response.json() == {"error": "internal server error", "code": "internal_error"}
    assert response.headers["x-content-type-options"] == "nosniff"
    assert b"secret internals" not in response.content and b"Traceback" not in response.content
    assert "secret internals" in caplog.text  # logged for the operator


@sqlite_only
def test_cors_is_off_by_default(client):
    for response in (client.get("/version", headers={"Origin": "https://app.example.org"}),
                     client.options("/orgs", headers={"Origin": "https://app.example.org",
                                                      "Access-Control-Request-Method": "GET"})):
        assert "access-control-allow-origin" not in response.headers, response.headers


@sqlite_only
def test_cors_allows_the_configured_origins_only(settings):
    settings.cors_origins = ["https://app.example.org"]
    with TestClient(create_app(settings)) as client:
        allowed = client.get("/orgs/public", headers={"Origin": "https://app.example.org"})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://app.example.org"
        preflight = client.options("/users/storage", headers={
            "Origin": "https://app.example.org", "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization"})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example.org"
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        assert preflight.headers["x-content-type-options"] == "nosniff"
        other = client.get("/orgs/public", headers={"Origin": "https://evil.example.com"})
        assert "access-control-allow-origin" not in other.headers
        refused = client.options("/users/storage", headers={"Origin": "https://evil.example.com",
                                                            "Access-Control-Request-Method": "GET"})
        assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers


def test_cors_origins_setting_reads_lists(monkeypatch):
    from georeg.core.config import Settings

    monkeypatch.setenv("GEOREG_CORS_ORIGINS", "https://a.example.org, https://b.example.org")
    assert Settings().cors_origins == ["https://a.example.org", "https://b.example.org"]
    monkeypatch.setenv("GEOREG_CORS_ORIGINS", '["https://a.example.org"]')
    assert Settings().cors_origins == ["https://a.example.org"]
    monkeypatch.delenv("GEOREG_CORS_ORIGINS")
    assert Settings().cors_origins == []
