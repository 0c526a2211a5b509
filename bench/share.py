"""A large file by chunked share (DroneDB's ``ddb share`` protocol) through the real API, against a plain file copy.

* reference: ``shutil.copyfile(src, dst)`` + fsync;
* georeg: ``POST /share/init``, the file in ``BENCH_CHUNK_MB`` (16) MB chunks to ``/share/{token}/upload/chunked``
  (each a multipart request with a Content-Length, sent by ``http.client``), the last one assembling the file
  (chunks streamed in order into one file, sha256, fsync), then ``/share/{token}/commit`` (a rename into the dataset).

The ratio is georeg throughput / copy throughput. The API process's peak RSS (VmHWM of the uvicorn process) shows
that chunks are streamed to disk, never held whole. The sha256 the API reports is checked against the source.
``BENCH_SIZE_MB`` (1024) and ``BENCH_CHUNK_MB`` (16) override the defaults. Sizes: 1 MB = 2**20 bytes.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil

from bench._common import BENCH_ADMIN_PASSWORD, check, env_int, running_api, scratch_dir, write_random

MB = 1024 * 1024


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _api_process() -> psutil.Process:
    return next(child for child in psutil.Process().children(recursive=True)
                if any("uvicorn" in part for part in child.cmdline()))


def _peak_rss_mb(process: psutil.Process) -> float:
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _send_chunk(base_url: str, token: str, share: str, fields: dict[str, str], data: bytes) -> dict:
    boundary = os.urandom(16).hex()
    head = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
                   for name, value in fields.items())
    head += (f'--{boundary}\r\nContent-Disposition: form-data; name="chunk"; filename="chunk"\r\n'
             "Content-Type: application/octet-stream\r\n\r\n")
    tail = f"\r\n--{boundary}--\r\n".encode()
    url = urlsplit(base_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=600, blocksize=MB)
    try:
        connection.putrequest("POST", f"/share/{share}/upload/chunked")
        connection.putheader("Authorization", f"Bearer {token}")
        connection.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
        connection.putheader("Content-Length", str(len(head.encode()) + len(data) + len(tail)))
        connection.endheaders()
        connection.send(head.encode())
        connection.send(memoryview(data))
        connection.send(tail)
        response = connection.getresponse()
        body = response.read()
        if response.status >= 400:
            raise RuntimeError(f"chunk {fields['chunkIndex']}: HTTP {response.status}: {body[:500]!r}")
        return json.loads(body)
    finally:
        connection.close()


def _share(client: httpx.Client, base_url: str, token: str, src: Path, size: int, chunk: int) -> tuple[float, dict]:
    total = -(-size // chunk)
    started = time.perf_counter()
    share = check(client.post("/share/init", data={"tag": "admin/bench"}), "share init").json()["token"]
    last: dict = {}
    with open(src, "rb") as handle:
        for index in range(total):
            data = handle.read(chunk)
            last = _send_chunk(base_url, token, share, {
                "fileId": "big", "chunkIndex": str(index), "totalChunks": str(total), "totalFileSize": str(size),
                "path": "big.bin"}, data)
    check(client.post(f"/share/{share}/commit"), "share commit")
    return time.perf_counter() - started, last


def run() -> dict:
    size = env_int("BENCH_SIZE_MB", 1024) * MB
    chunk = env_int("BENCH_CHUNK_MB", 16) * MB
    with scratch_dir("share-") as tmp, running_api(tmp) as base_url:
        process = _api_process()
        src = tmp / "src.bin"
        write_random(src, size, durable=True)
        digest = hashlib.sha256()
        with open(src, "rb") as handle:
            while piece := handle.read(8 * MB):
                digest.update(piece)
        with httpx.Client(base_url=base_url, timeout=600) as client:
            token = check(client.post("/users/authenticate", json={"userName": "admin",
                                                                   "password": BENCH_ADMIN_PASSWORD}),
                          "authenticate").json()["token"]
            client.headers["Authorization"] = f"Bearer {token}"
            check(client.post("/orgs/admin/ds", json={"slug": "bench"}), "create dataset")
            rss_before = _peak_rss_mb(process)
            started = time.perf_counter()
            shutil.copyfile(src, tmp / "copy.bin")
            _fsync(tmp / "copy.bin")
            copy_s = time.perf_counter() - started
            (tmp / "copy.bin").unlink()
            share_s, last = _share(client, base_url, token, src, size, chunk)
            peak = _peak_rss_mb(process)
    if not last.get("complete") or last["entry"]["hash"] != digest.hexdigest() or last["entry"]["size"] != size:
        raise RuntimeError(f"the shared file is not the source: {last}")
    copy_rate, share_rate = size / MB / copy_s, size / MB / share_s
    ratio = share_rate / copy_rate
    print(f"copy  (copyfile + fsync)            : {copy_s:7.2f} s  {copy_rate:8.1f} MB/s")
    print(f"share ({chunk // MB} MB chunks + commit)     : {share_s:7.2f} s  {share_rate:8.1f} MB/s")
    print(f"ratio (share throughput / copy throughput) = {ratio:.2f}")
    print(f"API process peak RSS: {peak:.0f} MB (before the transfers: {rss_before:.0f} MB)")
    return {"size_mb": size // MB, "chunk_mb": chunk // MB, "copy_seconds": round(copy_s, 3),
            "share_seconds": round(share_s, 3), "copy_mb_per_s": round(copy_rate, 1),
            "share_mb_per_s": round(share_rate, 1), "ratio": round(ratio, 3), "api_peak_rss_mb": round(peak, 1),
            "api_rss_before_mb": round(rss_before, 1)}
