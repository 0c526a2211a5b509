"""The API's HTTP view of the Prefect server: health, flow-run state and logs (read side), plus the
calls the launcher makes. Plain REST through httpx, so the API process does not import Prefect."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime

import httpx
from pydantic import BaseModel

from georeg.core.errors import NotFound, ServiceUnavailable
from georeg.core.tasks.lifecycle import RunState

LOG_PAGE = 200
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
RETRY_FIRST_DELAY = 0.25
RETRY_MAX_DELAY = 4.0
WRITE_TIMEOUT = httpx.Timeout(30.0, pool=60.0)
WRITE_QUEUE_SECONDS = 600.0


class LogLine(BaseModel):
    id: str
    timestamp: datetime
    level: int
    message: str


class PrefectClient:
    """Async REST client for one Prefect API."""

    def __init__(self, api_url: str, *, timeout: float = 10.0, read_retry_seconds: float = 5.0,
                 submit_retry_seconds: float = 60.0, max_connections: int = 8) -> None:
        """Reads give up after ``read_retry_seconds`` of failures, run creation after
        ``submit_retry_seconds``. Writes (run creation, state changes, deletions) go out one at a time:
        a Prefect server on SQLite fails concurrent writes at once with "database is locked" (503), so
        a burst of submissions succeeds faster queued here than sent together and retried."""
        self.api_url = api_url.rstrip("/")
        self.read_retry_seconds = read_retry_seconds
        self.submit_retry_seconds = submit_retry_seconds
        self._writes = asyncio.Semaphore(1)
        self._client = httpx.AsyncClient(
            base_url=self.api_url, timeout=httpx.Timeout(timeout, pool=60.0),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )
        self._deployment_ids: dict[str, str] = {}

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _request(self, method: str, url: str, *, retry_seconds: float | None = None, write: bool = False,
                       **kwargs) -> httpx.Response:  # noqa: ANN003
        """One call, retried on connection errors, timeouts, 429 and 5xx answers with capped exponential
        back-off and jitter (``Retry-After`` honoured) for up to ``retry_seconds`` (default: the read
        budget). A ``write`` first queues behind the other writes (for up to ``WRITE_QUEUE_SECONDS``;
        the queue does not count against its budget) and holds the queue while it retries: a busy
        server is not helped by the next write. Every call made here is idempotent, run creation
        through its idempotency key."""
        budget = self.read_retry_seconds if retry_seconds is None else retry_seconds
        if not write:
            return await self._attempts(method, url, budget, kwargs)
        kwargs.setdefault("timeout", WRITE_TIMEOUT)  # a busy SQLite server may hold a write ~30 s
        try:
            await asyncio.wait_for(self._writes.acquire(), timeout=WRITE_QUEUE_SECONDS)
        except TimeoutError as exc:
            raise ServiceUnavailable(f"Prefect API busy: {WRITE_QUEUE_SECONDS:.0f} s in the write queue",
                                     code="prefect_unavailable") from exc
        try:
            return await self._attempts(method, url, budget, kwargs)
        finally:
            self._writes.release()

    async def _attempts(self, method: str, url: str, budget: float, kwargs: dict) -> httpx.Response:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        delay = RETRY_FIRST_DELAY
        while True:
            retry_after = None
            try:
                response = await self._client.request(method, url, **kwargs)
            except httpx.HTTPError as exc:
                failure = f"Prefect API unreachable: {exc.__class__.__name__}: {exc}"
            else:
                if response.status_code not in RETRY_STATUS:
                    return response
                failure = f"Prefect API error HTTP {response.status_code}: {response.text[:300]}"
                retry_after = _retry_after(response)
            wait = retry_after if retry_after is not None else delay * random.uniform(0.5, 1.5)
            if loop.time() + wait > deadline:
                raise ServiceUnavailable(failure, code="prefect_unavailable")
            await asyncio.sleep(wait)
            delay = min(delay * 2, RETRY_MAX_DELAY)

    async def health(self) -> tuple[bool, str]:
        try:
            response = await self._client.get("/health")
        except httpx.HTTPError as exc:
            return False, f"unreachable: {exc.__class__.__name__}: {exc}"
        if response.status_code == 200:
            return True, "ok"
        return False, f"HTTP {response.status_code}"

    async def deployment_id(self, name: str) -> str:
        if name not in self._deployment_ids:
            response = await self._request("GET", f"/deployments/name/{name}",
                                            retry_seconds=self.submit_retry_seconds)
            if response.status_code == 404:
                raise ServiceUnavailable(f"deployment {name!r} is not registered on the Prefect server",
                                         code="deployment_missing")
            self._deployment_ids[name] = response.json()["id"]
        return self._deployment_ids[name]

    async def create_flow_run(
        self, deployment: str, *, parameters: dict, idempotency_key: str, tags: list[str], job_variables: dict
    ) -> str:
        """Schedule a run of ``deployment`` now (like ``run_deployment(..., timeout=0)``); busy-server
        answers are retried for ``submit_retry_seconds``, the idempotency key making every retry
        return the same run."""
        deployment_id = await self.deployment_id(deployment)
        response = await self._request(
            "POST", f"/deployments/{deployment_id}/create_flow_run", retry_seconds=self.submit_retry_seconds,
            write=True,
            json={"parameters": parameters, "idempotency_key": idempotency_key, "tags": tags,
                  "job_variables": job_variables, "state": {"type": "SCHEDULED", "name": "Scheduled"}},
        )
        if response.status_code == 404:
            self._deployment_ids.pop(deployment, None)
        if response.status_code >= 400:
            raise ServiceUnavailable(f"cannot start {deployment}: HTTP {response.status_code} {response.text}")
        return response.json()["id"]

    async def delete_flow_runs(self, tag: str) -> int:
        """Delete every flow run tagged ``tag`` (clean-up after a submission that could not be
        completed); returns how many were deleted."""
        response = await self._request(
            "POST", "/flow_runs/filter", json={"flow_runs": {"tags": {"all_": [tag]}}, "limit": 200},
            retry_seconds=self.submit_retry_seconds,
        )
        deleted = 0
        for run in response.json():
            response = await self._request("DELETE", f"/flow_runs/{run['id']}", write=True,
                                           retry_seconds=self.submit_retry_seconds)
            if response.status_code in (204, 404):
                deleted += 1
        return deleted

    async def flow_runs(self, ids: list[str]) -> dict[str, RunState]:
        """Current state of the given flow runs (batched)."""
        found: dict[str, RunState] = {}
        for start in range(0, len(ids), 200):
            batch = ids[start : start + 200]
            response = await self._request(
                "POST", "/flow_runs/filter", json={"flow_runs": {"id": {"any_": batch}}, "limit": len(batch)}
            )
            for run in response.json():
                state = run.get("state") or {}
                found[run["id"]] = RunState(
                    id=run["id"], state_type=run.get("state_type") or state.get("type") or "SCHEDULED",
                    state_name=run.get("state_name") or state.get("name"), state_message=state.get("message"),
                    start_time=run.get("start_time"), end_time=run.get("end_time"), run_count=run.get("run_count"),
                )
        return found

    async def set_state(self, flow_run_id: str, state_type: str, message: str) -> None:
        response = await self._request(
            "POST", f"/flow_runs/{flow_run_id}/set_state", write=True,
            json={"state": {"type": state_type, "message": message}, "force": True},
        )
        if response.status_code == 404:
            raise NotFound(f"flow run {flow_run_id} not found")

    async def logs(self, flow_run_id: str, *, after: datetime | None, limit: int,
                   newest_first: bool = False) -> list[LogLine]:
        """Up to ``limit`` logs of a flow run with timestamp >= ``after``, oldest first (paged by 200,
        the server's maximum page size); ``newest_first`` reads from the end instead."""
        flt: dict = {"flow_run_id": {"any_": [flow_run_id]}}
        if after is not None:
            flt["timestamp"] = {"after_": after.isoformat()}
        sort = "TIMESTAMP_DESC" if newest_first else "TIMESTAMP_ASC"
        lines: list[LogLine] = []
        while len(lines) < limit:
            page_size = min(LOG_PAGE, limit - len(lines))
            response = await self._request(
                "POST", "/logs/filter", json={"logs": flt, "sort": sort, "limit": page_size, "offset": len(lines)}
            )
            page = response.json()
            lines += [
                LogLine(id=item["id"], timestamp=item["timestamp"], level=item["level"], message=item["message"])
                for item in page
            ]
            if len(page) < page_size:
                break
        return list(reversed(lines)) if newest_first else lines


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from a numeric ``Retry-After`` header (capped), else None."""
    try:
        return min(max(float(response.headers["Retry-After"]), 0.0), RETRY_MAX_DELAY * 4)
    except (KeyError, ValueError):
        return None
