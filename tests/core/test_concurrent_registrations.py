"""Raster registrations running at the same moment (the children of a HySpex parent, registered by parallel flow
runs): each registration of new content reads what it depends on (the duplicate check, the folder entries) under the
registry dataset's write lock, so the interleaving that broke them -- one registration paused between reading that
the ``uploads`` folder entry is missing and inserting it while another commits it -- ends with both registered (an
IntegrityError before), and two registrations of one content end as one raster and its duplicate.

The interleaving is forced: the first registration is held right after its first read of the entries table until
the second has finished or 1.5 s have passed (it cannot finish while the first holds the lock).

A raster deleted while the same bytes are registered again right after its deletion commits: the new registration
keeps its file (same path), which the deletion removed after its commit before."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlmodel import Session, select

from georeg.core.bootstrap import bootstrap
from georeg.core.db import make_engine
from georeg.core.models import Entry, Raster
from georeg.core.rasters.schemas import RegisteredRaster
from georeg.core.rasters.service import delete_raster, get_raster, raster_file, register_upload
from georeg.core.storage import temp_writer
from tests.helpers import app_settings, truncate_all
from tests.rasters import write_geotiff


@pytest.fixture
def registry(backend: str, database_urls: dict[str, str], tmp_path: Path):
    settings = app_settings(data_dir=tmp_path / "data", database_url=database_urls[backend],
                            prefect_api_url="http://127.0.0.1:9/api")
    engine = make_engine(settings.effective_database_url)
    truncate_all(engine)
    bootstrap(settings, engine)
    yield settings, engine
    engine.dispose()


def register(settings, engine, source: Path) -> RegisteredRaster:
    with temp_writer(settings.tmp_dir, max_bytes=None) as writer, Session(engine, expire_on_commit=False) as session:
        writer.write(source.read_bytes())
        return register_upload(session, settings=settings, upload=writer, filename=source.name, title=None,
                               metadata={})


@pytest.fixture
def first_held_after_reading_entries(registry) -> Iterator[tuple[threading.Event, threading.Event]]:
    """(second_may_start, second_done): the first registration thread to read the entries table is held there."""
    _, engine = registry
    second_may_start, second_done = threading.Event(), threading.Event()
    held: list[int] = []

    def hold(_conn, _cursor, statement: str, *_args) -> None:
        if held or not statement.lstrip().upper().startswith("SELECT") or "FROM entries" not in statement:
            return
        held.append(threading.get_ident())
        second_may_start.set()
        second_done.wait(1.5)

    event.listen(engine, "after_cursor_execute", hold)
    yield second_may_start, second_done
    event.remove(engine, "after_cursor_execute", hold)


def race(registry, events, first_source: Path, second_source: Path) -> tuple[RegisteredRaster, RegisteredRaster]:
    settings, engine = registry
    second_may_start, second_done = events
    outcome: dict[str, object] = {}

    def run(name: str, source: Path) -> None:
        try:
            outcome[name] = register(settings, engine, source)
        except Exception as exc:  # noqa: BLE001 -- the assertion below shows it
            outcome[name] = exc
        finally:
            if name == "second":
                second_done.set()

    def second() -> None:
        second_may_start.wait(10)
        run("second", second_source)

    threads = [threading.Thread(target=run, args=("first", first_source)), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert isinstance(outcome.get("first"), RegisteredRaster), outcome
    assert isinstance(outcome.get("second"), RegisteredRaster), outcome
    return outcome["first"], outcome["second"]


def test_two_new_contents_registered_at_once(registry, first_held_after_reading_entries, tmp_path):
    first, second = race(registry, first_held_after_reading_entries,
                         write_geotiff(tmp_path / "a.tif"), write_geotiff(tmp_path / "b.tif", origin=(11.0, 61.0)))
    assert first.created and second.created and first.dataset_id != second.dataset_id
    _, engine = registry
    with Session(engine) as session:
        assert len(session.exec(select(Raster)).all()) == 2
        paths = [entry.path for entry in session.exec(select(Entry).order_by(Entry.path)).all()]
    assert paths.count("uploads") == 1 and len(paths) == 5, paths


def test_one_content_registered_twice_at_once(registry, first_held_after_reading_entries, tmp_path):
    source = write_geotiff(tmp_path / "a.tif")
    first, second = race(registry, first_held_after_reading_entries, source, source)
    assert first.created and not second.created and second.duplicate_of == first.dataset_id
    _, engine = registry
    with Session(engine) as session:
        assert len(session.exec(select(Raster)).all()) == 1


def test_content_registered_again_right_after_its_deletion_keeps_its_file(registry, tmp_path):
    settings, engine = registry
    source = write_geotiff(tmp_path / "a.tif")
    first = register(settings, engine, source)
    again: list[RegisteredRaster] = []
    with Session(engine, expire_on_commit=False) as session:
        raster = get_raster(session, public_id=first.dataset_id)
        event.listen(session, "after_commit", lambda _session: again.append(register(settings, engine, source)),
                     once=True)
        delete_raster(session, settings, raster)
    assert len(again) == 1 and again[0].created and again[0].dataset_id != first.dataset_id
    with Session(engine) as session:
        stored = raster_file(session, settings, get_raster(session, public_id=again[0].dataset_id))
    assert stored.read_bytes() == source.read_bytes()
