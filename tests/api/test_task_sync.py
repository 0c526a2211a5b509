"""The task state synchroniser's loop under cancellation (the API shutting down)."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest
from sqlalchemy import event, text

from georeg.api.tasks.sync import sync_forever
from georeg.core.db import make_engine
from georeg.core.tasks import repository as task_repo
from tests.helpers import app_settings


def test_cancelled_mid_pass_the_synchroniser_stops_after_its_thread(tmp_path, monkeypatch, caplog):
    """Cancelled while a pass's worker thread is inside the session (checking out a connection, as on a busy
    PostgreSQL), the loop waits for that thread, closes the session and ends cancelled. It used to close the
    session from a second thread (``IllegalStateChangeError``), log that, swallow the cancellation and go on:
    the API's shutdown then waited for it forever (seen in CI: a test client's teardown hung for 600 s)."""
    settings = app_settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'georeg.db'}",
                            prefect_api_url="http://127.0.0.1:9/api", task_state_sync_seconds=0.01)
    engine = make_engine(settings.effective_database_url)
    checking_out, release = threading.Event(), threading.Event()

    @event.listens_for(engine, "checkout")
    def slow_checkout(*_: object) -> None:
        checking_out.set()
        release.wait(10)

    def active_tasks(session, **_: object) -> list:
        session.execute(text("SELECT 1"))
        return []

    monkeypatch.setattr(task_repo, "active_tasks", active_tasks)

    async def cancel_mid_pass() -> None:
        loop = asyncio.create_task(sync_forever(engine=engine, settings=settings, prefect=None, tools=None))
        while not checking_out.is_set():
            await asyncio.sleep(0.01)
        loop.cancel()
        await asyncio.sleep(0.2)
        assert not loop.done(), "the pass waits for its thread"
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(loop, 10)

    with caplog.at_level(logging.INFO, logger="georeg.api.tasks.sync"):
        asyncio.run(cancel_mid_pass())
    engine.dispose()
    assert not caplog.records, caplog.text
