"""End to end: the real `georeg serve` stack on free ports, driven over HTTP."""

from __future__ import annotations

import io
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import httpx
import psutil
import pytest

from georeg.deployments.supervisor import READY_LINE
from tests.rasters import write_geotiff

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

GEOREG = str(Path(sys.executable).with_name("georeg"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServeProcess:
    """`georeg serve` in the background, its output collected line by line."""

    def __init__(self, data_dir: Path, api_port: int, prefect_port: int):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GEOREG_", "PREFECT_"))}
        env.update(GEOREG_DATA_DIR=str(data_dir), GEOREG_API_PORT=str(api_port), GEOREG_PREFECT_PORT=str(prefect_port))
        self.process = subprocess.Popen(
            [GEOREG, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_ready(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                pytest.fail("georeg serve exited before ready:\n" + "\n".join(self.lines))
            self.lines.append(line)
            if line == READY_LINE:
                return
        pytest.fail("georeg serve not ready in time:\n" + "\n".join(self.lines))

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children(recursive=True)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=90)
        while (line := self._queue.get(timeout=10)) is not None:
            self.lines.append(line)
        return code


def _token(api: str, password: str) -> dict[str, str]:
    response = httpx.post(f"{api}/users/authenticate", json={"userName": "admin", "password": password}, timeout=30)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def test_serve_stack_round_trip_and_restart(tmp_path):
    data_dir = tmp_path / "data"
    api_port, prefect_port = free_port(), free_port()
    api = f"http://127.0.0.1:{api_port}"
    prefect_api = f"http://127.0.0.1:{prefect_port}/api"
    tif = write_geotiff(tmp_path / "scene.tif", width=300, height=200, count=3, dtype="uint8", crs="EPSG:32633",
                        origin=(500000, 7000000), pixel=10, tiled=True)

    stack = ServeProcess(data_dir, api_port, prefect_port)
    try:
        stack.wait_ready()
        output = "\n".join(stack.lines)
        assert f"{api}/docs" in output and f"127.0.0.1:{prefect_port}" in output
        password = re.search(r"Admin login: admin / (\S+)", output).group(1)
        headers = _token(api, password)

        assert httpx.get(f"{prefect_api}/health", timeout=10).status_code == 200
        deployment = httpx.get(f"{prefect_api}/deployments/name/cleanup/cleanup", timeout=10).json()
        assert deployment["work_pool_name"] == "georeg"
        assert [s["schedule"]["cron"] for s in deployment["schedules"]] == ["17 3 * * *"]
        health = httpx.get(f"{api}/health", headers=headers, timeout=30)
        assert health.status_code == 200, health.text

        created = httpx.post(f"{api}/orgs/admin/ds", json={"slug": "e2e"}, headers=headers, timeout=30)
        assert created.status_code == 201, created.text
        with open(tif, "rb") as handle:
            upload = httpx.post(
                f"{api}/orgs/admin/ds/e2e/obj", headers=headers, timeout=60,
                files={"file": ("scene.tif", handle, "image/tiff")}, data={"path": "imagery/scene.tif"},
            )
        assert upload.status_code == 201, upload.text
        assert upload.json()["type"] == "raster" and upload.json()["crs"] == "EPSG:32633"
        download = httpx.get(f"{api}/orgs/admin/ds/e2e/download", params={"path": "imagery/scene.tif"},
                             headers=headers, timeout=60)
        assert download.status_code == 200
        assert download.content == tif.read_bytes()

        submitted = httpx.post(f"{api}/orgs/admin/ds/e2e/tasks", headers=headers, timeout=30,
                               json={"toolId": "bulk-download", "parameters": {"paths": ["imagery"]}})
        assert submitted.status_code == 202, submitted.text
        task = submitted.json()
        deadline = time.monotonic() + 120
        while task["state"] not in ("Succeeded", "Failed", "Cancelled") and time.monotonic() < deadline:
            time.sleep(0.5)
            task = httpx.get(f"{api}/orgs/admin/ds/e2e/tasks/{task['taskId']}", headers=headers, timeout=30).json()
        assert task["state"] == "Succeeded", task
        run = httpx.get(f"{prefect_api}/flow_runs/{task['flowRunId']}", timeout=10).json()
        bulk = httpx.get(f"{prefect_api}/deployments/name/bulk-download/bulk-download", timeout=10).json()
        assert run["deployment_id"] == bulk["id"] and run["state_type"] == "COMPLETED"
        archive = httpx.get(f"{api}{task['artifact']['resultUrl']}", headers=headers, timeout=60)
        with zipfile.ZipFile(io.BytesIO(archive.content)) as bundle:
            assert bundle.namelist() == ["imagery/scene.tif"]
            assert bundle.read("imagery/scene.tif") == tif.read_bytes()

        children = stack.descendants()
        assert len(children) >= 4
        forkserver = next(p for p in children if "georeg.deployments.forkserver" in " ".join(p.cmdline()))
        worker = next(p for p in children if "worker" in p.cmdline() and "start" in p.cmdline())
        assert worker.cmdline()[-2:] == ["--limit", "4"], "GEOREG_WORK_POOL_CONCURRENCY is the worker's limit"
        assert "ready on" in (data_dir / "logs" / "flow-forkserver.log").read_text()
        socket_dir = Path(forkserver.cmdline()[-1]).parent
    finally:
        code = stack.stop()
    assert code == 0, "\n".join(stack.lines)
    time.sleep(1)
    survivors = [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert survivors == [], f"orphan processes: {[p.cmdline() for p in survivors]}"
    assert "stopping api" in "\n".join(stack.lines)
    assert not socket_dir.exists(), "the fork server's socket directory is removed with the stack"

    second = ServeProcess(data_dir, api_port, prefect_port)
    try:
        second.wait_ready()
        assert "Admin login: admin /" not in "\n".join(second.lines)
        assert any("not redeployed" in line for line in second.lines), "same code and server: prefect deploy skipped"
        headers = _token(api, password)
        listing = httpx.get(f"{api}/orgs/admin/ds/e2e/list", params={"path": "imagery"}, headers=headers, timeout=30)
        assert [e["path"] for e in listing.json()] == ["imagery/scene.tif"]
    finally:
        assert second.stop() == 0
