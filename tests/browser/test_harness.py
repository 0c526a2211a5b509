"""The browser fixtures themselves: a guard that let an outside request through would make every browser test
vacuous, so it is checked against a page that tries several kinds of outside loads."""

from __future__ import annotations

import pytest

from tests.browser.conftest import is_local_url

OUTSIDE_PAGE = """<!doctype html>
<html><head>
<link rel="stylesheet" href="https://cdn.example.org/style.css">
<link rel="icon" href="https://icons.example.org/favicon.png">
</head><body>
<img src="http://images.example.org/picture.png">
<script>
  fetch("https://api.example.org/data.json").catch(() => {});
  const socket = new WebSocket("wss://socket.example.org/feed");
  socket.onclose = () => { window.socketClosed = true; };
</script>
</body></html>"""


@pytest.mark.parametrize(("url", "local"), [
    ("http://127.0.0.1:8123/docs", True),
    ("http://localhost/x", True),
    ("ws://[::1]:9000/feed", True),
    ("data:image/png;base64,AAAA", True),
    ("blob:http://127.0.0.1:8123/0d9c", True),
    ("https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css", False),
    ("http://127.0.0.1.example.org/", False),
    ("//fonts.googleapis.com/css", False),
])
def test_is_local_url(url: str, local: bool) -> None:
    assert is_local_url(url) is local


@pytest.mark.slow
def test_new_page_blocks_and_records_other_hosts(new_page) -> None:
    view = new_page()
    view.page.set_content(OUTSIDE_PAGE)
    view.page.wait_for_function("window.socketClosed === true")
    view.page.wait_for_load_state("networkidle")
    blocked = set(view.blocked)
    assert {
        "https://cdn.example.org/style.css",
        "http://images.example.org/picture.png",
        "https://api.example.org/data.json",
        "wss://socket.example.org/feed",
    } <= blocked, view.blocked
    assert not [url for url in view.responses if not is_local_url(url)]
    assert view.failed["https://cdn.example.org/style.css"].startswith("net::ERR_BLOCKED_BY_CLIENT")
