"""End to end: the real `georeg serve` stack on free ports, driven over HTTP."""

from __future__ import annotations

import io
import os
import queue
import re
import signal
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
from tests.helpers import free_port
from tests.rasters import write_geotiff

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

GEOREG = str(Path(sys.executable).with_name("georeg"))


class ServeProcess:
    """`georeg serve` in the background, its output collected line by line."""

    def __init__(self, data_dir: Path, api_port: int, prefect_port: int, extra_env: dict[str, str] | None = None):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("GEOREG_", "PREFECT_")) and k != "MALLOC_ARENA_MAX"}
        env.update(GEOREG_DATA_DIR=str(data_dir), GEOREG_API_PORT=str(api_port), GEOREG_PREFECT_PORT=str(prefect_port))
        env.update(extra_env or {})
        self.process = subprocess.Popen(
            [GEOREG, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        self._start_pump()

    def _start_pump(self) -> None:
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

    def wait_for_line(self, pattern: str, timeout: float = 60) -> re.Match:
        """The first line from now on matching ``pattern`` (a regular expression)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                pytest.fail(f"georeg serve exited while waiting for {pattern!r}:\n" + "\n".join(self.lines))
            self.lines.append(line)
            if match := re.search(pattern, line):
                return match
        pytest.fail(f"no line matching {pattern!r} in time:\n" + "\n".join(self.lines))

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


def _command(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def find_worker(processes: list[psutil.Process]) -> psutil.Process:
    return next(p for p in processes if " worker start " in _command(p))


def find_forkserver(processes: list[psutil.Process]) -> psutil.Process:
    return next(p for p in processes if "georeg.deployments.forkserver" in _command(p))


def run_task(api: str, headers: dict[str, str], parameters: dict) -> dict:
    """Submit a bulk-download of dataset admin/e2e and wait for it to end."""
    submitted = httpx.post(f"{api}/orgs/admin/ds/e2e/tasks", headers=headers, timeout=30,
                           json={"toolId": "bulk-download", "parameters": parameters})
    assert submitted.status_code == 202, submitted.text
    task = submitted.json()
    deadline = time.monotonic() + 120
    while task["state"] not in ("Succeeded", "Failed", "Cancelled") and time.monotonic() < deadline:
        time.sleep(0.5)
        task = httpx.get(f"{api}/orgs/admin/ds/e2e/tasks/{task['taskId']}", headers=headers, timeout=30).json()
    return task


def kill_worker_and_forkserver(stack: ServeProcess, api: str, headers: dict[str, str]) -> None:
    """``kill -9`` of the worker (an OOM on a big raster) and of the fork server: the supervisor logs each
    restart, the API answers throughout, and a task submitted afterwards succeeds."""
    worker, forkserver = find_worker(stack.descendants()), find_forkserver(stack.descendants())
    socket_path = forkserver.cmdline()[-1]
    worker.kill()
    forkserver.kill()
    restarted: dict[str, psutil.Process] = {}
    deadline = time.monotonic() + 60
    while len(restarted) < 2 and time.monotonic() < deadline:
        assert httpx.get(f"{api}/version", timeout=10).status_code == 200, "the API answers during restarts"
        children = stack.descendants()
        for name, find, old in (("worker", find_worker, worker), ("forkserver", find_forkserver, forkserver)):
            try:
                new = find(children)
            except StopIteration:
                continue
            if new.pid != old.pid:
                restarted[name] = new
        time.sleep(0.2)
    assert set(restarted) == {"worker", "forkserver"}, "\n".join(stack.lines)
    for name in ("prefect-worker", "flow-forkserver"):  # logged in either order
        pattern = rf"georeg: {name} exited \(code -9\); restarting in 1 s \(restart 1\)"
        if not any(re.search(pattern, line) for line in stack.lines):
            stack.wait_for_line(pattern, timeout=10)
    assert restarted["forkserver"].cmdline()[-1] == socket_path, "same socket: the worker's environment holds"
    task = run_task(api, headers, {"paths": ["imagery/scene.tif"]})
    assert task["state"] == "Succeeded", task


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

        task = run_task(api, headers, {"paths": ["imagery"]})
        assert task["state"] == "Succeeded", task
        run = httpx.get(f"{prefect_api}/flow_runs/{task['flowRunId']}", timeout=10).json()
        bulk = httpx.get(f"{prefect_api}/deployments/name/bulk-download/bulk-download", timeout=10).json()
        assert run["deployment_id"] == bulk["id"] and run["state_type"] == "COMPLETED"
        archive = httpx.get(f"{api}{task['artifact']['resultUrl']}", headers=headers, timeout=60)
        with zipfile.ZipFile(io.BytesIO(archive.content)) as bundle:
            assert bundle.namelist() == ["imagery/scene.tif"]
            assert bundle.read("imagery/scene.tif") == tif.read_bytes()

        kill_worker_and_forkserver(stack, api, headers)

        children = stack.descendants()
        assert len(children) >= 4
        forkserver, worker = find_forkserver(children), find_worker(children)
        assert worker.cmdline()[-2:] == ["--limit", "4"], "GEOREG_WORK_POOL_CONCURRENCY is the worker's limit"
        api_process = next(p for p in children if "georeg.api.app:create_app" in _command(p))
        assert {p.environ().get("MALLOC_ARENA_MAX") for p in (api_process, forkserver, worker)} == {"2"}, \
            "malloc arenas capped in every process serve starts"
        assert (data_dir / "logs" / "flow-forkserver.log").read_text().count("ready on") == 2, "started, restarted"
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
        assert any("not redeployed" in line for line in second.lines), "same code and server: not deployed again"
        headers = _token(api, password)
        listing = httpx.get(f"{api}/orgs/admin/ds/e2e/list", params={"path": "imagery"}, headers=headers, timeout=30)
        assert [e["path"] for e in listing.json()] == ["imagery/scene.tif"]
    finally:
        assert second.stop() == 0
