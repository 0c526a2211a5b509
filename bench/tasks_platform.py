"""The task platform on the real embedded stack (``georeg serve``): latency, a burst, and zip throughput.

One ``<venv>/bin/georeg serve`` is started on free ports with a temp data dir under ``<project>/.bench/``,
``GEOREG_ADMIN_PASSWORD=bench-pw`` and the task quotas lifted (``GEOREG_MAX_ACTIVE_TASKS_PER_USER=100000``,
``GEOREG_DAILY_ARTIFACT_BYTES_PER_ORG`` = 1 PiB) so that the burst measures the platform, not the quota.
It is driven over HTTP only, and stopped (SIGTERM, wait) in a ``finally`` block, also when the benchmark
itself gets SIGTERM; every process still carrying the stack's environment marker then is killed (flow-run
processes whose worker is gone included). The temp dir is removed.

(a) latency: ``BENCH_LATENCY_RUNS`` (20) sequential ``rescan-index`` tasks (``force``) on a dataset holding
    one 5-byte file, after one untimed warm-up task. Each task is polled with ``GET …/tasks/{id}`` every
    50 ms; "to Processing" is the time from just before the POST to the first poll answering Processing (or
    a later state, if the short Processing phase fell between two polls), "to Succeeded" likewise. The
    polling-independent server view (``startedAt - createdAt``) is printed too, and where the time goes:
    the median time after the POST at which the flow run entered Pending (the worker picked it up) and
    Running (its process started and imported Prefect and the flow). Target: Processing <= 2 s.

(c) zip throughput (run before the burst, so that it measures an idle stack): ``BENCH_ZIP_FILES`` (20) x
    ``BENCH_ZIP_FILE_MB`` (10) MB of random bytes are uploaded through the API; then ``bulk-download`` of
    the whole dataset with ``compress=false`` is timed from submit to Succeeded (polled every 50 ms), and
    the reference ``zip -0 -q -r`` (stored, like compress=false) is timed on the same files in
    ``<data>/storage/admin/<ds>/`` (falls back to Python's ``zipfile`` with ZIP_STORED, labelled, when no
    ``zip`` is installed). Median of ``BENCH_ZIP_RUNS`` (3) interleaved runs each. Both read from the page
    cache and neither fsyncs its output. MB/s = payload bytes / seconds; ratio = georeg / reference.
    The in-flow time (``finishedAt - startedAt``, i.e. without scheduling and process start) is shown too.

(b) burst: ``BENCH_BURST`` (500) ``bulk-download`` tasks of one tiny file (``force=true``) submitted as fast
    as possible from ``BENCH_BURST_THREADS`` (16) threads, one request each (``BENCH_SUBMIT_ATTEMPTS`` > 1
    retries a 5xx/unanswered one with 1 s, 2 s, ... back-off); every answer is counted. No submission is
    started after 75 % of ``BENCH_BURST_TIMEOUT`` (1800 s, counted from the first submission: every run is a
    fresh Python process importing Prefect, ~5 CPU seconds, so 500 runs take many minutes on 2 cores); the list
    endpoint is polled every 5 s until every accepted task is terminal or the timeout runs out. Checks:
    accepted task ids are distinct and all in the list (its ``total`` too); no extra rows (tasks created
    although their submission was answered with an error); ``attempts == 1``; exactly one
    Prefect flow run per task (``POST /flow_runs/filter`` on tag ``tool:bulk-download``, paged by 200,
    grouped by the ``task:<id>`` tag) and none without a task; all terminal. Throughput = tasks that
    reached a terminal state per minute of wall time from the first submission until that was observed
    (or until the timeout). Available memory and the number of flow-run processes of the stack are
    watched; below ``BENCH_MIN_FREE_MB`` (1024) MB available the burst is abandoned (reported, not hidden).

Sizes: 1 MB = 2**20 bytes.
"""

from __future__ import annotations

import collections
import os
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx
import psutil

from bench._common import check, env_int, free_port, write_random

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BENCH_ROOT = PROJECT_ROOT / ".bench"
GEOREG = str(Path(sys.executable).with_name("georeg"))
MB = 1024 * 1024
CHUNK = MB
ADMIN_PASSWORD = "bench-pw"
ORG = "admin"
READY_LINE = "georeg: ready"
STARTUP_TIMEOUT = 240.0
PROCESSING_TARGET_S = 2.0
TERMINAL = {"Succeeded", "Failed", "Cancelled", "Deleted"}
STATES = ("Scheduled", "Enqueued", "Processing", "Succeeded", "Failed", "Cancelled")
RETRYABLE = {500, 502, 503, 504}
LATENCY_POLL_S = 0.05
BURST_POLL_S = 5.0
STACK_MARKER = "BENCH_TASKS_PLATFORM_STACK"


def _quantile(values: list[float], q: float) -> float:
    """Linear-interpolation quantile (q in [0, 1]) of a non-empty list."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _mb_per_s(nbytes: int, seconds: float) -> float:
    return nbytes / MB / seconds if seconds > 0 else float("inf")


# --------------------------------------------------------------------------- the stack


class Stack:
    """``georeg serve`` in the background; its output is kept in ``<tmp>/serve.out`` and in memory."""

    def __init__(self, tmp: Path):
        self.data_dir = tmp / "data"
        self.api_port, self.prefect_port = free_port(), free_port()
        while self.prefect_port == self.api_port:
            self.prefect_port = free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.prefect_api = f"http://127.0.0.1:{self.prefect_port}/api"
        self.output_path = tmp / "serve.out"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GEOREG_", "PREFECT_"))}
        env.update(
            GEOREG_DATA_DIR=str(self.data_dir),
            GEOREG_API_PORT=str(self.api_port),
            GEOREG_PREFECT_PORT=str(self.prefect_port),
            GEOREG_ADMIN_PASSWORD=ADMIN_PASSWORD,
            GEOREG_MAX_ACTIVE_TASKS_PER_USER="100000",
            GEOREG_DAILY_ARTIFACT_BYTES_PER_ORG=str(2**50),
        )
        # inherited by every process of the stack, also by those that outlive (and so leave the tree
        # of) their parent: what ``stop`` uses to find and kill them all
        self.marker = uuid.uuid4().hex
        env[STACK_MARKER] = self.marker
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.process = subprocess.Popen(
            [GEOREG, "serve"], env=env, cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
        )
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()
        self.descendants: dict[int, psutil.Process] = {}

    def _pump(self) -> None:
        with open(self.output_path, "w") as out:
            for line in self.process.stdout:
                out.write(line)
                out.flush()
                self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_ready(self) -> float:
        started = time.perf_counter()
        deadline = started + STARTUP_TIMEOUT
        while time.perf_counter() < deadline:
            try:
                line = self._queue.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError("georeg serve exited before ready:\n" + "\n".join(self.lines[-40:]))
            self.lines.append(line)
            if line == READY_LINE:
                return time.perf_counter() - started
        raise RuntimeError(f"georeg serve not ready after {STARTUP_TIMEOUT:.0f} s:\n" + "\n".join(self.lines[-40:]))

    def snapshot_descendants(self) -> list[psutil.Process]:
        """Current descendants (remembered, so that survivors can be found after the stop)."""
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.Error:
            return []
        for child in children:
            self.descendants.setdefault(child.pid, child)
        return children

    def flow_run_processes(self) -> int:
        count = 0
        for child in self.snapshot_descendants():
            try:
                command = " ".join(child.cmdline())
                if "prefect.engine" in command or "flow_run_launcher" in command:  # one launcher per forked run
                    count += 1
            except psutil.Error:
                pass
        return count

    def marked_processes(self) -> list[psutil.Process]:
        """Every process carrying this stack's marker in its environment (the descendants, wherever they are)."""
        found = []
        for process in psutil.process_iter():
            try:
                if process.pid != os.getpid() and process.environ().get(STACK_MARKER) == self.marker:
                    found.append(process)
            except psutil.Error:
                pass
        return found

    def stop(self) -> int | None:
        """SIGTERM ``georeg serve`` and wait; returns its exit code. Descendants left over are killed."""
        self.snapshot_descendants()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        self._pump_thread.join(timeout=10)
        time.sleep(1)
        survivors = {process.pid: process for process in self.marked_processes()}
        for child in self.descendants.values():
            try:
                if child.is_running() and child.status() != psutil.STATUS_ZOMBIE:
                    survivors.setdefault(child.pid, child)
            except psutil.Error:
                pass
        survivors = list(survivors.values())
        if survivors:
            print(f"warning: {len(survivors)} process(es) of the stack survived its stop; killing them: "
                  f"{[c.pid for c in survivors]}", flush=True)
            for child in survivors:
                try:
                    child.kill()
                except psutil.Error:
                    pass
        return self.process.returncode

    def log_counts(self) -> dict[str, int]:
        """Error markers in the API output and the Prefect logs (observations, not verdicts)."""
        def count(path: Path, needle: str) -> int:
            try:
                return path.read_text(errors="replace").count(needle)
            except OSError:
                return 0

        logs = self.data_dir / "logs"
        return {
            "api_tracebacks": count(self.output_path, "Traceback (most recent call last)"),
            "api_queuepool_timeouts": count(self.output_path, "QueuePool limit"),
            "api_prefect_unavailable": count(self.output_path, "ServiceUnavailable"),
            "prefect_server_database_locked": count(logs / "prefect-server.log", "database is locked"),
            "worker_failed_submissions": count(logs / "prefect-worker.log", "to infrastructure."),
        }


class Api:
    """Authenticated HTTP access; one httpx client per thread."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self._local = threading.local()
        with httpx.Client(base_url=base_url, timeout=60) as client:
            token = check(
                client.post("/users/authenticate", json={"userName": "admin", "password": ADMIN_PASSWORD}),
                "authenticate",
            ).json()["token"]
        self.headers = {"Authorization": f"Bearer {token}"}
        self._clients: list[httpx.Client] = []
        self._lock = threading.Lock()

    @property
    def client(self) -> httpx.Client:
        client = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(base_url=self.base_url, headers=self.headers,
                                  timeout=httpx.Timeout(300.0, connect=10.0))
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()

    def create_dataset(self, slug: str) -> None:
        check(self.client.post(f"/orgs/{ORG}/ds", json={"slug": slug, "visibility": "private"}),
               f"create dataset {slug}")

    def upload_bytes(self, ds: str, path: str, content: bytes) -> dict:
        response = self.client.post(f"/orgs/{ORG}/ds/{ds}/obj", files={"file": (Path(path).name, content)},
                                    data={"path": path})
        return check(response, f"upload {path}").json()

    def upload_file(self, ds: str, path: str, src: Path) -> dict:
        boundary = "georeg-bench-boundary"

        def body():
            yield (
                f'--{boundary}\r\nContent-Disposition: form-data; name="path"\r\n\r\n{path}\r\n'
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{src.name}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            with open(src, "rb") as handle:
                while chunk := handle.read(CHUNK):
                    yield chunk
            yield f"\r\n--{boundary}--\r\n".encode()

        response = self.client.post(f"/orgs/{ORG}/ds/{ds}/obj", content=body(),
                                    headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        return check(response, f"upload {path}").json()

    def submit(self, ds: str, tool_id: str, parameters: dict) -> httpx.Response:
        return self.client.post(f"/orgs/{ORG}/ds/{ds}/tasks",
                                json={"toolId": tool_id, "parameters": parameters, "force": True})

    def task(self, ds: str, task_id: str) -> httpx.Response:
        return self.client.get(f"/orgs/{ORG}/ds/{ds}/tasks/{task_id}")

    def all_tasks(self, ds: str) -> tuple[list[dict], int]:
        """Every task row of the dataset (paged by 500, the maximum) and the list's ``total``."""
        items: list[dict] = []
        total = None
        while total is None or len(items) < total:
            response = check(self.client.get(f"/orgs/{ORG}/ds/{ds}/tasks", params={"skip": len(items), "take": 500}),
                              "list tasks")
            page = response.json()
            total = page["total"]
            items += page["items"]
            if not page["items"]:
                break
        return items, total


def _follow(api: Api, ds: str, task_id: str, started: float, *, timeout: float = 300.0) -> tuple[dict, dict]:
    """Poll a task every 50 ms until terminal; returns (final view, {state: first seen, s after ``started``})."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while True:
        response = api.task(ds, task_id)
        now = time.perf_counter() - started
        if response.status_code == 200:
            view = response.json()
            seen.setdefault(view["state"], now)
            if view["state"] in TERMINAL:
                return view, seen
        if time.monotonic() > deadline:
            raise RuntimeError(f"task {task_id} not terminal after {timeout:.0f} s (last HTTP {response.status_code}: "
                               f"{response.text[:300]})")
        time.sleep(LATENCY_POLL_S)


# --------------------------------------------------------------------------- (a) latency


def _worker_log_excerpt(stack: Stack, flow_run_id: str | None, lines: int = 25) -> list[str]:
    """The worker log's lines about one flow run and the traceback lines right after them (the
    worker streams each flow-run process's output into its log)."""
    if not flow_run_id:
        return []
    try:
        text = (stack.data_dir / "logs" / "prefect-worker.log").read_text(errors="replace").splitlines()
    except OSError:
        return []
    picked: list[str] = []
    for index, line in enumerate(text):
        if flow_run_id in line:
            picked.append(line)
            follow = text[index + 1 : index + 1 + lines]
            for extra in follow:
                if extra[:2].isdigit() and ":" in extra[:3]:  # the next timestamped log record
                    break
                picked.append(extra)
    return picked[-lines:]


def _run_phases(prefect_api: str, flow_run_id: str, posted: float) -> dict[str, float]:
    """Seconds from ``posted`` (wall clock) to the first Prefect state of each type of a flow run."""
    with httpx.Client(base_url=prefect_api, timeout=30) as client:
        states = check(client.get("/flow_run_states/", params={"flow_run_id": flow_run_id}), "flow run states").json()
    phases: dict[str, float] = {}
    for state in sorted(states, key=lambda item: item["timestamp"]):
        phases.setdefault(state["type"], _parse_time(state["timestamp"]).timestamp() - posted)
    return phases


def _latency(api: Api, stack: Stack, runs: int) -> dict:
    ds = "latency"
    api.create_dataset(ds)
    api.upload_bytes(ds, "tiny.txt", b"tiny\n")
    params = {"paths": []}

    warm = check(api.submit(ds, "rescan-index", params), "submit warm-up").json()
    view, _ = _follow(api, ds, warm["taskId"], time.perf_counter())
    if view["state"] != "Succeeded":
        raise RuntimeError(f"warm-up rescan-index task ended {view['state']}: {view.get('error')}")

    to_processing, to_succeeded, post_s, server_start, not_seen, failed = [], [], [], [], 0, []
    phases: dict[str, list[float]] = collections.defaultdict(list)
    for _ in range(runs):
        posted = time.time()
        started = time.perf_counter()
        response = api.submit(ds, "rescan-index", params)
        post_s.append(time.perf_counter() - started)
        if response.status_code != 202:
            raise RuntimeError(f"latency submission answered HTTP {response.status_code}: {response.text[:300]}")
        task_id = response.json()["taskId"]
        view, seen = _follow(api, ds, task_id, started)
        if view["state"] != "Succeeded":
            failed.append(f"{task_id}: {view['state']} {view.get('error')}")
            print(f"    task {task_id} ended {view['state']}: {view.get('error')}; its log tail:", flush=True)
            for line in (view.get("logTail") or [])[-12:]:
                print(f"      | {line[:300]}")
            for line in _worker_log_excerpt(stack, view.get("flowRunId")):
                print(f"      worker| {line[:300]}")
            continue
        if "Processing" not in seen:
            not_seen += 1
        to_processing.append(min(t for s, t in seen.items() if s in ("Processing", *TERMINAL)))
        to_succeeded.append(seen["Succeeded"])
        created, began = _parse_time(view["createdAt"]), _parse_time(view["startedAt"])
        if created and began:
            server_start.append((began - created).total_seconds())
        for state, at in _run_phases(stack.prefect_api, view["flowRunId"], posted).items():
            phases[state].append(at)
    if not to_processing:
        raise RuntimeError(f"no latency task succeeded: {failed}")

    proc_med, proc_p90 = statistics.median(to_processing), _quantile(to_processing, 0.9)
    succ_med, succ_p90 = statistics.median(to_succeeded), _quantile(to_succeeded, 0.9)
    verdict = "ok" if proc_med <= PROCESSING_TARGET_S else "ABOVE TARGET"
    print(f"(a) latency, {len(to_processing)} sequential rescan-index tasks (1 tiny file), polled every 50 ms")
    print(f"    POST answered          median {statistics.median(post_s):6.3f} s  p90 {_quantile(post_s, 0.9):6.3f} s")
    print(f"    Processing median {proc_med:.2f} s (target <= {PROCESSING_TARGET_S:.0f} s)  p90 {proc_p90:.2f} s  "
          f"min {min(to_processing):.2f}  max {max(to_processing):.2f}  {verdict}")
    print(f"    Succeeded  median {succ_med:.2f} s  p90 {succ_p90:.2f} s  min {min(to_succeeded):.2f}  "
          f"max {max(to_succeeded):.2f}")
    if server_start:
        print(f"    server view startedAt - createdAt: median {statistics.median(server_start):.2f} s  "
              f"p90 {_quantile(server_start, 0.9):.2f} s")
    breakdown = {state: round(statistics.median(values), 3) for state, values in phases.items()
                 if len(values) == len(to_processing)}
    if {"PENDING", "RUNNING", "COMPLETED"} <= breakdown.keys():
        print(f"    flow run, median s after POST: Pending {breakdown['PENDING']:.2f} (worker poll + pick-up), "
              f"Running {breakdown['RUNNING']:.2f} (+{breakdown['RUNNING'] - breakdown['PENDING']:.2f}: process "
              f"start, imports, engine), Completed {breakdown['COMPLETED']:.2f}")
    if not_seen:
        print(f"    (Processing fell between two polls for {not_seen} task(s); the next state seen was used)")
    if failed:
        print(f"    NOT SUCCEEDED: {len(failed)}: {failed[:3]}")
    return {
        "runs": runs,
        "succeeded": len(to_succeeded),
        "not_succeeded": failed,
        "post_median_s": round(statistics.median(post_s), 4),
        "processing_median_s": round(proc_med, 3),
        "processing_p90_s": round(proc_p90, 3),
        "processing_s": [round(t, 3) for t in to_processing],
        "processing_not_observed": not_seen,
        "succeeded_median_s": round(succ_med, 3),
        "succeeded_p90_s": round(succ_p90, 3),
        "succeeded_s": [round(t, 3) for t in to_succeeded],
        "server_started_minus_created_median_s": round(statistics.median(server_start), 3) if server_start else None,
        "flow_run_state_median_s_after_post": breakdown,
        "processing_target_s": PROCESSING_TARGET_S,
        "meets_processing_target": proc_med <= PROCESSING_TARGET_S,
    }


# --------------------------------------------------------------------------- (c) zip throughput


def _reference_zip(source_dir: Path, out: Path) -> float:
    out.unlink(missing_ok=True)
    started = time.perf_counter()
    if shutil.which("zip"):
        subprocess.run(["zip", "-0", "-q", "-r", str(out), "."], cwd=source_dir, check=True)
    else:
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for path in sorted(p for p in source_dir.rglob("*") if p.is_file()):
                archive.write(path, path.relative_to(source_dir).as_posix())
    return time.perf_counter() - started


def _zip_throughput(api: Api, stack: Stack, tmp: Path, files: int, file_mb: int, runs: int) -> tuple[dict, list[str]]:
    ds = "zipbench"
    api.create_dataset(ds)
    src_dir = tmp / "zipsrc"
    src_dir.mkdir()
    payload = 0
    upload_started = time.perf_counter()
    for index in range(files):
        src = src_dir / f"f{index:03d}.bin"
        write_random(src, file_mb * MB)
        entry = api.upload_file(ds, f"data/f{index:03d}.bin", src)
        payload += entry["size"]
        src.unlink()
    upload_s = time.perf_counter() - upload_started
    storage = stack.data_dir / "storage" / ORG / ds
    on_disk = sum(p.stat().st_size for p in storage.rglob("*") if p.is_file())
    if on_disk != payload:
        raise RuntimeError(f"storage dir {storage} holds {on_disk} bytes, uploaded {payload}")
    reference_label = "zip -0 -q -r" if shutil.which("zip") else "python zipfile ZIP_STORED (no `zip` installed)"

    ref_out = tmp / "reference.zip"
    _reference_zip(storage, ref_out)  # warm-up: both sides then read the files from the page cache
    georeg_times, flow_times, ref_times, artifact_sizes, task_ids = [], [], [], [], []
    for _ in range(runs):
        ref_times.append(_reference_zip(storage, ref_out))
        started = time.perf_counter()
        response = api.submit(ds, "bulk-download", {"paths": [], "compress": False})
        if response.status_code != 202:
            raise RuntimeError(f"bulk-download submission answered HTTP {response.status_code}: {response.text[:300]}")
        task_id = response.json()["taskId"]
        view, seen = _follow(api, ds, task_id, started, timeout=600)
        if view["state"] != "Succeeded":
            raise RuntimeError(f"bulk-download {task_id} ended {view['state']}: {view.get('error')}")
        georeg_times.append(seen["Succeeded"])
        began, finished = _parse_time(view["startedAt"]), _parse_time(view["finishedAt"])
        if began and finished:
            flow_times.append((finished - began).total_seconds())
        artifact_sizes.append(view["artifact"]["sizeBytes"])
        task_ids.append(task_id)
        # outside the timed region: the artifact is a stored zip of every file
        artifact = stack.data_dir / "artifacts" / task_id / f"result-{view['attempts']}.zip"
        with zipfile.ZipFile(artifact) as archive:
            infos = archive.infolist()
            if len(infos) != files or sum(i.file_size for i in infos) != payload:
                raise RuntimeError(f"artifact {artifact} has {len(infos)} members / "
                                   f"{sum(i.file_size for i in infos)} bytes, expected {files} / {payload}")
            if any(i.compress_type != zipfile.ZIP_STORED for i in infos):
                raise RuntimeError("compress=false artifact has compressed members")
        artifact.unlink()  # keep the disk use flat across runs
    ref_size = ref_out.stat().st_size
    ref_out.unlink()

    georeg_s, ref_s = statistics.median(georeg_times), statistics.median(ref_times)
    georeg_rate, ref_rate = _mb_per_s(payload, georeg_s), _mb_per_s(payload, ref_s)
    flow_s = statistics.median(flow_times) if flow_times else None
    ratio = georeg_rate / ref_rate
    print(f"(c) zip throughput, {files} x {file_mb} MB random files ({payload / MB:.0f} MB payload, uploaded in "
          f"{upload_s:.1f} s), median of {runs}")
    print(f"    georeg bulk-download compress=false, submit -> Succeeded : {georeg_s:7.3f} s  "
          f"{georeg_rate:8.1f} MB/s   runs {', '.join(f'{t:.2f}' for t in georeg_times)}")
    if flow_s is not None:
        print(f"      in-flow only (finishedAt - startedAt)                  : {flow_s:7.3f} s  "
              f"{_mb_per_s(payload, flow_s):8.1f} MB/s")
    print(f"      artifact size {artifact_sizes[0]} bytes (+{artifact_sizes[0] - payload} over payload)")
    print(f"    reference {reference_label:<45}: {ref_s:7.3f} s  {ref_rate:8.1f} MB/s   "
          f"runs {', '.join(f'{t:.2f}' for t in ref_times)}  (archive {ref_size} bytes)")
    print(f"    ratio (georeg throughput / reference throughput) = {ratio:.2f}")
    if flow_s:
        print(f"    ratio in-flow only = {_mb_per_s(payload, flow_s) / ref_rate:.2f}")
    return {
        "files": files,
        "file_mb": file_mb,
        "payload_bytes": payload,
        "runs": runs,
        "upload_seconds": round(upload_s, 3),
        "georeg_seconds": round(georeg_s, 3),
        "georeg_seconds_runs": [round(t, 3) for t in georeg_times],
        "georeg_mb_per_s": round(georeg_rate, 1),
        "georeg_in_flow_seconds": round(flow_s, 3) if flow_s is not None else None,
        "georeg_in_flow_mb_per_s": round(_mb_per_s(payload, flow_s), 1) if flow_s else None,
        "artifact_size_bytes": artifact_sizes[0],
        "reference": reference_label,
        "reference_seconds": round(ref_s, 3),
        "reference_seconds_runs": [round(t, 3) for t in ref_times],
        "reference_mb_per_s": round(ref_rate, 1),
        "reference_archive_bytes": ref_size,
        "ratio": round(ratio, 3),
    }, task_ids


# --------------------------------------------------------------------------- (b) burst


def _prefect_runs(prefect_api: str, tag: str) -> list[dict]:
    """Every flow run carrying ``tag`` (paged by 200; retried, the server may be busy)."""
    runs: list[dict] = []
    with httpx.Client(base_url=prefect_api, timeout=120) as client:
        while True:
            body = {"flow_runs": {"tags": {"all_": [tag]}}, "sort": "ID_DESC", "limit": 200, "offset": len(runs)}
            for attempt in range(8):
                try:
                    response = client.post("/flow_runs/filter", json=body)
                    if response.status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(min(10, 0.5 * 2**attempt))
            else:
                raise RuntimeError(f"Prefect flow_runs/filter kept failing for tag {tag}")
            page = response.json()
            runs += page
            if len(page) < 200:
                return runs


def _burst(api: Api, stack: Stack, count: int, threads: int, attempts: int, timeout: float, min_free_mb: int,
           other_bulk_tasks: list[str]) -> dict:
    ds = "burst"
    api.create_dataset(ds)
    api.upload_bytes(ds, "tiny.txt", b"tiny\n")
    params = {"paths": ["tiny.txt"], "compress": False}
    codes: collections.Counter = collections.Counter()
    first_try: collections.Counter = collections.Counter()
    errors: collections.Counter = collections.Counter()
    accepted: list[str] = []
    answer_times: list[float] = []
    not_submitted = 0
    lock = threading.Lock()
    started = time.perf_counter()
    deadline = started + timeout
    submit_deadline = started + 0.75 * timeout
    abort = threading.Event()

    def submit_one(_index: int) -> None:
        nonlocal not_submitted
        if abort.is_set() or time.perf_counter() > submit_deadline:
            with lock:
                not_submitted += 1
            return
        for attempt in range(attempts):
            asked = time.perf_counter()
            try:
                response = api.submit(ds, "bulk-download", params)
                code, text = response.status_code, response.text
            except httpx.HTTPError as exc:
                code, text = type(exc).__name__, str(exc)
            with lock:
                answer_times.append(time.perf_counter() - asked)
                codes[code] += 1
                if attempt == 0:
                    first_try[code] += 1
                if code != 202:
                    errors[f"{code} {text[:160]}"] += 1
            if code == 202:
                with lock:
                    accepted.append(response.json()["taskId"])
                return
            if code not in RETRYABLE and isinstance(code, int):
                return
            if attempt + 1 < attempts and time.perf_counter() < submit_deadline:
                time.sleep(2**attempt)

    # a watchdog for memory and flow-run processes while submitting and draining
    watch = {"max_flow_run_processes": 0, "min_available_mb": psutil.virtual_memory().available / MB,
             "max_load1": 0.0}
    stop_watch = threading.Event()

    def watchdog() -> None:
        while not stop_watch.is_set():
            available = psutil.virtual_memory().available / MB
            watch["min_available_mb"] = min(watch["min_available_mb"], available)
            watch["max_flow_run_processes"] = max(watch["max_flow_run_processes"], stack.flow_run_processes())
            watch["max_load1"] = max(watch["max_load1"], os.getloadavg()[0])
            if available < min_free_mb:
                if not abort.is_set():
                    print(f"    !! only {available:.0f} MB memory available: abandoning the burst", flush=True)
                abort.set()
            stop_watch.wait(1.0)

    watcher = threading.Thread(target=watchdog, daemon=True)
    watcher.start()
    try:
        pool = ThreadPoolExecutor(max_workers=threads)
        try:
            list(pool.map(submit_one, range(count)))
        except BaseException:  # SIGTERM (SystemExit) or Ctrl-C: queued submissions are dropped, not sent
            abort.set()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        submit_s = time.perf_counter() - started
        accepted_set = set(accepted)
        print(f"(b) burst: {count} bulk-download tasks from {threads} threads; submitted in {submit_s:.1f} s: "
              f"{len(accepted)} accepted, {count - len(accepted) - not_submitted} rejected, "
              f"{not_submitted} not submitted (time budget/abort)", flush=True)
        print(f"    answers {dict(sorted(codes.items(), key=str))}; "
              f"first tries {dict(sorted(first_try.items(), key=str))}; "
              f"answer time median {statistics.median(answer_times or [0]):.2f} s, "
              f"max {max(answer_times or [0]):.2f} s", flush=True)

        # drain: poll the list every 5 s until every accepted task is terminal
        last_states: dict[str, str] = {}
        poll_errors = 0
        all_done_at = None
        next_report = 0.0
        while True:
            try:
                items, _ = api.all_tasks(ds)
                last_states = {t["taskId"]: t["state"] for t in items}
            except (RuntimeError, httpx.HTTPError, KeyError):
                poll_errors += 1
            elapsed = time.perf_counter() - started
            pending = [i for i in accepted_set if last_states.get(i) not in TERMINAL]
            if not pending and last_states:
                all_done_at = elapsed
                break
            if elapsed >= next_report:
                counts = collections.Counter(last_states.get(i, "?") for i in accepted_set)
                print(f"    {elapsed:6.0f} s  {dict(sorted(counts.items()))}  flow-run processes "
                      f"{stack.flow_run_processes()}  available {psutil.virtual_memory().available / MB:.0f} MB  "
                      f"load {os.getloadavg()[0]:.1f}", flush=True)
                next_report = elapsed + 30
            if time.perf_counter() > deadline or abort.is_set():
                break
            time.sleep(BURST_POLL_S)
        drain_end = time.perf_counter() - started
    finally:
        stop_watch.set()
        watcher.join(timeout=5)

    # final accounting (may take a while when Prefect is busy; not part of the timed region)
    for attempt in range(8):
        try:
            items, total = api.all_tasks(ds)
            break
        except (RuntimeError, httpx.HTTPError, KeyError):
            if attempt == 7:
                raise
            time.sleep(min(10, 0.5 * 2**attempt))
    rows = {t["taskId"]: t for t in items}
    states = collections.Counter(rows[i]["state"] if i in rows else "MISSING" for i in accepted_set)
    lost = sorted(accepted_set - rows.keys())
    extra_rows = sorted(rows.keys() - accepted_set)
    extra_states = collections.Counter((rows[i]["state"], bool(rows[i]["flowRunId"])) for i in extra_rows)
    multi_attempt = sorted(i for i in accepted_set & rows.keys() if rows[i]["attempts"] != 1)
    terminal = sum(n for s, n in states.items() if s in TERMINAL)
    failure_reasons = collections.Counter((rows[i].get("error") or "")[:140] for i in accepted_set
                                          if i in rows and rows[i]["state"] == "Failed")

    runs = _prefect_runs(stack.prefect_api, "tool:bulk-download")
    per_task: collections.Counter = collections.Counter()
    for run in runs:
        for tag in run.get("tags") or []:
            if tag.startswith("task:"):
                per_task[tag[5:]] += 1
    known = accepted_set | set(other_bulk_tasks) | set(rows)
    orphan_runs = [r for r in runs if not any(t[5:] in known for t in (r.get("tags") or []) if t.startswith("task:"))]
    no_run = sorted(i for i in accepted_set if per_task[i] == 0)
    several_runs = sorted(i for i in accepted_set if per_task[i] > 1)
    run_states = collections.Counter(
        f"{r.get('state_type')}/{r.get('state_name')}" for r in runs
        if any(t[5:] in accepted_set for t in (r.get("tags") or []) if t.startswith("task:"))
    )

    orphan_states = collections.Counter(f"{r.get('state_type')}/{r.get('state_name')}" for r in orphan_runs)
    wall = all_done_at if all_done_at is not None else drain_end
    per_min = terminal / wall * 60 if wall > 0 else 0.0
    succeeded_per_min = states.get("Succeeded", 0) / wall * 60 if wall > 0 else 0.0
    created = [_parse_time(rows[i]["createdAt"]) for i in accepted_set if i in rows]
    finished = [_parse_time(rows[i]["finishedAt"]) for i in accepted_set if i in rows and rows[i]["finishedAt"]]
    server_span = (max(finished) - min(created)).total_seconds() if created and finished else None

    ok = (len(accepted) == len(accepted_set) and not lost and not extra_rows and not multi_attempt and not no_run
          and not several_runs and not orphan_runs and terminal == len(accepted_set) and total == len(rows))
    print(f"    {'all accepted tasks terminal' if all_done_at is not None else 'TIMED OUT / ABANDONED'} after "
          f"{wall:.1f} s (budget {timeout:.0f} s); list poll errors {poll_errors}")
    print(f"    throughput {per_min:.1f} tasks/min reached a terminal state ({succeeded_per_min:.1f} succeeded/min)"
          + (f"; server span first createdAt -> last finishedAt {server_span:.1f} s" if server_span else ""))
    print(f"    state counts of the {len(accepted_set)} accepted tasks: {dict(sorted(states.items()))}")
    if failure_reasons:
        for reason, n in failure_reasons.most_common(5):
            print(f"      failed x{n}: {reason}")
    print(f"    checks: distinct ids {len(accepted_set)}/{len(accepted)}, missing from list {len(lost)}, "
          f"list total {total} (rows {len(rows)}), extra rows (created although answered with an error) "
          f"{len(extra_rows)} {dict(extra_states)}, "
          f"attempts != 1: {len(multi_attempt)}")
    print(f"    prefect: {len(runs)} bulk-download flow runs; tasks with 0 runs {len(no_run)}, with >1 runs "
          f"{len(several_runs)}, runs without a task {len(orphan_runs)} {dict(orphan_states)}; "
          f"run states {dict(sorted(run_states.items()))}")
    print(f"    peak flow-run processes {watch['max_flow_run_processes']}, min available memory "
          f"{watch['min_available_mb']:.0f} MB, max load1 {watch['max_load1']:.1f}")
    if errors:
        for text, n in errors.most_common(4):
            print(f"      rejected x{n}: {text}")
    print(f"    verdict: {'ok (none lost, none run twice, all terminal)' if ok else 'PROBLEMS (see above)'}; "
          f"{len(accepted_set)}/{count} submissions accepted")
    return {
        "requested": count,
        "threads": threads,
        "submit_attempts": attempts,
        "submit_seconds": round(submit_s, 2),
        "accepted": len(accepted),
        "accepted_distinct": len(accepted_set),
        "rejected": count - len(accepted) - not_submitted,
        "not_submitted": not_submitted,
        "answers": {str(k): v for k, v in codes.items()},
        "first_try_answers": {str(k): v for k, v in first_try.items()},
        "answers_429": codes.get(429, 0),
        "answer_time_median_s": round(statistics.median(answer_times or [0]), 3),
        "answer_time_max_s": round(max(answer_times or [0]), 3),
        "all_terminal": all_done_at is not None,
        "wall_seconds": round(wall, 1),
        "timeout_seconds": timeout,
        "aborted_low_memory": abort.is_set(),
        "terminal": terminal,
        "tasks_per_min": round(per_min, 1),
        "succeeded_per_min": round(succeeded_per_min, 1),
        "server_span_seconds": round(server_span, 1) if server_span else None,
        "state_counts": dict(states),
        "failure_reasons": dict(failure_reasons.most_common(5)),
        "list_total": total,
        "missing_from_list": len(lost),
        "extra_rows": len(extra_rows),
        "extra_row_states": {f"{s} flowRun={f}": n for (s, f), n in extra_states.items()},
        "attempts_not_1": len(multi_attempt),
        "prefect_runs": len(runs),
        "tasks_without_run": len(no_run),
        "tasks_with_several_runs": len(several_runs),
        "runs_without_task": len(orphan_runs),
        "runs_without_task_states": dict(orphan_states),
        "run_states": dict(run_states),
        "list_poll_errors": poll_errors,
        "peak_flow_run_processes": watch["max_flow_run_processes"],
        "min_available_mb": round(watch["min_available_mb"]),
        "max_load1": round(watch["max_load1"], 1),
        "ok": ok,
    }


# --------------------------------------------------------------------------- entry point


def run() -> dict:
    latency_runs = max(1, env_int("BENCH_LATENCY_RUNS", 20))
    zip_files = max(1, env_int("BENCH_ZIP_FILES", 20))
    zip_file_mb = max(1, env_int("BENCH_ZIP_FILE_MB", 10))
    zip_runs = max(1, env_int("BENCH_ZIP_RUNS", 3))
    burst = max(0, env_int("BENCH_BURST", 500))
    burst_threads = max(1, env_int("BENCH_BURST_THREADS", 16))
    submit_attempts = max(1, env_int("BENCH_SUBMIT_ATTEMPTS", 1))
    burst_timeout = float(env_int("BENCH_BURST_TIMEOUT", 1800))
    min_free_mb = env_int("BENCH_MIN_FREE_MB", 1024)

    BENCH_ROOT.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="tasks_platform-", dir=BENCH_ROOT))
    stack = None
    api = None
    result: dict = {}
    previous_sigterm = None
    if threading.current_thread() is threading.main_thread():
        # SIGTERM would otherwise end the interpreter without running the ``finally`` below,
        # leaving the whole stack running and the temp dir behind.
        def _terminate(signum: int, _frame) -> None:
            raise SystemExit(128 + signum)

        previous_sigterm = signal.signal(signal.SIGTERM, _terminate)
    try:
        stack = Stack(tmp)
        startup = stack.wait_ready()
        print(f"temp dir     : {tmp}")
        print(f"georeg serve : API {stack.api_url}, Prefect {stack.prefect_api} (pid {stack.process.pid}, "
              f"ready in {startup:.1f} s); {os.cpu_count()} CPUs, load1 {os.getloadavg()[0]:.1f}", flush=True)
        result["startup_seconds"] = round(startup, 1)
        api = Api(stack.api_url)

        result["latency"] = _latency(api, stack, latency_runs)
        zip_result, zip_tasks = _zip_throughput(api, stack, tmp, zip_files, zip_file_mb, zip_runs)
        result["zip"] = zip_result
        if burst:
            result["burst"] = _burst(api, stack, burst, burst_threads, submit_attempts, burst_timeout, min_free_mb,
                                     zip_tasks)
        result["logs"] = stack.log_counts()
        print(f"stack logs   : {result['logs']}")
    finally:
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)
        if api is not None:
            api.close()
        if stack is not None:
            code = stack.stop()
            result["serve_exit_code"] = code
            print(f"georeg serve stopped (exit code {code})")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            BENCH_ROOT.rmdir()  # only when empty
        except OSError:
            pass

    latency = result["latency"]
    zip_result = result["zip"]
    print(f"summary: Processing median {latency['processing_median_s']:.2f} s (target <= {PROCESSING_TARGET_S:.0f} s), "
          f"Succeeded median {latency['succeeded_median_s']:.2f} s; zip ratio {zip_result['ratio']:.2f}"
          + (f"; burst {result['burst']['tasks_per_min']:.1f} tasks/min, ok={result['burst']['ok']}"
             if "burst" in result else ""))
    return result
