"""A finished flow run submitted again runs its tool once.

Prefect lets a COMPLETED run without a persisted result (or a FAILED or CRASHED one) go back to Pending: a worker
that read the run as Scheduled just before another worker ran it to the end submits it again (seen in the
scale-out burst: one more "submitted to infrastructure" than runs). The second execution finds its attempt
claimed and only repeats the first one's outcome: the tool does not run again, the artifact stays, the task
stays Succeeded and the run ends COMPLETED again.
"""

from __future__ import annotations

import os
import time

from georeg.core.tasks.lifecycle import artifact_dir
from tests.flows.conftest import flow_run, wait_for_state
from tests.helpers import ADMIN_PASSWORD, create_dataset, login, prefect_call, upload_object

TASKS = "/orgs/admin/ds/d/tasks"
DONE = {"Succeeded", "Failed", "Cancelled"}


def wait_until_process_gone(infrastructure_pid: str, timeout: float = 60) -> None:
    """Until the first execution's process has exited and its worker reaped it. Then the session worker, which
    stands in for the other worker, has given its slot back: Prefect 3.8.8's worker crashes ("this borrower is
    already holding one of this CapacityLimiter's tokens") when a run it still holds comes back Scheduled."""
    pid = int(str(infrastructure_pid).rsplit(":", 1)[-1])
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, f"process {pid} still there after {timeout:.0f} s"
        time.sleep(0.2)
    time.sleep(1.0)  # the worker releases the slot right after reaping the process


def test_a_finished_run_submitted_again_does_not_run_its_tool_twice(client, settings, task_worker):
    headers = login(client, "admin", ADMIN_PASSWORD)
    create_dataset(client, headers)
    assert upload_object(client, headers, "b.txt", b"bee").status_code == 201
    submitted = client.post(TASKS, headers=headers, json={"toolId": "bulk-download", "force": True,
                                                           "parameters": {"paths": ["b.txt"]}})
    assert submitted.status_code == 202, submitted.text
    task_url = f"{TASKS}/{submitted.json()['taskId']}"
    done = wait_for_state(client, task_url, headers, DONE)
    assert done["state"] == "Succeeded", done
    run_id = done["flowRunId"]
    [artifact] = artifact_dir(settings, done["taskId"]).glob("result-1*")
    before = artifact.stat()

    wait_until_process_gone(flow_run(task_worker, run_id)["infrastructure_pid"])
    # what the stale worker's proposal amounts to: Prefect accepts leaving COMPLETED without a persisted result
    again = prefect_call("POST", f"{task_worker}/flow_runs/{run_id}/set_state",
                         json={"state": {"type": "SCHEDULED", "name": "Scheduled"}})
    assert again.status_code in (200, 201) and again.json()["status"] == "ACCEPT", again.text

    deadline = time.monotonic() + 90
    run = flow_run(task_worker, run_id)
    while not (run["state_type"] == "COMPLETED" and run["run_count"] == 2):
        assert time.monotonic() < deadline, f"the run was not executed again: {run['state']}"
        time.sleep(0.5)
        run = flow_run(task_worker, run_id)

    after = client.get(task_url, headers=headers).json()
    assert (after["state"], after["attempts"], after["result"]) == ("Succeeded", 1, done["result"]), after
    assert after["artifact"] == done["artifact"]
    now = artifact.stat()
    assert (now.st_ino, now.st_mtime_ns) == (before.st_ino, before.st_mtime_ns), "the artifact was not rebuilt"
    deadline = time.monotonic() + 30
    while True:
        logs = prefect_call("POST", f"{task_worker}/logs/filter",
                            json={"logs": {"flow_run_id": {"any_": [run_id]}}}).json()
        if any("this second execution does not run the tool" in log["message"] for log in logs):
            break
        assert time.monotonic() < deadline, [log["message"] for log in logs]
        time.sleep(1)
