"""The API's HTTP view of the Prefect server: health, flow-run state and logs (read side), plus the
calls the launcher makes. Plain REST through httpx, so the API process does not import Prefect."""

from __future__ import annotations

import asyncio
from datetime import datetime

import httpx
from pydantic import BaseModel

from georeg.core.errors import NotFound, ServiceUnavailable


LOG_PAGE = 200


class FlowRunInfo(BaseModel):
    id: str
    state_type: str
    state_name: str | None = None
    state_message: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    deployment_id: str | None = None


class LogLine(BaseModel):
    id: str
    timestamp: datetime
    level: int
    message: str


class PrefectClient:
    """Async REST client for one Prefect API."""

    def __init__(self, api_url: str, *, timeout: float = 10.0):
        self.api_url = api_url.rstrip("/")
        self._client = httpx.AsyncClient(base_url=self.api_url, timeout=timeout)
        self._deployment_ids: dict[str, str] = {}

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _request(self, method: str, url: str, *, attempts: int = 3, **kwargs) -> httpx.Response:  # noqa: ANN003
        """One call, retried on connection errors and 5xx answers (every call made here is idempotent)."""
        for attempt in range(1, attempts + 1):
            try:
                response = await self._client.request(method, url, **kwargs)
            except httpx.HTTPError as exc:
                if attempt == attempts:
                    raise ServiceUnavailable(f"Prefect API unreachable: {exc.__class__.__name__}: {exc}",
                                             code="prefect_unavailable") from exc
            else:
                if response.status_code < 500:
                    return response
                if attempt == attempts:
                    raise ServiceUnavailable(f"Prefect API error HTTP {response.status_code}: {response.text[:300]}",
                                             code="prefect_unavailable")
            await asyncio.sleep(0.2 * attempt)
        raise AssertionError("unreachable")

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
            response = await self._request("GET", f"/deployments/name/{name}")
            if response.status_code == 404:
                raise ServiceUnavailable(f"deployment {name!r} is not registered on the Prefect server",
                                         code="deployment_missing")
            self._deployment_ids[name] = response.json()["id"]
        return self._deployment_ids[name]

    async def create_flow_run(
        self, deployment: str, *, parameters: dict, idempotency_key: str, tags: list[str], job_variables: dict
    ) -> str:
        """Schedule a run of ``deployment`` now (like ``run_deployment(..., timeout=0)``)."""
        deployment_id = await self.deployment_id(deployment)
        response = await self._request(
            "POST", f"/deployments/{deployment_id}/create_flow_run",
            json={"parameters": parameters, "idempotency_key": idempotency_key, "tags": tags,
                  "job_variables": job_variables, "state": {"type": "SCHEDULED", "name": "Scheduled"}},
        )
        if response.status_code == 404:
            self._deployment_ids.pop(deployment, None)
        if response.status_code >= 400:
            raise ServiceUnavailable(f"cannot start {deployment}: HTTP {response.status_code} {response.text}")
        return response.json()["id"]

    async def flow_runs(self, ids: list[str]) -> dict[str, FlowRunInfo]:
        """Current state of the given flow runs (batched)."""
        found: dict[str, FlowRunInfo] = {}
        for start in range(0, len(ids), 200):
            batch = ids[start : start + 200]
            response = await self._request(
                "POST", "/flow_runs/filter", json={"flow_runs": {"id": {"any_": batch}}, "limit": len(batch)}
            )
            for run in response.json():
                state = run.get("state") or {}
                found[run["id"]] = FlowRunInfo(
                    id=run["id"], state_type=run.get("state_type") or state.get("type") or "SCHEDULED",
                    state_name=run.get("state_name") or state.get("name"), state_message=state.get("message"),
                    start_time=run.get("start_time"), end_time=run.get("end_time"),
                    deployment_id=run.get("deployment_id"),
                )
        return found

    async def set_state(self, flow_run_id: str, state_type: str, message: str) -> None:
        response = await self._request(
            "POST", f"/flow_runs/{flow_run_id}/set_state",
            json={"state": {"type": state_type, "message": message}, "force": True},
        )
        if response.status_code == 404:
            raise NotFound(f"flow run {flow_run_id} not found")

    async def logs(self, flow_run_id: str, *, after: datetime | None, limit: int, newest_first: bool = False) -> list[LogLine]:
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
