"""A real HTTP proxy in front of a real Prefect server that injects the faults a busy or failing server
shows: it forwards every call, except those its rule picks, which it answers 503/429 itself ("refuse"),
or forwards and then answers 503 anyway, as a server that stored the result but lost its answer does
("lose_answer"), or forwards after 1 s ("slow")."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

CREATE = "/create_flow_run"

Rule = Callable[[str, str, int], "str | None"]


class FaultyProxy:
    """Forwards to ``upstream``; ``rule(method, path, nth call of that path)`` may return "refuse",
    "refuse-429", "lose_answer" or "slow" (forwarded after 1 s). Every request body is kept in ``seen``."""

    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self.rule: Rule = lambda method, path, nth: None
        self.seen: list[tuple[str, str, bytes]] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path
                with proxy._lock:
                    proxy.seen.append((self.command, path, body))
                    nth = sum(1 for m, p, _ in proxy.seen if m == self.command and p == path)
                action = proxy.rule(self.command, path, nth)
                if action == "slow":
                    time.sleep(1.0)
                if action in ("refuse", "refuse-429"):
                    status = 429 if action == "refuse-429" else 503
                    return self._answer(status, b'{"exception_message": "Service Unavailable"}', {"Retry-After": "0.2"})
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                upstream = httpx.request(self.command, proxy.upstream + path.removeprefix("/api"), content=body,
                                         headers=headers, timeout=30)
                if action == "lose_answer":
                    return self._answer(503, b'{"exception_message": "Service Unavailable"}', {})
                self._answer(upstream.status_code, upstream.content,
                             {"Content-Type": upstream.headers.get("content-type", "application/json")})

            def _answer(self, status: int, content: bytes, headers: dict) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def creations(self) -> list[dict]:
        return [json.loads(body) for method, path, body in self.seen if method == "POST" and path.endswith(CREATE)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
