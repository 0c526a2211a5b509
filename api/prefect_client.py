"""The API's small read-side view of the Prefect API (health for now)."""

from __future__ import annotations

import httpx


class PrefectReader:
    """Read-only HTTP access to the Prefect server the stack runs on."""

    def __init__(self, api_url: str, *, timeout: float = 5.0):
        self.api_url = api_url.rstrip("/")
        self._client = httpx.AsyncClient(base_url=self.api_url, timeout=timeout)

    async def health(self) -> tuple[bool, str]:
        try:
            response = await self._client.get("/health")
        except httpx.HTTPError as exc:
            return False, f"unreachable: {exc.__class__.__name__}: {exc}"
        if response.status_code == 200:
            return True, "ok"
        return False, f"HTTP {response.status_code}"

    async def aclose(self) -> None:
        await self._client.aclose()
