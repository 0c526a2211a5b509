"""NBS ingest routes end to end: a real pycsw, the NBS-like file server, jobs run by the Prefect worker."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from owslib.wms import WebMapService

from tests.sentinel_fixtures import place, write_s1_grd_safe

pytestmark = pytest.mark.slow


@pytest.fixture
def nbs(client, nbs_settings, admin_headers):
    def _post(route: str, expected_status: int = 200, headers: dict | None = admin_headers, **body):
        response = client.post(f"/datasets/{route}", json={"wait": 90, **body}, headers=headers)
        assert response.status_code == expected_status, response.text
        return response.json()

    return _post


def registered(client, headers) -> list[dict]:
    return client.get("/datasets", params={"limit": 100}, headers=headers).json()["items"]


def first(catalogue, kind: str, *, with_quicklooks: bool = True):
    return next(r for r in catalogue.of_kind(kind) if bool(r.quicklooks) == with_quicklooks)


def test_quicklooks_are_registered_and_served_over_wms(nbs, nbs_catalogue, client, admin_headers):
    record = first(nbs_catalogue, "s1")
    answer = nbs("nbs-sentinel-quicklook-csw", identifier=record.identifier)
    assert answer["status"] == "Succeeded" and answer["platform"] == record.platform
    assert answer["profile"]["id"] == "sentinel-1"
    assert answer["profile"]["point_query_variables"] == ["Amplitude_VH", "Amplitude_VV"]
    datasets = answer["datasets"]
    assert len(datasets) == len(record.quicklooks) and all(item["created"] for item in datasets)
    for item in datasets:
        assert item["source"] == "csw" and item["source_identifier"] == record.identifier
        assert item["platform"] == record.platform and item["profile"] == "sentinel-1"
        assert item["acquired_at"].startswith(record.begin[:19])
    layers = answer["services"]["wms"]["layers"]
    assert [layer["name"] for layer in layers] == [item["dataset_id"] for item in datasets]
    assert answer["services"]["wfs"]["feature_type"]
    wms = WebMapService(answer["services"]["wms"]["url"].replace("http://testserver", ""), version="1.3.0",
                        xml=client.get("/wms", params={"service": "WMS", "request": "GetCapabilities"}).content)
    assert {layer["name"] for layer in layers} <= set(wms.contents)

    again = nbs("nbs-sentinel-quicklook-csw", identifier=record.identifier)
    assert again["job_id"] == answer["job_id"], "an identical request within the dedup window is the same job"
    assert len(registered(client, admin_headers)) == len(datasets)


def test_sentinel_csw_registers_every_geotiff(nbs, nbs_catalogue, client, admin_headers):
    record = first(nbs_catalogue, "s2")
    answer = nbs("sentinel-csw", identifier=record.identifier)
    assert answer["mode"] == "geotiffs" and answer["profile"]["id"] == "sentinel-2"
    assert sorted(answer["urls"]) == sorted(record.geotiffs)
    assert {item["dataset_id"] for item in answer["datasets"]} == {
        item["dataset_id"] for item in registered(client, admin_headers)}


def test_misbehaving_references_fail_their_jobs_and_register_nothing(nbs, nbs_settings, nbs_catalogue, client,
                                                                      admin_headers):
    """A redirect to a disallowed host, a 404 and a download over the size limit (three jobs at once)."""
    from tests.flows.conftest import wait_for_state

    nbs_settings.download_max_bytes = 1024 * 1024
    expected = {"redirect": "not allowed", "missing": "HTTP 404", "oversized": "download limit"}
    started = {kind: nbs("nbs-sentinel-quicklook-csw", 202, identifier=nbs_catalogue.of_kind(kind)[0].identifier,
                         wait=0) for kind in expected}
    for kind, answer in started.items():
        job = wait_for_state(client, answer["status_url"], admin_headers, {"Succeeded", "Failed"})
        assert job["status"] == "Failed" and expected[kind] in job["error"], (kind, job)
    again = nbs("nbs-sentinel-quicklook-csw", 502, identifier=nbs_catalogue.of_kind("missing")[0].identifier)
    assert again["code"] == "job_failed" and "HTTP 404" in again["error"] and again["details"]["job_id"]
    assert registered(client, admin_headers) == []
    leftovers = [p for p in nbs_settings.tmp_dir.rglob("*") if p.is_file()] if nbs_settings.tmp_dir.exists() else []
    assert leftovers == []


def test_resolution_errors_are_synchronous(nbs, nbs_catalogue, client, nbs_file_server):
    assert nbs("sentinel-csw", 404, identifier="no-such-record")["code"] == "record_not_found"
    assert nbs("sentinel-csw", 400, identifier="x", endpoint=nbs_file_server.url("/csw"))["code"] == \
        "endpoint_not_allowed"
    assert nbs("nbs-sentinel-quicklook-csw", 404, identifier=first(nbs_catalogue, "s3", with_quicklooks=False)
               .identifier)["code"] == "no_quicklooks"
    assert nbs("sentinel-csw", 401, headers=None, identifier="x")["code"] == "unauthorized"
    assert client.get("/datasets/jobs", headers=None).status_code == 401


def test_download_host_not_allowed_is_403_before_any_job(nbs, nbs_settings, nbs_catalogue, client, admin_headers):
    nbs_settings.download_hosts = ["nbs.met.no"]
    answer = nbs("sentinel-csw", 403, identifier=first(nbs_catalogue, "s1").identifier)
    assert answer["code"] == "download_host_not_allowed"
    assert client.get("/datasets/jobs", headers=admin_headers).json()["total"] == 0


def test_safe_prepare_then_submit(nbs, nbs_settings, nbs_catalogue, client, admin_headers):
    record = first(nbs_catalogue, "s1")
    place(nbs_settings.safe_roots[0], write_s1_grd_safe, record.title, zipped=True, width=96, height=96)
    plan = nbs("nbs-sentinel-safe-csw", headers=None, identifier=record.identifier, mode="prepare")
    assert plan["mode"] == "prepare" and plan["profile"]["id"] == "sentinel-1"
    assert plan["plan"]["product"] == record.title
    assert sorted(output["product"] for output in plan["plan"]["outputs"]) == ["amplitude_vh", "amplitude_vv"]
    assert registered(client, admin_headers) == [], "prepare has no side effects"

    assert nbs("nbs-sentinel-safe-csw", 401, headers=None, identifier=record.identifier, mode="submit")
    done = nbs("nbs-sentinel-safe-csw", identifier=record.identifier, mode="submit", variables=["Amplitude_VV"])
    assert done["status"] == "Succeeded"
    (dataset,) = done["datasets"]
    assert dataset["source"] == "csw" and dataset["source_identifier"] == record.identifier
    stored = client.get(f"/datasets/{dataset['dataset_id']}", headers=admin_headers).json()
    assert stored["crs"]["epsg"] == 32661 and stored["bands"] == 2


def test_safe_missing_from_the_archive_is_404(nbs, nbs_catalogue):
    answer = nbs("nbs-sentinel-safe-csw", 404, headers=None, identifier=first(nbs_catalogue, "s2").identifier)
    assert answer["code"] == "safe_not_found"


def test_resync_refreshes_csw_metadata(nbs, nbs_catalogue, client, admin_headers):
    from tests.flows.conftest import wait_for_state

    record = first(nbs_catalogue, "s1")
    count = len(nbs("nbs-sentinel-quicklook-csw", identifier=record.identifier)["datasets"])
    started = client.post("/datasets/resync", json={"refresh_csw": True}, headers=admin_headers)
    assert started.status_code == 202
    job = wait_for_state(client, started.json()["status_url"], admin_headers, {"Succeeded", "Failed"})
    assert job["status"] == "Succeeded", job
    assert job["result"]["csw"]["checked"] == count and job["result"]["csw"]["missing"] == []
    assert len(job["result"]["csw"]["unchanged"]) + len(job["result"]["csw"]["refreshed"]) == count


def test_scheduled_harvest_is_idempotent(nbs_settings, nbs_catalogue, client, admin_headers, monkeypatch):
    from georeg.flows.maintenance import registry_maintenance

    for name, value in nbs_settings.task_environment().items():
        monkeypatch.setenv(name, value)
    parameters = {"keywords": ["Sentinel-2"], "window_hours": 24 * 365 * 30, "max_records": 3}
    first_run = registry_maintenance("csw-harvest", parameters)["result"]
    assert first_run["matched"] == 3 and not first_run["failed"]
    assert first_run["ingested"], first_run
    second_run = registry_maintenance("csw-harvest", parameters)["result"]
    assert second_run["ingested"] == [] and len(second_run["skipped"]) == 3
    jobs = client.get("/datasets/jobs", headers=admin_headers).json()["items"]
    assert [job["tool_id"] for job in jobs] == ["csw-harvest", "csw-harvest"]


def test_nc_route_picks_quicklooks_safe_or_netcdf(nbs, nbs_settings, nbs_catalogue, nbs_file_server, client,
                                                   admin_headers):
    """S1 with quicklooks -> quicklooks; S1 without -> the SAFE fallback; HySpex -> NetCDF (the dead OPeNDAP
    reference gives way to the NetCDF download)."""
    from tests.netcdf_fixtures import write_latlon

    with_quicklooks = first(nbs_catalogue, "s1")
    assert nbs("nbs-sentinel-nc-csw", identifier=with_quicklooks.identifier)["route"] == "quicklook"

    without = first(nbs_catalogue, "s1", with_quicklooks=False)
    place(nbs_settings.safe_roots[0], write_s1_grd_safe, without.title, zipped=True, width=64, height=64)
    safe = nbs("nbs-sentinel-nc-csw", identifier=without.identifier)
    assert safe["route"] == "safe" and safe["status"] == "Succeeded"
    assert sorted(output["product"] for output in safe["plan"]["outputs"]) == ["amplitude_vh", "amplitude_vv"]

    child = nbs_catalogue.of_kind("hyspex-child")[0]
    download = next(ref.url for ref in child.references if ref.category == "download")
    target = nbs_file_server.root / urlsplit(download).path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    write_latlon(target)
    try:
        netcdf = nbs("nbs-sentinel-nc-csw", identifier=child.identifier, variables=["t2m"])
    finally:
        target.unlink()
    assert netcdf["route"] == "netcdf" and netcdf["url"] == download and netcdf["profile"]["id"] == "generic"
    (dataset,) = netcdf["datasets"]
    assert dataset["source"] == "csw" and dataset["source_identifier"] == child.identifier
    assert dataset["crs"]["epsg"] == 4326
