"""A small sync client, speaking only HTTP as DroneDB's ``ddb push`` does: it computes the stamp of a local folder
with its own implementation of the stamp algorithm (a cross-check of the server's), keeps the server checksum of its
last sync, and pushes with init / upload / meta / commit.

Local metadata is a list of records ``{id, path, key, data, mtime}`` kept in :attr:`SyncClient.meta`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


class PullRequired(Exception):
    """The server changed since the last sync."""


def local_stamp(folder: Path, meta_ids: list[str]) -> dict:
    """``{checksum, entries: [{path: sha256 or ''}], meta: [ids]}`` of ``folder``: sha256 over each entry's path
    then hash (paths in code-point order), then each metadata id ascending."""
    entries: dict[str, str] = {}
    for item in folder.rglob("*"):
        path = item.relative_to(folder).as_posix()
        entries[path] = hashlib.sha256(item.read_bytes()).hexdigest() if item.is_file() else ""
    digest = hashlib.sha256()
    for path in sorted(entries):
        digest.update(path.encode())
        digest.update(entries[path].encode())
    ids = sorted(meta_ids)
    for meta_id in ids:
        digest.update(meta_id.encode())
    return {"checksum": digest.hexdigest(), "entries": [{path: entries[path]} for path in sorted(entries)],
            "meta": ids}


class SyncClient:
    """Pushes ``folder`` to ``base`` (``/orgs/{org}/ds/{ds}``) with ``http`` (a TestClient or httpx.Client)."""

    def __init__(self, http: Any, headers: dict[str, str], base: str, folder: Path) -> None:
        self.http, self.headers, self.base, self.folder = http, headers, base, folder
        self.checksum = ""  # the server checksum of the last sync
        self.meta: list[dict] = []
        self.uploaded: list[str] = []  # paths uploaded by the last push

    def stamp(self) -> dict:
        return local_stamp(self.folder, [record["id"] for record in self.meta])

    def _post(self, url: str, **kwargs: Any) -> dict:
        response = self.http.post(f"{self.base}/push/{url}", headers=self.headers, **kwargs)
        if response.status_code != 200:
            raise RuntimeError(f"push/{url}: {response.status_code} {response.text}")
        return response.json()

    def init(self) -> dict:
        """push/init; :class:`PullRequired` when the server changed."""
        stamp = self.stamp()
        answer = self._post("init", data={"checksum": self.checksum, "stamp": json.dumps(
            {"entries": stamp["entries"], "meta": stamp["meta"]})})
        if answer["pullRequired"]:
            raise PullRequired(self.base)
        return answer

    def send(self, answer: dict) -> None:
        """Upload the needed files and metadata of an init ``answer``."""
        token = answer["token"]
        self.uploaded = []
        for path in answer["neededFiles"]:
            content = (self.folder / path).read_bytes()
            self._post("upload", data={"token": token, "path": path}, files={"file": (Path(path).name, content)})
            self.uploaded.append(path)
        needed = set(answer["neededMeta"])
        records = [record for record in self.meta if record["id"] in needed]
        if records:
            self._post("meta", data={"token": token, "meta": json.dumps(records)})

    def commit(self, answer: dict) -> dict:
        stamp = self._post("commit", data={"token": answer["token"]})
        self.checksum = stamp["checksum"]
        return stamp

    def push(self) -> dict:
        """init, upload, meta, commit; the server's new stamp."""
        answer = self.init()
        self.send(answer)
        return self.commit(answer)
