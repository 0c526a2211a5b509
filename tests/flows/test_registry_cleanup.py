"""``POST /sys/cleanup`` with no dataset named: a ``registry-cleanup`` flow run through the worker that reconciles
every dataset with its files and removes the builds of contents no entry holds (orphans left by deleted entries
included), keeping every build some entry still needs."""

from __future__ import annotations

from georeg.core.registry.artifacts import build_dir
from tests.flows.conftest import wait_for_state
from tests.helpers import assert_error, create_dataset, upload_object

DONE = {"Succeeded", "Failed", "Cancelled"}


def _fake_build(settings, sha256: str) -> None:
    artifact = build_dir(settings, sha256) / "cog" / "cog.tif"
    artifact.parent.mkdir(parents=True, exist_ok=True)
    artifact.write_bytes(b"x" * 10)


def test_cleanup_of_every_dataset_runs_as_a_task(client, ds, settings, make_user):
    create_dataset(client, ds, org="admin", slug="other")
    kept = upload_object(client, ds, "kept.txt", b"kept").json()["hash"]
    gone = upload_object(client, ds, "gone.txt", b"gone", dataset="/orgs/admin/ds/other").json()["hash"]
    deleted = upload_object(client, ds, "deleted.txt", b"deleted").json()["hash"]
    for sha in (kept, gone, deleted):
        _fake_build(settings, sha)
    stray = "f" * 64  # a build whose content no entry ever held here
    _fake_build(settings, stray)
    (build_dir(settings, "") / "not-a-hash").mkdir()
    assert client.delete("/orgs/admin/ds/d/obj", params={"path": "deleted.txt"}, headers=ds).status_code < 300
    (settings.storage_dir / "admin" / "other" / "gone.txt").unlink()

    started = client.post("/sys/cleanup", headers=ds)
    assert started.status_code == 202, started.text
    done = wait_for_state(client, f"/datasets/jobs/{started.json()['job_id']}", ds, DONE)
    assert done["state"] == "Succeeded", done
    result = done["result"]
    assert result["removedEntries"] == {"admin/other": ["gone.txt"]}
    assert sorted(result["removedArtifacts"]) == sorted([gone, deleted, stray]) and result["freedBytes"] == 30
    assert result["datasets"] >= 2
    assert build_dir(settings, kept).is_dir() and (build_dir(settings, "") / "not-a-hash").is_dir()
    assert not any(build_dir(settings, sha).exists() for sha in (gone, deleted, stray))
    assert_error(client.post("/sys/cleanup", headers=make_user("plain")), 403)
