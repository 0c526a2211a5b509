"""Helpers shared by the benchmarks (the leading underscore keeps this module out of discovery)."""

from __future__ import annotations

import os
import socket

import httpx


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def check(response: httpx.Response, what: str) -> httpx.Response:
    if response.is_error:
        raise RuntimeError(f"{what}: HTTP {response.status_code}: {response.text[:500]}")
    return response
