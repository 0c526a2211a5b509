"""Files added by a share commit or a push commit start their builds like a plain upload does
(``GEOREG_BUILD_ON_UPLOAD``): one build per buildable content, none for other files."""

from __future__ import annotations

import hashlib
import json

from tests.flows.conftest import wait_for_state
from tests.rasters import write_geotiff

DONE = {"Succeeded", "Failed", "Cancelled"}


def _builds(client, headers, dataset: str) -> list[tuple[str, str]]:
    items = client.get(f"/orgs/admin/ds/{dataset}/builds", headers=headers).json()["items"]
    for item in items:
        done = wait_for_state(client, f"/orgs/admin/ds/{dataset}/tasks/{item['jobId']}", headers, DONE)
        assert done["state"] == "Succeeded", done
    return sorted((item["path"], item["hash"]) for item in items)


def test_share_and_push_commits_start_builds(client, admin_headers, tmp_path, settings):
    settings.build_on_upload = True  # the app reads the settings object the fixture built it with
    scene = write_geotiff(tmp_path / "scene.tif").read_bytes()
    other = write_geotiff(tmp_path / "other.tif", origin=(5.0, 60.0)).read_bytes()

    token = client.post("/share/init", data={"tag": "admin/shared"}, headers=admin_headers).json()["token"]
    for path, data in (("a/scene.tif", scene), ("copy.tif", scene), ("notes.txt", b"notes")):
        sent = client.post(f"/share/{token}/upload", data={"path": path}, files={"file": (path, data)},
                           headers=admin_headers)
        assert sent.status_code == 200, sent.text
    assert client.post(f"/share/{token}/commit", headers=admin_headers).status_code == 200
    scene_hash = hashlib.sha256(scene).hexdigest()
    assert [sha for _, sha in _builds(client, admin_headers, "shared")] == [scene_hash], "one build per content"

    stamp = {"entries": [{"b.tif": hashlib.sha256(other).hexdigest()},
                         {"readme.txt": hashlib.sha256(b"r").hexdigest()}], "meta": []}
    base = "/orgs/admin/ds/pushed/push"
    answer = client.post(f"{base}/init", data={"checksum": "", "stamp": json.dumps(stamp)}, headers=admin_headers)
    assert answer.status_code == 200, answer.text
    push_token = answer.json()["token"]
    for path, data in (("b.tif", other), ("readme.txt", b"r")):
        sent = client.post(f"{base}/upload", data={"token": push_token, "path": path}, files={"file": (path, data)},
                           headers=admin_headers)
        assert sent.status_code == 200, sent.text
    assert client.post(f"{base}/commit", data={"token": push_token}, headers=admin_headers).status_code == 200
    assert _builds(client, admin_headers, "pushed") == [("b.tif", hashlib.sha256(other).hexdigest())]
    assert client.get(f"/orgs/admin/ds/pushed/build/{hashlib.sha256(other).hexdigest()}/cog/cog.tif",
                      headers=admin_headers).status_code == 200
