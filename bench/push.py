"""Push (``ddb push``-style sync) against a real API process: a first push of ``BENCH_PUSH_FILES`` (2,000) small
files, then a second push after 1% of them changed, timed against the first. The reference measured in the same run
is a plain upload of the same files one by one (``POST .../obj``) into another dataset.

The client is tests/sync_client.py (stamp computed locally, init / upload / meta / commit over HTTP, one keep-alive
connection). Files are ``BENCH_PUSH_BYTES`` (1,024) random bytes each, in 20 folders.
"""

from __future__ import annotations

import os
import time

import httpx

from bench._common import BENCH_ADMIN_PASSWORD, check, env_int, running_api, scratch_dir


def run() -> dict:
    from tests.sync_client import SyncClient

    count = env_int("BENCH_PUSH_FILES", 2000)
    size = env_int("BENCH_PUSH_BYTES", 1024)
    with scratch_dir("push-") as tmp, running_api(tmp) as base_url, \
            httpx.Client(base_url=base_url, timeout=600) as http:
        token = check(http.post("/users/authenticate", json={"userName": "admin", "password": BENCH_ADMIN_PASSWORD}),
                      "authenticate").json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        folder = tmp / "local"
        paths = [f"d{i % 20:02}/f{i:05}.bin" for i in range(count)]
        for path in paths:
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            (folder / path).write_bytes(os.urandom(size))

        check(http.post("/orgs/admin/ds", json={"slug": "plain"}, headers=headers), "create dataset")
        started = time.perf_counter()
        for path in paths:
            check(http.post("/orgs/admin/ds/plain/obj", data={"path": path},
                            files={"file": (path.rsplit("/", 1)[-1], (folder / path).read_bytes())}, headers=headers),
                  f"upload {path}")
        plain_s = time.perf_counter() - started

        sync = SyncClient(http, headers, "/orgs/admin/ds/pushed", folder)
        started = time.perf_counter()
        answer = sync.init()
        inited = time.perf_counter()
        sync.send(answer)
        sent = time.perf_counter()
        first_stamp = sync.commit(answer)
        first_s = time.perf_counter() - started
        phases = {"init": inited - started, "upload": sent - inited, "commit": first_s - (sent - started)}
        if len(sync.uploaded) != count or first_stamp != sync.stamp():
            raise RuntimeError("first push: not every file was uploaded, or the stamps differ")

        changed = paths[:: max(1, count // max(1, count // 100))][: max(1, count // 100)]
        for path in changed:
            (folder / path).write_bytes(os.urandom(size))
        started = time.perf_counter()
        second_stamp = sync.push()
        second_s = time.perf_counter() - started
        if sorted(sync.uploaded) != sorted(changed) or second_stamp != sync.stamp():
            raise RuntimeError("second push: uploaded files other than the changed ones, or the stamps differ")

    first_rate, plain_rate = count / first_s, count / plain_s
    print(f"files              : {count} x {size} bytes")
    print(f"plain upload (obj) : {plain_s:7.2f} s  {plain_rate:8.1f} files/s   (reference)")
    print(f"first push         : {first_s:7.2f} s  {first_rate:8.1f} files/s   "
          f"ratio vs plain upload {first_rate / plain_rate:.2f}")
    print(f"  init / uploads / commit : {' / '.join(f'{seconds:.2f} s' for seconds in phases.values())}")
    print(f"second push (1%)   : {second_s:7.2f} s  {len(changed)} files changed, "
          f"{second_s / first_s:.3f} of the first push's time")
    return {"files": count, "file_bytes": size, "plain_upload_seconds": round(plain_s, 3),
            "plain_files_per_s": round(plain_rate, 1), "first_push_seconds": round(first_s, 3),
            "first_push_files_per_s": round(first_rate, 1),
            "first_push_phase_seconds": {name: round(seconds, 3) for name, seconds in phases.items()},
            "first_push_vs_plain": round(first_rate / plain_rate, 3),
            "second_push_changed": len(changed), "second_push_seconds": round(second_s, 3),
            "second_vs_first": round(second_s / first_s, 4)}
