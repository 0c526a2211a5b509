"""System routes: version, features, health."""

from __future__ import annotations

from tests.helpers import assert_error


def test_version_is_anonymous(client):
    for route in ("/version", "/sys/version"):
        response = client.get(route)
        assert response.status_code == 200
        assert response.json()["version"]


def test_features_list_task_states_and_tools(client):
    body = client.get("/sys/features").json()
    states = {item["state"]: item["isTerminal"] for item in body["taskStates"]}
    assert states == {
        "Queued": False, "Scheduled": False, "Enqueued": False, "Processing": False,
        "Succeeded": True, "Failed": True, "Cancelled": True, "Deleted": True,
    }
    assert isinstance(body["taskTools"], list)
    for field in ("organizationMemberManagement", "userManagement", "storageLimiter", "maxConcurrentDownloadsPerUser",
                  "disableAnonymousBulkDownloads", "passwordPolicy", "datasetThumbnailCandidates", "maxExportSizeBytes",
                  "bulkDownloadAsyncThresholdBytes", "hubOptions", "hubVersion", "registryVersion", "ddbVersion"):
        assert field in body


def test_health_requires_auth(client):
    assert_error(client.get("/quickhealth"), 401, "unauthorized")
    assert_error(client.get("/health"), 401, "unauthorized")


def test_health_checks_database_prefect_and_data_dir(client, admin_headers):
    assert client.get("/quickhealth", headers=admin_headers).json() == {"status": "Healthy"}
    response = client.get("/health", headers=admin_headers)
    assert response.status_code == 200, response.text
    checks = response.json()["checks"]
    assert {name: check["healthy"] for name, check in checks.items()} == {
        "database": True, "prefect": True, "dataDir": True,
    }


def test_health_reports_unreachable_prefect(settings, admin_headers, client):
    client.app.state.prefect.api_url = "http://127.0.0.1:9/api"
    client.app.state.prefect._client.base_url = "http://127.0.0.1:9/api"
    response = client.get("/health", headers=admin_headers)
    assert response.status_code == 200, "the API still serves reads and accepts tasks"
    assert response.json()["status"] == "Degraded" and response.json()["checks"]["prefect"]["healthy"] is False


def test_health_is_unhealthy_without_its_data_dir(settings, admin_headers, client):
    import shutil

    shutil.rmtree(settings.resolved_data_dir)
    settings.resolved_data_dir.write_text("a file where the data dir should be")
    response = client.get("/health", headers=admin_headers)
    assert response.status_code == 503 and response.json()["status"] == "Unhealthy"
    assert response.json()["checks"]["dataDir"]["healthy"] is False


def test_unknown_route_and_method_are_json_errors(client):
    assert_error(client.get("/no/such/route"), 404, "not_found")
    assert_error(client.delete("/version"), 405, "method_not_allowed")
