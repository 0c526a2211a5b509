"""``POST /sys/import-dataset`` and ``/sys/import-organization``: a second georeg stack (uvicorn in its own process,
its own data dir, SQLite database and admin password) is the source; the test app imports from it over real HTTP,
the ``registry-import`` flow running in the session's Prefect worker."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from georeg.deployments.processes import ChildProcess
from tests.flows.conftest import wait_for_state
from tests.helpers import ADMIN_PASSWORD, assert_error, free_port, login
from tests.rasters import write_geotiff

ROOT = Path(__file__).resolve().parents[2]
SOURCE_PASSWORD = "source-admin-pw"
DONE = {"Succeeded", "Failed", "Cancelled"}
SURVEY = "/orgs/field/ds/survey"


@dataclass
class Source:
    url: str
    netloc: str
    data_dir: Path
    headers: dict[str, str]

    def call(self, method: str, path: str, **kwargs) -> httpx.Response:
        response = httpx.request(method, f"{self.url}{path}", headers=self.headers, timeout=30, **kwargs)
        assert response.status_code < 300, response.text
        return response


def _start_source(tmp: Path, prefect_api_url: str) -> tuple[ChildProcess, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEOREG_", "PREFECT_"))}
    env.update(GEOREG_DATA_DIR=str(tmp / "data"), GEOREG_ADMIN_PASSWORD=SOURCE_PASSWORD,
               GEOREG_SECRET_KEY="source-secret-key", GEOREG_PREFECT_API_URL=prefect_api_url,
               GEOREG_PASSWORD_HASH_MEMORY_KIB="64", GEOREG_PASSWORD_HASH_TIME_COST="1",
               GEOREG_BUILD_ON_UPLOAD="false", GEOREG_TASK_STATE_SYNC_SECONDS="60")
    process = ChildProcess("source-registry", [sys.executable, "-m", "uvicorn", "--factory",
                                               "georeg.api.app:create_app", "--host", "127.0.0.1", "--port", str(port),
                                               "--log-level", "warning"],
                           env=env, cwd=ROOT, log_file=tmp / "source.log")
    process.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.alive(), (tmp / "source.log").read_text()
        try:
            if httpx.get(f"{url}/version", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.stop()
    raise AssertionError(f"the source registry did not start: {(tmp / 'source.log').read_text()}")


def _seed(source: Source, tmp: Path) -> None:
    """``field/survey`` (public, named, with folders, four files, dataset and entry metadata) and ``field/notes``
    (private, one file)."""
    source.call("POST", "/orgs", json={"slug": "field", "name": "Field campaigns"})
    source.call("POST", "/orgs/field/ds", json={"slug": "survey"})
    source.call("POST", "/orgs/field/ds", json={"slug": "notes"})
    scene = write_geotiff(tmp / "scene.tif", crs="EPSG:32633", origin=(500000, 7000000), pixel=10)
    files = {"readme.txt": b"survey of the fjord\n", "imagery/scene.tif": scene.read_bytes(),
             "imagery/logs/flight.csv": b"t,x,y\n0,1,2\n", "docs/empty.txt": b""}
    for path, content in files.items():
        source.call("POST", f"{SURVEY}/obj", files={"file": (Path(path).name, content)}, data={"path": path})
    source.call("POST", f"{SURVEY}/obj", files={"path": (None, "empty/sub")})
    source.call("POST", f"{SURVEY}/meta/license/set", json="CC-BY-4.0")
    source.call("POST", f"{SURVEY}/meta/tags", json="fjord")
    source.call("POST", f"{SURVEY}/meta/tags", json={"nested": [1, 2]})
    source.call("POST", f"{SURVEY}/meta/note/set", params={"path": "imagery/scene.tif"}, json="cloud free")
    source.call("PUT", SURVEY, json={"name": "Fjord survey", "description": "Summer 2026"})
    source.call("POST", f"{SURVEY}/chattr", json={"visibility": "public"})
    source.call("POST", "/orgs/field/ds/notes/obj", files={"file": ("n.txt", b"private note")}, data={"path": "n.txt"})


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str) -> Iterator[Source]:
    tmp = tmp_path_factory.mktemp("source-registry")
    process, url = _start_source(tmp, prefect_api_url)
    try:
        token = httpx.post(f"{url}/users/authenticate", json={"userName": "admin", "password": SOURCE_PASSWORD},
                           timeout=30).json()["token"]
        stack = Source(url=url, netloc=url.removeprefix("http://"), data_dir=tmp / "data",
                       headers={"Authorization": f"Bearer {token}"})
        _seed(stack, tmp)
        yield stack
    finally:
        process.stop()


@pytest.fixture
def api(settings, source: Source, request: pytest.FixtureRequest) -> TestClient:
    """The test app (session worker) allowed to reach the source stack (and a listed name resolving inwards)."""
    settings.download_hosts = [source.netloc, "localhost:1"]
    return request.getfixturevalue("client")


def _body(source: Source, **fields) -> dict:
    return {"sourceRegistryUrl": source.url, "username": "admin", "password": SOURCE_PASSWORD,
            "sourceOrganization": "field", "sourceDataset": "survey", **fields}


def _run(api: TestClient, headers: dict, route: str, body: dict) -> dict:
    started = api.post(route, json=body, headers=headers)
    assert started.status_code == 202, started.text
    assert "password" not in str(started.json())
    job = wait_for_state(api, f"/datasets/jobs/{started.json()['job_id']}", headers, DONE)
    assert "password" not in str(job["parameters"]) and SOURCE_PASSWORD not in str(job)
    return job


def _stamp(call, dataset: str) -> list[dict]:
    return call("GET", f"{dataset}/stamp").json()["entries"]


def _meta(call, dataset: str) -> list[tuple]:
    return sorted((m["id"], m["path"], m["key"], str(m["data"])) for m in call("POST", f"{dataset}/meta/dump").json())


def _local(api: TestClient, headers: dict):
    def call(method: str, path: str, **kwargs) -> httpx.Response:
        response = api.request(method, path, headers=headers, **kwargs)
        assert response.status_code == 200, response.text
        return response
    return call


def _same_dataset(api: TestClient, headers: dict, source: Source, local: str) -> None:
    call = _local(api, headers)
    assert _stamp(call, local) == _stamp(source.call, SURVEY)
    assert _meta(call, local) == _meta(source.call, SURVEY)
    info = call("GET", f"{local}/ex").json()
    assert (info["name"], info["description"], info["visibility"]) == ("Fjord survey", "Summer 2026", "public")
    scene = call("GET", f"{local}/obj", params={"path": "imagery/scene.tif"}).json()
    assert (scene["type"], scene["crs"]) == ("raster", "EPSG:32633")
    assert call("GET", f"{local}/download", params={"path": "readme.txt"}).content == b"survey of the fjord\n"


def test_import_dataset_in_both_modes_then_skip_everything(api: TestClient, source: Source):
    admin = login(api, "admin", ADMIN_PASSWORD)
    job = _run(api, admin, "/sys/import-dataset", _body(source, mode="files"))
    assert job["state"] == "Succeeded", job
    # 4 files, 5 folders (docs, empty, empty/sub, imagery, imagery/logs), 4 metadata values
    assert job["result"] == {"importedItems": 13, "skippedFiles": 0, "totalSize": sum(
        len(_local(api, admin)("GET", f"{SURVEY}/download", params={"path": p}).content)
        for p in ("readme.txt", "imagery/scene.tif", "imagery/logs/flight.csv", "docs/empty.txt")), "errors": []}
    _same_dataset(api, admin, source, SURVEY)
    assert _local(api, admin)("GET", "/orgs/field").json()["name"] == "Field campaigns"

    again = _run(api, admin, "/sys/import-dataset", _body(source, mode="archive"))
    assert again["state"] == "Succeeded", again
    assert again["result"] == {"importedItems": 0, "skippedFiles": 4, "totalSize": 0, "errors": []}

    copy = _run(api, admin, "/sys/import-dataset", _body(source, mode="archive", destinationOrganization="copies",
                                                          destinationDataset="fjord"))
    assert copy["state"] == "Succeeded", copy
    assert (copy["result"]["importedItems"], copy["result"]["errors"]) == (13, [])
    _same_dataset(api, admin, source, "/orgs/copies/ds/fjord")
    tmp_dir = api.app.state.settings.tmp_dir
    assert not [p.name for p in tmp_dir.iterdir() if p.name.startswith(("import-credentials-", ".georeg-tmp-"))]


def test_import_organization_imports_every_readable_dataset(api: TestClient, source: Source):
    admin = login(api, "admin", ADMIN_PASSWORD)
    job = _run(api, admin, "/sys/import-organization", {
        "sourceRegistryUrl": source.url, "username": "admin", "password": SOURCE_PASSWORD,
        "sourceOrganization": "field", "destinationOrganization": "mirror", "mode": "files"})
    assert job["state"] == "Succeeded", job
    assert job["result"]["errors"] == [] and job["result"]["skippedFiles"] == 0
    assert [item["slug"] for item in job["result"]["datasets"]] == ["notes", "survey"]
    listed = api.get("/orgs/mirror/ds", headers=admin).json()["items"]
    assert sorted((d["slug"], d["visibility"]) for d in listed) == [("notes", "private"), ("survey", "public")]
    _same_dataset(api, admin, source, "/orgs/mirror/ds/survey")
    assert api.get("/orgs/mirror/ds/notes/download", params={"path": "n.txt"}, headers=admin).content == \
        b"private note"
    # without credentials the source's private organization answers 401: refused before any task
    assert_error(api.post("/sys/import-organization", json={"sourceRegistryUrl": source.url,
                                                             "sourceOrganization": "field"}, headers=admin),
                 400, "source_auth_failed")


def test_hostile_inputs_are_refused_before_any_task(api: TestClient, source: Source, make_user):
    admin = login(api, "admin", ADMIN_PASSWORD)
    dead = f"127.0.0.1:{free_port()}"
    api.app.state.settings.download_hosts.append(dead)
    cases = [
        (_body(source, sourceRegistryUrl=f"{source.url}/orgs"), 400, "invalid_source_url"),
        (_body(source, sourceRegistryUrl=f"{source.url}/?x=1"), 400, "invalid_source_url"),
        (_body(source, sourceRegistryUrl=f"{source.url}#frag"), 400, "invalid_source_url"),
        (_body(source, sourceRegistryUrl=f"http://admin:pw@{source.netloc}"), 400, "invalid_source_url"),
        (_body(source, sourceRegistryUrl=f"ftp://{source.netloc}"), 400, "invalid_source_url"),
        (_body(source, sourceRegistryUrl="http://127.0.0.2:8000"), 403, "download_host_not_allowed"),
        (_body(source, sourceRegistryUrl="http://169.254.169.254"), 403, "download_host_not_allowed"),
        (_body(source, sourceRegistryUrl="http://localhost:1"), 403, "address_not_allowed"),
        (_body(source, sourceDataset="../etc"), 400, "invalid_source_dataset"),
        (_body(source, destinationOrganization="Bad Slug"), 400, "invalid_destination_organization"),
        (_body(source, mode="torrent"), 422, None),
        (_body(source, password="wrong"), 400, "source_auth_failed"),
        (_body(source, sourceDataset="missing"), 404, "source_not_found"),
        (_body(source, username=None, password=None, sourceDataset="notes"), 400, "source_auth_failed"),
        (_body(source, sourceRegistryUrl=f"http://{dead}"), 502, "source_unreachable"),
    ]
    for body, status, code in cases:
        assert_error(api.post("/sys/import-dataset", json=body, headers=admin), status, code)
    assert_error(api.post("/sys/import-organization", json={**_body(source, sourceOrganization="nowhere")},
                          headers=admin), 404, "source_not_found")
    assert_error(api.post("/sys/import-dataset", json=_body(source), headers=make_user("someone")), 403,
                 "admin_required")
    assert_error(api.post("/sys/import-dataset", json=_body(source)), 401)
    assert api.get("/datasets/jobs", headers=admin).json()["total"] == 0
    assert api.get("/orgs/field", headers=admin).status_code == 404
    assert not [p for p in api.app.state.settings.tmp_dir.iterdir() if p.name.startswith("import-credentials-")]


def test_failed_files_leave_nothing_behind(api: TestClient, source: Source):
    """A file the source cannot send (404: gone from its storage) and one whose bytes no longer match its hash are
    listed as errors; neither leaves a temp file or an entry row; the others are imported. In archive mode a
    source that cannot build its archive fails the task with a clear error."""
    source.call("POST", "/orgs/field/ds", json={"slug": "broken"})
    for path in ("good.txt", "gone.txt", "changed.txt"):
        source.call("POST", "/orgs/field/ds/broken/obj", files={"file": (path, path.encode() * 10)},
                    data={"path": path})
    storage = source.data_dir / "storage" / "field" / "broken"
    (storage / "gone.txt").unlink()
    (storage / "changed.txt").write_bytes(b"tampered")
    admin = login(api, "admin", ADMIN_PASSWORD)
    job = _run(api, admin, "/sys/import-dataset", _body(source, sourceDataset="broken"))
    assert job["state"] == "Succeeded", job
    result = job["result"]
    assert (result["importedItems"], result["skippedFiles"], result["totalSize"]) == (1, 0, len(b"good.txt" * 10))
    assert sorted((e["path"], e["code"]) for e in result["errors"]) == [("changed.txt", "hash_mismatch"),
                                                                        ("gone.txt", "source_not_found")], result
    listed = api.get("/orgs/field/ds/broken/list", headers=admin).json()
    assert [entry["path"] for entry in listed] == ["good.txt"]
    settings = api.app.state.settings
    assert not list(settings.tmp_dir.glob(".georeg-tmp-*"))
    assert sorted(p.name for p in (settings.storage_dir / "field" / "broken").iterdir()) == ["good.txt"]

    archive = _run(api, admin, "/sys/import-dataset", _body(source, sourceDataset="broken", mode="archive",
                                                            destinationDataset="broken-zip"))
    assert archive["state"] == "Failed", archive
    assert "archive of field/broken" in archive["error"], archive
    assert_error(api.get("/orgs/field/ds/broken-zip", headers=admin), 404)  # nothing created
    assert not list(settings.tmp_dir.glob(".georeg-tmp-*"))
