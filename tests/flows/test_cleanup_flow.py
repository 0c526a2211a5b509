"""The cleanup flow against the real Prefect API (test harness)."""

from __future__ import annotations

import os
import time

from georeg.core.config import Settings
from georeg.core.db import make_engine, session_scope
from georeg.core.registry import datasets as dataset_repo
from georeg.core.registry import orgs as org_repo


def test_cleanup_removes_stale_temp_files_and_orphans(settings: Settings, monkeypatch, client):
    from georeg.flows.cleanup import cleanup

    settings.ensure_layout()
    engine = make_engine(settings.effective_database_url)
    with session_scope(engine) as session:
        org = org_repo.get_org(session, slug="admin")
        dataset_repo.create_dataset(session, org=org, slug="kept")
    engine.dispose()
    old = time.time() - 3 * 24 * 3600
    stale = settings.tmp_dir / ".georeg-tmp-stale"
    stale.write_bytes(b"x" * 10)
    fresh = settings.tmp_dir / ".georeg-tmp-fresh"
    fresh.write_bytes(b"y")
    kept = settings.storage_dir / "admin" / "kept" / "file.txt"
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b"keep me")
    orphan = settings.storage_dir / "admin" / "gone" / "f.txt"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"orphan")
    for path in (stale, orphan.parent, settings.storage_dir / "admin" / "kept"):
        os.utime(path, (old, old))

    monkeypatch.setenv("GEOREG_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("GEOREG_DATABASE_URL", settings.effective_database_url)
    state = cleanup(return_state=True)
    assert state.is_completed()
    report = state.result()
    assert report["temp_files_removed"] == 1
    assert report["orphan_dirs_removed"] == 1
    assert not stale.exists() and fresh.exists()
    assert kept.exists() and not orphan.exists()


def test_cleanup_batches_flow_rolls_back_stale_batches(settings: Settings, monkeypatch):
    from datetime import timedelta

    from fastapi.testclient import TestClient
    from sqlalchemy import update

    from georeg.api.app import create_app
    from georeg.core.models import UploadBatch
    from georeg.core.registry.batches import staging_dir
    from georeg.core.timeutil import utcnow
    from georeg.flows.cleanup import cleanup_batches
    from tests.helpers import ADMIN_PASSWORD, login

    with TestClient(create_app(settings)) as client:
        headers = login(client, "admin", ADMIN_PASSWORD)
        tokens = [client.post("/share/init", data={"tag": f"admin/s{i}"}, headers=headers).json()["token"]
                  for i in range(2)]
        for token in tokens:
            assert client.post(f"/share/{token}/upload", data={"path": "a"}, files={"file": ("a", b"a")},
                               headers=headers).status_code == 200
    engine = make_engine(settings.effective_database_url)
    with session_scope(engine) as session:
        session.execute(update(UploadBatch).where(UploadBatch.token == tokens[0])
                        .values(last_activity_at=utcnow() - timedelta(hours=2)))
    engine.dispose()
    monkeypatch.setenv("GEOREG_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("GEOREG_DATABASE_URL", settings.effective_database_url)
    state = cleanup_batches(return_state=True)
    assert state.is_completed()
    assert state.result() == {"removedBatches": 1, "removedDirs": 0, "removeBatchErrors": []}
    assert not staging_dir(settings, tokens[0]).exists() and staging_dir(settings, tokens[1]).exists()
