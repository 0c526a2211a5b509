"""A sweep over every route with malformed input: never a 500, always the JSON error shape."""

from __future__ import annotations

import re

import pytest

HOSTILE_SEGMENTS = ["..", "%2e%2e", "a%00b", "x" * 300, "ÅÆØ", "%5C..%5Cetc"]
BODIES = [
    {"content": b"\x00\xff garbage", "headers": {"content-type": "application/json"}},
    {"content": b"[1, 2, 3]", "headers": {"content-type": "application/json"}},
    {"content": b'{"path": {"nested": true}, "paths": "notalist", "slug": 5, "userName": null}',
     "headers": {"content-type": "application/json"}},
    {"content": b'{"slug": "a\\u0000b", "userName": "n\\u0000", "password": "p", "name": "x", "source": "a",'
                b' "dest": "b\\u0000", "paths": ["\\u0000"], "refreshToken": "\\u0000"}',
     "headers": {"content-type": "application/json"}},
    {"content": b"--x\r\nbroken", "headers": {"content-type": "multipart/form-data; boundary=x"}},
    {"content": b"plain text", "headers": {"content-type": "text/plain"}},
]
PREFECT_DOWN = {"deployment_missing", "prefect_unavailable"}  # the sweep's Prefect has no deployments
UPSTREAM_DOWN = {"csw_unavailable"}  # the sweep's CSW endpoint is a closed port: 502 with its reason is right
QUERIES = [{}, {"path": "../../etc/passwd", "skip": "-1", "take": "abc"},
           {"path": "\x00", "skip": "99999999999999999999"}]


def _routes(app):
    """Every (method, path) of the OpenAPI document (``app.routes`` hides included routers)."""
    for path, operations in app.openapi()["paths"].items():
        for method in operations:
            yield method.upper(), path


def _fill(path: str, segment: str) -> str:
    return re.sub(r"\{[^}]+\}", segment, path)


@pytest.mark.parametrize("authenticated", [False, True], ids=["anonymous", "admin"])
def test_no_route_answers_500_to_malformed_input(client, settings, admin_headers, csw_down_url, authenticated):
    settings.csw_endpoints = [csw_down_url]
    client.post("/orgs/admin/ds", json={"slug": "d"}, headers=admin_headers)
    base_headers = admin_headers if authenticated else {}
    failures = []
    checked = 0
    for method, template in _routes(client.app):
        checked += 1
        for segment in HOSTILE_SEGMENTS[:3] if "{" in template else [""]:
            path = _fill(template, segment) if segment else template
            for body in BODIES if method in ("POST", "PUT", "DELETE") else [{}]:
                for query in QUERIES:
                    headers = {**base_headers, **body.get("headers", {})}
                    response = client.request(method, path, params=query, content=body.get("content"), headers=headers)
                    code = response.json().get("code") if response.status_code >= 500 else None
                    unavailable = (response.status_code, code) in {(503, c) for c in PREFECT_DOWN} | {
                        (502, c) for c in UPSTREAM_DOWN}
                    if response.status_code >= 500 and not unavailable:
                        failures.append((method, path, query, body.get("content"), response.status_code, response.text))
                    elif response.status_code >= 400 and b"ServiceExceptionReport" in response.content:
                        continue  # OGC services answer with OGC exception reports
                    elif response.status_code >= 400 and method == "HEAD":
                        continue  # a HEAD answer has no body to shape
                    elif response.status_code >= 400:
                        payload = response.json()
                        if not ({"error", "code"} <= set(payload)):
                            failures.append((method, path, query, "bad error shape", payload))
    assert failures == [], failures[:5]
    assert checked > 60, f"only {checked} routes were swept"


def test_real_dataset_routes_with_hostile_segments(client, admin_headers):
    client.post("/orgs/admin/ds", json={"slug": "d"}, headers=admin_headers)
    for segment in HOSTILE_SEGMENTS[1:]:  # a bare ".." segment is resolved away by the client itself
        for template in ("/orgs/{o}/ds/d/list", "/orgs/admin/ds/{d}/obj?path=a", "/orgs/{o}", "/users/{u}/orgs"):
            response = client.get(_fill(template, segment), headers=admin_headers)
            assert response.status_code in (400, 404, 422), (template, segment, response.status_code, response.text)
