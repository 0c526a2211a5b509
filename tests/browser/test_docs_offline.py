"""The interactive API docs (Swagger UI at /docs, ReDoc at /redoc) work with no other host reachable: every asset,
the favicon included, comes from the app itself.

The browser tests write a screenshot of each page to their tmp_path (the path is printed and recorded as a property
of the test, ``-rP`` or the JUnit XML shows it)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import LiveServer, OfflinePage, is_local_url

ASSETS = "/docs/static"
REDOCLY_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
ABSOLUTE_URL = re.compile(r"""(?:https?:|wss?:)?//[^\s"'<>)]+""", re.IGNORECASE)


class _Assets(HTMLParser):
    """The scripts, stylesheets and icons an HTML page loads: (kind, URL)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        rel = (values.get("rel") or "").lower()
        if tag == "script" and values.get("src"):
            self.found.append(("script", values["src"]))
        elif tag == "link" and values.get("href") and ("icon" in rel or "stylesheet" in rel):
            self.found.append(("icon" if "icon" in rel else "stylesheet", values["href"]))


def page_assets(html: str) -> list[tuple[str, str]]:
    parser = _Assets()
    parser.feed(html)
    return parser.found


EXPECTED_TYPES = {"script": "javascript", "stylesheet": "text/css", "icon": "image/"}


def screenshot(view: OfflinePage, tmp_path: Path, name: str, record_property) -> Path:
    path = tmp_path / f"{name}.png"
    view.page.screenshot(path=path, full_page=True)
    record_property(f"screenshot_{name}", str(path))
    print(f"screenshot of {view.page.url}: {path}")
    return path


def assert_nothing_from_other_hosts(view: OfflinePage, live_server: LiveServer, refused: tuple[str, ...] = ()) -> None:
    """No request left for another host, nothing failed in the page, and the only console errors are the page's
    Content-Security-Policy refusing the ``refused`` URLs inside the browser, before any network request."""
    assert view.blocked == [], f"the page tried to load from other hosts: {view.blocked}"
    # A request the CSP refuses is still announced by Playwright, failed with "csp", and never reaches the guard.
    outside = {url: view.failed.get(url) for url in view.requests if not is_local_url(url)}
    assert outside == dict.fromkeys(outside.keys() & set(refused), "csp"), outside
    assert view.errors == [], f"uncaught errors in the page: {view.errors}"
    unexpected = [
        message for message in view.console_errors
        if not any(f"'{url}'" in message and "Content Security Policy" in message for url in refused)
    ]
    assert unexpected == [], f"errors on the console: {view.console_errors}"
    fetched = [url for url in view.requests if url not in outside and not url.startswith(("data:", "blob:"))]
    assert all(url.startswith(f"{live_server.url}/") for url in fetched), fetched


def assert_served_by_app(view: OfflinePage, live_server: LiveServer, path: str, content_type: str) -> None:
    url = f"{live_server.url}{path}"
    assert url in view.requests, f"{url} was not requested; requests: {view.requests}"
    response = view.responses[url]
    assert response.status == 200, (url, response.status)
    assert content_type in response.headers["content-type"], (url, response.headers["content-type"])


def assert_favicon_from_app(view: OfflinePage, live_server: LiveServer) -> None:
    """The page's icon link points at the app and answers a PNG (headless Chromium does not always fetch icons,
    so the page fetches it itself)."""
    href = view.page.eval_on_selector("link[rel~='icon']", "link => link.href")
    assert href == f"{live_server.url}{ASSETS}/favicon.png"
    status, content_type = view.page.evaluate(
        "async url => { const r = await fetch(url); return [r.status, r.headers.get('content-type')]; }", href
    )
    assert (status, content_type) == (200, "image/png")


@pytest.mark.slow
def test_swagger_ui_renders_offline(live_server: LiveServer, new_page, tmp_path: Path, record_property) -> None:
    view = new_page()
    page = view.page
    response = page.goto(f"{live_server.url}/docs")
    assert response is not None and response.ok
    assert "default-src 'self'" in response.headers["content-security-policy"]
    page.locator(".swagger-ui .opblock").first.wait_for(state="visible")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("georeg")
    version = page.locator(".swagger-ui .opblock.opblock-get").filter(
        has=page.locator(".opblock-summary-path[data-path='/version']")
    )
    expect(version).to_have_count(1)
    expect(version.locator(".opblock-summary-method")).to_have_text("GET")
    assert page.locator(".swagger-ui .opblock").count() > 20
    assert page.locator(".swagger-ui .errors-wrapper").count() == 0, page.locator(".errors-wrapper").inner_text()
    # Swagger UI 5 renders the OpenAPI 3.1 schema FastAPI writes (Swagger UI 4 refuses 3.1).
    assert page.evaluate("ui.specSelectors.isOAS31()") is True
    assert page.evaluate("ui.getConfigs().oauth2RedirectUrl") == f"{live_server.url}/docs/oauth2-redirect"
    page.wait_for_load_state("networkidle")
    screenshot(view, tmp_path, "swagger-ui", record_property)

    assert_served_by_app(view, live_server, f"{ASSETS}/swagger-ui-bundle.js", "javascript")
    assert_served_by_app(view, live_server, f"{ASSETS}/swagger-ui.css", "text/css")
    assert_served_by_app(view, live_server, "/openapi.json", "application/json")
    assert_favicon_from_app(view, live_server)
    assert_nothing_from_other_hosts(view, live_server)


@pytest.mark.slow
def test_swagger_ui_try_it_out_calls_the_app(live_server: LiveServer, new_page) -> None:
    """"Try it out" on GET /version sends the request to the app and shows its answer."""
    view = new_page()
    page = view.page
    page.goto(f"{live_server.url}/docs")
    version = page.locator(".swagger-ui .opblock.opblock-get").filter(
        has=page.locator(".opblock-summary-path[data-path='/version']")
    )
    version.locator(".opblock-summary").click()
    version.get_by_role("button", name="Try it out").click()
    version.get_by_role("button", name="Execute").click()
    status = version.locator(".live-responses-table .response .response-col_status").first
    expect(status).to_have_text("200")
    assert f"{live_server.url}/version" in view.requests
    assert_nothing_from_other_hosts(view, live_server)


@pytest.mark.slow
def test_swagger_ui_oauth2_redirect_page(live_server: LiveServer, new_page) -> None:
    """The OAuth2 redirect page Swagger UI opens in a popup hands the token back to its opener (the /docs page)."""
    view = new_page()
    page = view.page
    page.goto(f"{live_server.url}/docs")
    page.locator(".swagger-ui .opblock").first.wait_for()
    page.evaluate("""() => {
        window.swaggerUIRedirectOauth2 = {
            state: "state-123",
            redirectUrl: ui.getConfigs().oauth2RedirectUrl,
            auth: {name: "test", schema: {get: () => "implicit"}},
            callback: result => { window.oauthResult = result; },
            errCb: error => { window.oauthError = error; },
        };
    }""")
    with page.expect_popup() as popup_info:
        page.evaluate("url => { window.open(url); }", "/docs/oauth2-redirect#access_token=token-abc&state=state-123")
    popup = popup_info.value
    popup.wait_for_event("close")
    result = page.evaluate("window.oauthResult")
    assert page.evaluate("window.oauthError") is None
    assert result["token"] == {"access_token": "token-abc", "state": "state-123"}
    assert result["isValid"] is True
    assert result["redirectUrl"] == f"{live_server.url}/docs/oauth2-redirect"
    assert_served_by_app(view, live_server, "/docs/oauth2-redirect", "text/html")
    assert_nothing_from_other_hosts(view, live_server)


@pytest.mark.slow
def test_redoc_renders_offline(live_server: LiveServer, new_page, tmp_path: Path, record_property) -> None:
    view = new_page()
    page = view.page
    response = page.goto(f"{live_server.url}/redoc")
    assert response is not None and response.ok
    assert "img-src 'self' data:" in response.headers["content-security-policy"]
    content = page.locator(".redoc-wrap .api-content")
    content.wait_for(state="visible")
    expect(content.locator("h1").first).to_contain_text("georeg")
    version = page.locator(".http-verb.get + span", has_text=re.compile(r"^/version$"))
    expect(version).to_have_count(1)
    assert page.locator("[data-section-id^='operation/']").count() > 20
    page.wait_for_load_state("networkidle")
    screenshot(view, tmp_path, "redoc", record_property)

    assert_served_by_app(view, live_server, f"{ASSETS}/redoc.standalone.js", "javascript")
    assert_served_by_app(view, live_server, "/openapi.json", "application/json")
    assert_favicon_from_app(view, live_server)
    # ReDoc's "API docs by Redocly" footer shows a logo from cdn.redoc.ly; the page's CSP refuses it in the browser.
    assert_nothing_from_other_hosts(view, live_server, refused=(REDOCLY_LOGO,))


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/docs/oauth2-redirect"])
def test_docs_html_references_no_other_host(client, path: str) -> None:
    """Without a browser: the pages name no absolute URL at all, and every asset they load answers 200 with the
    content type of its kind."""
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = dict(part.strip().split(" ", 1) for part in response.headers["content-security-policy"].split(";"))
    assert policy["default-src"] == "'self'"
    assert all("http" not in sources and "*" not in sources for sources in policy.values()), policy
    html = response.text
    assert ABSOLUTE_URL.findall(html) == []
    assets = page_assets(html)
    expected_kinds = {"/docs": {"script", "stylesheet", "icon"}, "/redoc": {"script", "icon"}}.get(path, set())
    assert {kind for kind, _ in assets} == expected_kinds
    for kind, url in assets:
        target = urljoin(f"http://testserver{path}", url)
        assert urlsplit(target).netloc == "testserver", url
        assert urlsplit(target).path.startswith(f"{ASSETS}/"), url
        asset = client.get(target)
        assert asset.status_code == 200, url
        assert EXPECTED_TYPES[kind] in asset.headers["content-type"], (url, asset.headers["content-type"])
        assert len(asset.content) > 1000, url


def test_openapi_schema_is_served(client) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.json()["openapi"].startswith("3.1")
    assert "/version" in response.json()["paths"]
    assert not any(path.startswith(("/docs", "/redoc")) for path in response.json()["paths"])
