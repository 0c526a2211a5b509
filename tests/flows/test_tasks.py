"""The task platform end to end: API -> Prefect deployment -> worker -> flow run -> task state."""

from __future__ import annotations

import io
import time
import zipfile

import pytest

from tests.flows.conftest import flow_run, wait_for_state
from tests.helpers import BACKENDS, assert_error, eventually, upload_object

DS = "/orgs/admin/ds/d"
TASKS = f"{DS}/tasks"
DONE = {"Succeeded", "Failed", "Cancelled"}


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_dedup_on_every_backend(client, ds):
    first = submit(client, ds, "bulk-download", {"paths": ["b.txt"]})
    assert submit(client, ds, "bulk-download", {"paths": ["b.txt"]}).json()["taskId"] == first.json()["taskId"]
    assert wait_for_state(client, f"{TASKS}/{first.json()['taskId']}", ds, DONE)["state"] == "Succeeded"


@pytest.fixture
def ds(ds, client):
    """The shared ``ds`` (admin headers, dataset ``admin/d``) holding a/one.txt, a/two.txt and b.txt."""
    for path, content in (("a/one.txt", b"one"), ("a/two.txt", b"two" * 1000), ("b.txt", b"bee")):
        response = upload_object(client, ds, path, content)
        assert response.status_code == 201, response.text
    return ds


def submit(client, headers, tool_id, parameters=None, path=None, force=False):
    body = {"toolId": tool_id, "parameters": parameters or {}, "force": force}
    if path is not None:
        body["path"] = path
    return client.post(TASKS, json=body, headers=headers)


def run_to_end(client, headers, tool_id, parameters=None, path=None):
    response = submit(client, headers, tool_id, parameters, path, force=True)
    assert response.status_code == 202, response.text
    return wait_for_state(client, f"{TASKS}/{response.json()['taskId']}", headers, DONE)


def test_tools_are_listed_with_schemas(client, ds):
    tools = {t["id"]: t for t in client.get(f"{TASKS}/tools", headers=ds).json()}
    assert {"bulk-download", "rescan-index", "archive-extract", "raster-export"} <= set(tools)
    bulk = tools["bulk-download"]
    assert bulk["producesArtifact"] and bulk["artifactExtension"] == ".zip" and bulk["requiredAccess"] == "read"
    assert bulk["parametersSchema"]["properties"]["paths"]["type"] == "array"
    features = client.get("/sys/features").json()
    assert {"bulk-download", "raster-export"} <= {t["id"] for t in features["taskTools"]}


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_bulk_download_succeeds_with_artifact(client, ds, task_worker):
    response = submit(client, ds, "bulk-download", {"paths": ["a"]})
    assert response.status_code == 202, response.text
    task = response.json()
    assert task["state"] in {"Scheduled", "Enqueued", "Processing"} and task["flowRunId"]
    done = wait_for_state(client, f"{TASKS}/{task['taskId']}", ds, DONE)
    assert done["state"] == "Succeeded", done
    assert done["progress"]["percent"] == 100 and done["startedAt"] and done["finishedAt"]
    assert done["result"] == {"files": 2, "bytes": 3003}
    run = flow_run(task_worker, task["flowRunId"])
    assert run["state_type"] == "COMPLETED"
    result = client.get(done["artifact"]["resultUrl"], headers=ds)
    assert result.status_code == 200 and result.headers["etag"] == f'"{done["artifact"]["sha256"]}"'
    archive = zipfile.ZipFile(io.BytesIO(result.content))
    assert {n: archive.read(n) for n in archive.namelist()} == {"a/one.txt": b"one", "a/two.txt": b"two" * 1000}
    part = client.get(done["artifact"]["resultUrl"], headers={**ds, "Range": "bytes=0-3"})
    assert part.status_code == 206 and part.content == b"PK\x03\x04"
    assert client.get(done["artifact"]["resultUrl"], headers={**ds, "Range": "bytes=99999999-"}).status_code == 416
    assert any("added a/one.txt" in line for line in collect_log(client, task["taskId"], ds))
    tail = client.get(f"{TASKS}/{task['taskId']}", headers=ds).json()["logTail"]
    assert any("added a/one.txt" in line for line in tail)


def test_dedup_by_user_path_and_parameters(client, ds, make_user):
    first = submit(client, ds, "bulk-download", {"paths": ["b.txt"]})
    assert first.status_code == 202
    again = submit(client, ds, "bulk-download", {"paths": ["b.txt"]})
    assert again.status_code == 200 and again.json()["taskId"] == first.json()["taskId"]
    other_params = submit(client, ds, "bulk-download", {"paths": ["a"]})
    assert other_params.status_code == 202
    other_path = submit(client, ds, "bulk-download", {"paths": ["b.txt"]}, path="a")
    assert other_path.status_code == 202
    forced = submit(client, ds, "bulk-download", {"paths": ["b.txt"]}, force=True)
    assert forced.status_code == 202 and forced.json()["taskId"] != first.json()["taskId"]
    client.put("/users/admin/orgs", json=[], headers=ds)
    other_user = make_user("vera")
    client.put("/users/vera/orgs", json=[{"slug": "admin", "permission": "read"}], headers=ds)
    by_other = submit(client, other_user, "bulk-download", {"paths": ["b.txt"]})
    assert by_other.status_code == 202, by_other.text
    for task_id in (first.json()["taskId"], forced.json()["taskId"]):
        wait_for_state(client, f"{TASKS}/{task_id}", ds, DONE)


def test_bad_submissions(client, ds, settings):
    assert_error(submit(client, ds, "no-such-tool"), 404, "tool_not_found")
    body = assert_error(submit(client, ds, "bulk-download", {"paths": "not-a-list"}), 422, "invalid_parameters")
    assert "paths" in body["error"]
    assert_error(submit(client, ds, "raster-export", {"epsg": "x"}, path="b.txt"), 422, "invalid_parameters")
    assert_error(submit(client, ds, "raster-export", {}), 422, "invalid_parameters")
    assert_error(submit(client, ds, "bulk-download", {}, path="../../etc/passwd"), 400, "invalid_path")
    assert_error(client.post(TASKS, json={"parameters": {}}, headers=ds), 422, "validation_error")
    assert_error(submit(client, {}, "bulk-download"), 401)
    assert client.get(TASKS, headers=ds).json()["total"] == 0


def collect_log(client, task_id, headers, max_polls=400):
    """Follow the log cursor until the log is complete; returns every line received."""
    lines, cursor = [], None
    for _ in range(max_polls):
        response = client.get(f"{TASKS}/{task_id}/log", params={"since": cursor} if cursor else {}, headers=headers)
        if response.status_code == 503:  # Prefect busy storing the burst of lines: a follower retries, as told
            time.sleep(float(response.headers.get("Retry-After", 1)))
            continue
        assert response.status_code == 200, response.text
        page = response.json()
        lines += page["lines"]
        cursor = page["cursor"]
        if page["complete"]:
            return lines
        time.sleep(0.25)
    raise AssertionError("log never completed")


def test_log_cursor_returns_every_line_once(client, ds):
    response = submit(client, ds, "test-log-lines", {"lines": 1000})
    lines = collect_log(client, response.json()["taskId"], ds)
    numbered = [line.split("line ")[1] for line in lines if " line " in line]
    assert numbered == [f"{i:06d}" for i in range(1000)]
    bad = client.get(f"{TASKS}/{response.json()['taskId']}/log", params={"since": "garbage!"}, headers=ds)
    assert_error(bad, 400, "invalid_cursor")


def test_cancel_running_task(client, ds, task_worker):
    task_id = submit(client, ds, "test-sleep", {"seconds": 120}).json()["taskId"]
    wait_for_state(client, f"{TASKS}/{task_id}", ds, {"Processing"})
    cancelled = client.delete(f"{TASKS}/{task_id}", headers=ds)
    assert cancelled.status_code == 200 and cancelled.json()["cancelRequested"]
    done = wait_for_state(client, f"{TASKS}/{task_id}", ds, DONE, timeout=60)
    assert done["state"] == "Cancelled"
    assert client.delete(f"{TASKS}/{task_id}", headers=ds).json()["state"] == "Deleted"
    assert_error(client.get(f"{TASKS}/{task_id}", headers=ds), 404, "task_not_found")


def test_retry_keeps_id_and_history(client, ds):
    failed = run_to_end(client, ds, "test-fail", {"message": "first failure"})
    assert failed["state"] == "Failed" and "first failure" in failed["error"]
    assert_error(client.get(f"{TASKS}/{failed['taskId']}/result", headers=ds), 404, "no_result")
    retried = client.post(f"{TASKS}/{failed['taskId']}/retry", headers=ds)
    assert retried.status_code == 202, retried.text
    assert retried.json()["taskId"] == failed["taskId"] and retried.json()["attempts"] == 2
    again = wait_for_state(client, f"{TASKS}/{failed['taskId']}", ds, DONE)
    assert again["state"] == "Failed" and again["attempts"] == 2
    assert [h["attempt"] for h in again["history"]] == [1]
    assert again["history"][0]["error"].endswith("first failure")
    assert again["flowRunId"] != failed["flowRunId"]
    ok = run_to_end(client, ds, "bulk-download", {"paths": ["b.txt"]})
    assert_error(client.post(f"{TASKS}/{ok['taskId']}/retry", headers=ds), 409, "not_retryable")


def test_concurrency_quota(client, ds, settings):
    settings.max_active_tasks_per_user = 1
    first = submit(client, ds, "test-sleep", {"seconds": 60})
    assert first.status_code == 202
    assert_error(submit(client, ds, "test-sleep", {"seconds": 61}), 429, "too_many_active_tasks")
    client.delete(f"{TASKS}/{first.json()['taskId']}", headers=ds)
    wait_for_state(client, f"{TASKS}/{first.json()['taskId']}", ds, DONE, timeout=60)
    assert submit(client, ds, "bulk-download", {"paths": ["b.txt"]}).status_code == 202


def test_daily_output_quota(client, ds, settings):
    done = run_to_end(client, ds, "bulk-download", {"paths": ["a"]})
    settings.daily_artifact_bytes_per_org = done["artifact"]["sizeBytes"]
    assert_error(submit(client, ds, "bulk-download", {"paths": ["b.txt"]}), 429, "daily_output_quota")


def test_result_expires_after_cleanup(client, ds, settings, monkeypatch):
    from georeg.flows.cleanup import cleanup

    settings.artifact_ttl_hours = 0
    done = run_to_end(client, ds, "bulk-download", {"paths": ["b.txt"]})
    assert_error(client.get(done["artifact"]["resultUrl"], headers=ds), 410, "result_expired")
    monkeypatch.setenv("GEOREG_DATA_DIR", str(settings.resolved_data_dir))
    monkeypatch.setenv("GEOREG_DATABASE_URL", settings.effective_database_url)
    report = cleanup()
    assert report["artifacts_expired"] == 1
    assert not (settings.resolved_data_dir / "artifacts" / done["taskId"]).exists()
    assert_error(client.get(done["artifact"]["resultUrl"], headers=ds), 410, "result_expired")


def test_sys_tasks_admin_only_and_jobs_view(client, ds, make_user):
    done = run_to_end(client, ds, "bulk-download", {"paths": ["b.txt"]})
    user = make_user("walt")
    assert_error(client.get("/sys/tasks", headers=user), 403)
    everything = client.get("/sys/tasks", params={"toolId": "bulk-download"}, headers=ds).json()
    assert everything["total"] == 1 and everything["items"][0]["taskId"] == done["taskId"]
    # a state filter reads the stored state, which the synchroniser refreshes every GEOREG_TASK_STATE_SYNC_SECONDS
    assert eventually(lambda: client.get("/sys/tasks", params={"userId": "admin", "state": "Succeeded"},
                                         headers=ds).json()["total"] == 1)
    jobs = client.get("/datasets/jobs", headers=ds).json()
    assert jobs["total"] == 1 and jobs["items"][0]["job_id"] == done["taskId"]
    assert jobs["items"][0]["status"] == "Succeeded" and jobs["items"][0]["result_url"]
    assert client.get(f"/datasets/jobs/{done['taskId']}", headers=ds).json()["tool_id"] == "bulk-download"
    assert_error(client.get(f"/datasets/jobs/{done['taskId']}", headers=user), 404)
    assert client.get("/datasets/jobs", headers=user).json()["total"] == 0
    assert client.delete(f"/datasets/jobs/{done['taskId']}", headers=ds).json()["status"] == "Deleted"
    assert client.post(f"{TASKS}/clear", headers=ds).json() == {"deleted": 0}
