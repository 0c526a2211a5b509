"""Schemathesis over ``/openapi.json``: the real app over HTTP, as admin, with a seeded organization, dataset, file and
raster, the CSW routes pointed at the test pycsw (downloads at the NBS-like file server), so nothing leaves this
machine, and the session's Prefect worker running what the task routes accept. Every operation must answer
without a server error and with a body its documented schema allows.

The run is bounded (one client, a few examples per operation, a fixed seed) to fit the suite; the figures it prints
(operations, cases, failures) are what the closing note of a change quotes. ``GEOREG_SCHEMATHESIS_EXAMPLES`` raises
the number of examples for a deeper run by hand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from georeg.api.app import create_app
from tests.helpers import ADMIN_PASSWORD, app_settings
from tests.live import serve_app
from tests.rasters import write_geotiff

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("GEOREG_SCHEMATHESIS_EXAMPLES", "4"))
CHECKS = "not_a_server_error,response_schema_conformance"


def seed(client, headers: dict, raster: Path) -> dict[str, str]:
    """Dataset admin/d with one file, and one registered raster; returns the path values that exist."""
    assert client.post("/orgs/admin/ds", json={"slug": "d"}, headers=headers).status_code == 201
    response = client.post("/orgs/admin/ds/d/obj", files={"file": ("a.txt", b"hello")}, data={"path": "a.txt"},
                           headers=headers)
    assert response.status_code == 201, response.text
    with open(raster, "rb") as handle:
        response = client.post("/datasets", files={"file": (raster.name, handle, "image/tiff")}, headers=headers)
    assert response.status_code == 201, response.text
    return {"orgSlug": "admin", "dsSlug": "d", "dataset_id": response.json()["dataset_id"], "userName": "admin"}


def config_file(path: Path, existing: dict[str, str]) -> Path:
    """Reads (GET) aim at the seeded objects, so they run for real; writes keep generated names (a generated
    DELETE must not remove what the reads need)."""
    pinned = ", ".join(f'"path.{name}" = "{value}"' for name, value in existing.items())
    path.write_text(f"""
[[operations]]
include-method = "GET"
parameters = {{ {pinned} }}

[[operations]]
include-path-regex = "^/datasets/(nbs-|sentinel-csw|csw|query-point|[^/]+/query-point)"
checks = {{ not_a_server_error = {{ expected-statuses = ["1XX", "2XX", "3XX", "4XX", "502"] }} }}
""")
    return path


def test_openapi_contract(tmp_path, task_worker, csw_url, nbs_file_server):
    settings = app_settings(
        data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'georeg.db'}", prefect_api_url=task_worker,
        csw_endpoints=[csw_url], csw_timeout_seconds=5.0,
        download_hosts=[urlsplit(nbs_file_server.base_url).netloc], mount_roots=[tmp_path / "mount"],
        safe_roots=[tmp_path / "safe"],
    )
    raster = write_geotiff(tmp_path / "mount" / "seed.tif")
    app = create_app(settings)
    with serve_app(app) as url:
        # the contract, not the latency of the session's SQLite Prefect server: on a loaded machine (the suite's other
        # processes running real stacks) one of its reads was seen taking over 10 s, past the 5 s read budget (503)
        app.state.prefect.read_retry_seconds = 120.0
        with httpx.Client(base_url=url, timeout=60) as client:
            token = client.post("/users/authenticate",
                                json={"userName": "admin", "password": ADMIN_PASSWORD}).json()["token"]
            headers = {"Authorization": f"Bearer {token}"}
            existing = seed(client, headers, raster)
        report = tmp_path / "report.json"
        command = [
            sys.executable, "-m", "schemathesis.cli", "--config-file", str(config_file(tmp_path / "st.toml", existing)),
            "run", f"{url}/openapi.json", "--checks", CHECKS, "--workers", "1", "--max-examples", str(EXAMPLES),
            "--seed", "12", "--generation-database", "none", "--no-shrink", "--request-timeout", "60",
            "--header", f"Authorization: Bearer {token}", "--report", "json", "--report-json-path", str(report),
            "--no-color",
        ]
        run = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp_path, check=False)
    (tmp_path / "schemathesis.txt").write_text(run.stdout + run.stderr)
    figures = summary(report)
    print("schemathesis figures:", json.dumps(figures))
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-4000:]
    assert figures["failures"] == 0


def summary(report: Path) -> dict[str, int]:
    """Operations tested, cases generated and failures found, from schemathesis' JSON run report."""
    data = json.loads(report.read_text())
    return {"operations": data["operations"]["tested"], "cases": data["test_cases"]["generated"],
            "failures": sum(failure["count"] for failure in data["failures"]) + len(data["errors"])}
