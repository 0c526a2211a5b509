"""Concurrent writers over real HTTP (uvicorn in a thread, one httpx client per thread): uploads, renames and moves
into one dataset at once, a dataset renamed while files are uploaded into it, and two administrators editing one
organization at once.

Whatever the interleaving: no answer is a 5xx, every refusal is a 404/409 of the JSON error shape, and the final
state is what the successful operations made -- every successful upload listed with its hash, every successful
move reflected (one winner per contended source or destination), entries and files on disk agree (no row without
its file, no file without its row, every entry's folder an entry too) and the dataset stamp's checksum is the one
its entries give. Runs on PostgreSQL (row locks, real parallel writers) and on SQLite (one writer at a time)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

import httpx
import pytest

from georeg.api.app import create_app
from tests.helpers import ADMIN_PASSWORD, BACKENDS, create_dataset, login
from tests.live import serve_app

pytestmark = pytest.mark.parametrize("backend", BACKENDS, indirect=True)

BASE = "/orgs/admin/ds/d"
THREADS = 8
ROUNDS = 4  # operations of each kind per thread
REFUSALS = {404, 409}


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


class Recorder:
    """Every answer of every thread, for the no-5xx and error-shape checks."""

    def __init__(self) -> None:
        self.answers: list[tuple[str, int, object]] = []
        self._lock = threading.Lock()

    def __call__(self, what: str, send: Callable[[], httpx.Response]) -> httpx.Response | None:
        """Send the request; None when the connection broke (a 500 after which uvicorn closed it)."""
        try:
            response = send()
        except httpx.TransportError as exc:
            with self._lock:
                self.answers.append((what, 599, repr(exc)))
            return None
        try:
            body = response.json()
        except ValueError:
            body = response.text
        with self._lock:
            self.answers.append((what, response.status_code, body))
        return response

    def check(self) -> None:
        server_errors = [a for a in self.answers if a[1] >= 500]  # 599: the connection broke
        assert not server_errors, f"{len(server_errors)} of {len(self.answers)}: {server_errors[:5]}"
        unexpected = [a for a in self.answers if a[1] >= 400 and a[1] not in REFUSALS]
        assert not unexpected, unexpected[:5]
        for what, status, body in self.answers:
            if status >= 400:
                assert isinstance(body, dict) and set(body) >= {"error", "code"}, (what, status, body)
                assert isinstance(body["error"], str) and body["error"] and body["code"], (what, status, body)


@contextmanager
def live(settings) -> Iterator[tuple[str, dict[str, str]]]:
    with serve_app(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as setup:
        headers = login(setup, "admin", ADMIN_PASSWORD)
        yield url, headers


def run_threads(url: str, headers: dict[str, str], work: Callable[[httpx.Client, int], None]) -> None:
    """``work(client, number)`` in THREADS threads released together, each with its own connection."""
    start = threading.Barrier(THREADS)

    def one(number: int) -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            start.wait(timeout=30)
            work(client, number)

    with ThreadPoolExecutor(THREADS) as pool:
        for future in [pool.submit(one, number) for number in range(THREADS)]:
            future.result()


def upload(client: httpx.Client, record: Recorder, path: str, content: bytes, *,
           base: str = BASE) -> httpx.Response | None:
    return record(f"upload {path}", lambda: client.post(
        f"{base}/obj", files={"file": (PurePosixPath(path).name, content)}, data={"path": path}))


def move(client: httpx.Client, record: Recorder, source: str, dest: str) -> httpx.Response | None:
    return record(f"move {source} -> {dest}", lambda: client.put(f"{BASE}/obj", json={"source": source, "dest": dest}))


def check_consistency(client: httpx.Client, storage: Path, *, base: str = BASE) -> dict[str, str]:
    """Entries and storage agree and the stamp is consistent; returns {file path: hash}."""
    stamp = client.get(f"{base}/stamp")
    assert stamp.status_code == 200, stamp.text
    stamp = stamp.json()
    entries = {path: digest for item in stamp["entries"] for path, digest in item.items()}
    digest = hashlib.sha256()
    for path in sorted(entries):
        digest.update(path.encode())
        digest.update(entries[path].encode())
    for meta_id in stamp["meta"]:
        digest.update(meta_id.encode())
    assert stamp["checksum"] == digest.hexdigest(), "the stamp's checksum is the one its entries give"

    files = {path: value for path, value in entries.items() if value}
    folders = {path for path, value in entries.items() if not value}
    for path in entries:
        parents = [str(parent) for parent in PurePosixPath(path).parents if str(parent) != "."]
        assert set(parents) <= folders, f"{path}: folder entries missing: {set(parents) - folders}"
    on_disk = {str(p.relative_to(storage)): p for p in storage.rglob("*") if p.is_file()} if storage.exists() else {}
    assert sorted(on_disk) == sorted(files), "no row without its file, no file without its row"
    for path, value in files.items():
        assert sha(on_disk[path].read_bytes()) == value, f"{path}: the file on disk is not the one its row names"
    disk_dirs = {str(p.relative_to(storage)) for p in storage.rglob("*") if p.is_dir()} if storage.exists() else set()
    assert disk_dirs <= folders | {str(PurePosixPath(f).parent) for f in files}, "no folder on disk without a row"

    info = client.get(f"{base}/ex")
    assert info.status_code == 200, info.text
    assert info.json()["entries"] == len(files)
    assert info.json()["size"] == sum(p.stat().st_size for p in on_disk.values())
    return files


def test_uploads_renames_and_moves_into_one_dataset_at_once(settings) -> None:
    record = Recorder()
    seed = {f"seed/f{i}.txt": f"seed {i}".encode() for i in range(THREADS * ROUNDS // 2)}
    trees = {f"tree{i}/a/leaf.txt": f"tree {i}".encode() for i in range(THREADS // 2)}
    pairs = {f"pair/p{i}-{side}.txt": f"pair {i} {side}".encode() for i in range(ROUNDS) for side in "ab"}
    with live(settings) as (url, headers):
        with httpx.Client(base_url=url, headers=headers, timeout=60) as setup:
            create_dataset(setup, headers)
            for path, content in {**seed, **trees, **pairs}.items():
                assert upload(setup, record, path, content).status_code == 201

        uploads: list[tuple[str, str]] = []  # (path, hash) of every successful upload
        moves: list[tuple[str, str]] = []  # (source, dest) of every successful move
        lock = threading.Lock()

        def ok_upload(client: httpx.Client, path: str, content: bytes) -> None:
            response = upload(client, record, path, content)
            if response is not None and response.status_code == 201:
                assert response.json()["hash"] == sha(content), response.text
                with lock:
                    uploads.append((path, sha(content)))

        def ok_move(client: httpx.Client, source: str, dest: str) -> None:
            response = move(client, record, source, dest)
            if response is not None and response.status_code == 200:
                with lock:
                    moves.append((source, dest))

        def work(client: httpx.Client, number: int) -> None:
            for round_ in range(ROUNDS):
                # a file of its own, in a folder every thread creates at the same moment
                ok_upload(client, f"shared/r{round_}/t{number}.bin", f"own {number} {round_}".encode())
                # one path every thread replaces at once
                ok_upload(client, f"hot/h{round_}.bin", f"hot {number} {round_}".encode())
                # every thread renames the same file to a name of its own: one wins
                source = f"seed/f{(round_ * THREADS // 2 + number // 2) % len(seed)}.txt"
                ok_move(client, source, source.replace(".txt", f"-by{number}.txt"))
                # two files moved to one destination at once: one wins, the other stays
                side = "ab"[number % 2]
                ok_move(client, f"pair/p{round_}-{side}.txt", f"pairs/p{round_}.txt")
                # a folder moved back and forth while files are uploaded into it
                tree = f"tree{number % (THREADS // 2)}"
                if number < THREADS // 2:
                    ok_move(client, tree, f"moved/{tree}")
                    ok_move(client, f"moved/{tree}", tree)
                else:
                    ok_upload(client, f"{tree}/a/new-{round_}.txt", f"new {number} {round_}".encode())

        run_threads(url, headers, work)
        record.check()

        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            files = check_consistency(client, settings.storage_dir / "admin" / "d")

    # every file its thread uploaded alone is there, with its hash
    for path, digest in uploads:
        if path.startswith("shared/"):
            assert files.get(path) == digest, path
    # the hot paths hold one of their successful uploads
    for round_ in range(ROUNDS):
        path = f"hot/h{round_}.bin"
        assert files.get(path) in {d for p, d in uploads if p == path}, path
    # one rename per seed file won, and the file is where it went
    for path, content in seed.items():
        won = [dest for source, dest in moves if source == path]
        assert len(won) == 1, (path, won)
        assert path not in files and files.get(won[0]) == sha(content), (path, won)
    # one of each pair reached pairs/, the other is where it was
    for round_ in range(ROUNDS):
        won = [source for source, dest in moves if dest == f"pairs/p{round_}.txt"]
        assert len(won) == 1, won
        loser = won[0].replace("-a.txt", "-b.txt") if won[0].endswith("-a.txt") else won[0].replace("-b.", "-a.")
        assert files.get(f"pairs/p{round_}.txt") == sha(pairs[won[0]]) and files.get(loser) == sha(pairs[loser])
    # the trees moved out and back; every file uploaded into one is in it, wherever it went at the end
    for path, content in trees.items():
        tree = path.split("/")[0]
        assert files.get(path) == sha(content) or files.get(f"moved/{path}") == sha(content), path
        for upload_path, digest in uploads:
            if upload_path.startswith(f"{tree}/"):
                assert digest in (files.get(upload_path), files.get(f"moved/{upload_path}")), upload_path


def test_a_dataset_renamed_while_files_are_uploaded_into_it(settings) -> None:
    record = Recorder()
    slugs = ("d", "e")
    with live(settings) as (url, headers):
        with httpx.Client(base_url=url, headers=headers, timeout=60) as setup:
            create_dataset(setup, headers)
        uploads: dict[str, str] = {}
        lock = threading.Lock()

        def work(client: httpx.Client, number: int) -> None:
            for round_ in range(ROUNDS * 2):
                if number == 0:  # the renamer: d -> e -> d ...
                    old, new = slugs[round_ % 2], slugs[(round_ + 1) % 2]
                    record(f"rename {old} -> {new}",
                           lambda old=old, new=new: client.post(f"/orgs/admin/ds/{old}/rename", json={"slug": new}))
                    continue
                path, content = f"t{number}/f{round_}.bin", f"{number} {round_}".encode()
                for slug in slugs:  # wherever the dataset is now
                    response = upload(client, record, path, content, base=f"/orgs/admin/ds/{slug}")
                    if response is not None and response.status_code == 201:
                        with lock:
                            uploads[path] = sha(content)
                        break

        run_threads(url, headers, work)
        record.check()
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            found = [slug for slug in slugs if client.get(f"/orgs/admin/ds/{slug}").status_code == 200]
            assert len(found) == 1, found
            for slug in slugs:
                if slug != found[0]:
                    assert not (settings.storage_dir / "admin" / slug).exists(), "no folder left at the old slug"
            files = check_consistency(client, settings.storage_dir / "admin" / found[0],
                                      base=f"/orgs/admin/ds/{found[0]}")
    assert uploads, "some uploads went through"
    assert {path: files.get(path) for path in uploads} == uploads, "every successful upload is in the dataset"


def test_two_admins_edit_one_organization_at_once(settings) -> None:
    record = Recorder()
    with live(settings) as (url, headers):
        with httpx.Client(base_url=url, timeout=60) as setup:
            made = setup.post("/users", headers=headers, json={"userName": "ada", "password": "ada-password",
                                                               "email": "ada@example.org", "roles": ["admin"]})
            assert made.status_code == 201, made.text
            second = login(setup, "ada", "ada-password")
            created = setup.post("/orgs", json={"slug": "shared", "name": "Shared"}, headers=headers)
            assert created.status_code == 201, created.text
        admins = [headers, second]
        last: dict[int, dict] = {}

        def work(client: httpx.Client, number: int) -> None:
            # thread n edits as admin n % 2; field by thread: name, description, both, or visibility
            client.headers.update(admins[number % 2])
            for round_ in range(ROUNDS * 2):
                change = [{"name": f"name {number} {round_}"}, {"description": f"desc {number} {round_}"},
                          {"name": f"both {number} {round_}", "description": f"both {number} {round_}"},
                          {"isPublic": round_ % 2 == 0}][number % 4]
                response = record(f"edit {change}", lambda change=change: client.put("/orgs/shared", json=change))
                if response is not None and response.status_code == 200:
                    body = response.json()
                    for key, value in change.items():
                        assert body[key] == value, (change, body)
                    last[number] = change

        run_threads(url, headers, work)
        record.check()
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            final = client.get("/orgs/shared").json()
    assert len(last) == THREADS, "every editor's last change went through"
    for key in ("name", "description", "isPublic"):
        assert final[key] in [change[key] for change in last.values() if key in change], (key, final)
    if final["name"].startswith("both"):  # a change of two fields is kept whole or overwritten field by field
        assert final["description"] == final["name"] or final["description"].startswith("desc"), final
