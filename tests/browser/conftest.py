"""Browser fixtures: Debian's Chromium driven by Playwright, the real API served over HTTP, and pages that may load
nothing from another host.

- ``browser`` (package): headless ``/usr/bin/chromium`` (``make test`` installs it; skipped only when it is missing).
  Playwright's own browser download (``playwright install``) is never used.
- ``live_server`` (package): ``create_app(settings)`` served by uvicorn on a free 127.0.0.1 port, with a registry
  database and data folder of its own (the ``settings`` fixture's values; other tests truncating the shared test
  database cannot pull the rug from under it).
- ``new_page`` (function): a factory of pages, each in a fresh browser context, that abort and record every request
  (HTTP and WebSocket) to a host other than 127.0.0.1/localhost, and record what was requested and any page error.

The two long-lived fixtures are scoped to this package (and its sub-packages), not to the session: while Playwright's
sync API is started, the main thread has a running asyncio loop, so the ``asyncio.run()`` of later tests elsewhere
would fail; and the API's background work should not outlive the browser tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Response,
    Route,
    WebSocketRoute,
    sync_playwright,
)

from georeg.api.app import create_app
from georeg.core.config import Settings
from tests.helpers import ADMIN_PASSWORD, app_settings
from tests.live import serve_app

CHROMIUM = Path("/usr/bin/chromium")
"""Debian's ``chromium`` package (``make install-browser``)."""

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium calls Google hosts on its own (the refused connections are logged noisily).
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
NO_NETWORK_SCHEMES = frozenset({"data", "blob", "about"})


def is_local_url(url: str) -> bool:
    """Whether the browser may load ``url``: a server on this machine, or a URL that uses no network at all."""
    parts = urlsplit(url)
    return parts.scheme in NO_NETWORK_SCHEMES or parts.hostname in LOCAL_HOSTS


@dataclass
class LiveServer:
    """The API served over HTTP: ``url`` has no trailing slash (``f"{live_server.url}/docs"``)."""

    url: str
    settings: Settings
    admin_username: str = "admin"
    admin_password: str = ADMIN_PASSWORD


@dataclass
class OfflinePage:
    """A Playwright page whose requests to other hosts are aborted, with what it asked for."""

    page: Page
    context: BrowserContext
    blocked: list[str] = field(default_factory=list)
    """URLs on other hosts that a page of the context tried to load (HTTP requests and WebSockets), all aborted."""
    requests: list[str] = field(default_factory=list)
    """Every URL requested by the context's pages, in order, the blocked ones included."""
    responses: dict[str, Response] = field(default_factory=dict)
    """The last response received for each URL."""
    failed: dict[str, str] = field(default_factory=dict)
    """Requests that got no response, with the browser's reason (``net::ERR_BLOCKED_BY_CLIENT...`` for the guard's,
    ``csp`` for the page's Content-Security-Policy; neither reaches the network)."""
    errors: list[str] = field(default_factory=list)
    """Uncaught exceptions thrown in the pages."""
    console_errors: list[str] = field(default_factory=list)
    """Console messages of type ``error`` (a blocked request logs one too)."""


@pytest.fixture(scope="package")
def live_settings(tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str) -> Settings:
    """The ``settings`` fixture's values, on a SQLite registry of the browser tests' own."""
    root = tmp_path_factory.mktemp("browser-api")
    return app_settings(data_dir=root / "data", database_url=f"sqlite:///{root / 'georeg.db'}",
                        prefect_api_url=prefect_api_url)


@pytest.fixture(scope="package")
def live_server(live_settings: Settings) -> Iterator[LiveServer]:
    """The real georeg API (``create_app``) over HTTP on 127.0.0.1, shared by the browser tests."""
    with serve_app(create_app(live_settings)) as url:
        yield LiveServer(url=url, settings=live_settings)


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, through Playwright. Each launch runs on a fresh temporary profile (Playwright
    creates the user data dir and deletes it on close); each ``new_page`` context is isolated from the others."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: `make install-browser` (a step of `make test`) installs Debian's chromium")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser: Browser) -> Iterator[Callable[..., OfflinePage]]:
    """A factory: ``new_page(**context_options)`` opens a page in a new browser context whose requests to any host
    but 127.0.0.1/localhost are aborted and recorded in ``OfflinePage.blocked``. Service workers are blocked by
    default, so that every request of the page goes through the guard. The contexts close at the end of the test."""
    contexts: list[BrowserContext] = []

    def _new_page(**context_options: Any) -> OfflinePage:
        context_options.setdefault("service_workers", "block")
        context = browser.new_context(**context_options)
        contexts.append(context)
        context.set_default_timeout(30_000)
        blocked: list[str] = []
        requests: list[str] = []
        responses: dict[str, Response] = {}
        failed: dict[str, str] = {}
        errors: list[str] = []
        console_errors: list[str] = []

        def guard(route: Route) -> None:
            if is_local_url(route.request.url):
                route.fallback()
            else:
                blocked.append(route.request.url)
                route.abort("blockedbyclient")

        def guard_socket(socket: WebSocketRoute) -> None:
            if is_local_url(socket.url):
                socket.connect_to_server()
            else:
                blocked.append(socket.url)
                socket.close(code=1008, reason="blocked by the test: another host")

        def on_response(response: Response) -> None:
            responses[response.url] = response

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                console_errors.append(message.text)

        context.route("**/*", guard)
        context.route_web_socket("**/*", guard_socket)
        context.on("request", lambda request: requests.append(request.url))
        context.on("response", on_response)
        context.on("requestfailed", lambda request: failed.__setitem__(request.url, request.failure or ""))
        context.on("console", on_console)
        context.on("weberror", lambda error: errors.append(str(error.error)))
        return OfflinePage(page=context.new_page(), context=context, blocked=blocked, requests=requests,
                           responses=responses, failed=failed, errors=errors, console_errors=console_errors)

    yield _new_page
    for context in contexts:
        context.close()
