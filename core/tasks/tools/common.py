"""Helpers shared by tools: sessions and entry lookups inside a running task."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pydantic import BaseModel
from sqlmodel import Session

from georeg.core.errors import InvalidInput, NotFound
from georeg.core.models import Dataset, Entry, EntryType, Organization
from georeg.core.registry import entries as entry_repo
from georeg.core.storage import normalize_entry_path
from georeg.core.tasks.model import ToolContext


class NoParams(BaseModel):
    """The parameters of a tool that takes none."""


@contextmanager
def task_session(context: ToolContext) -> Iterator[tuple[Session, Organization, Dataset]]:
    with Session(context.engine, expire_on_commit=False) as session:
        dataset = session.get(Dataset, context.dataset_id)
        if dataset is None:
            raise NotFound("the task's dataset no longer exists")
        yield session, session.get(Organization, dataset.org_id), dataset


def selected_files(session: Session, dataset: Dataset, paths: list[str]) -> list[Entry]:
    """File entries under ``paths`` (all files when empty), sorted, without duplicates."""
    if not paths:
        return entry_repo.all_files(session, dataset=dataset)
    chosen: dict[str, Entry] = {}
    for raw in paths:
        path = normalize_entry_path(raw)
        entries = entry_repo.subtree(session, dataset=dataset, path=path)
        if not entries:
            raise NotFound(f"no entry at {path!r}", code="entry_not_found")
        for entry in entries:
            if entry.type != EntryType.directory.value:
                chosen[entry.path] = entry
    return [chosen[path] for path in sorted(chosen)]


def required_path(context: ToolContext) -> str:
    if not context.path:
        raise InvalidInput("this tool needs the 'path' of an entry", code="path_required")
    return context.path


def converting_progress(context: ToolContext, identifier: str, what: str) -> Callable[..., None]:
    """A progress callback for the NetCDF conversions: reports every phase and logs each ``what`` written."""

    def progress(percent: float, phase: str, message: str = "") -> None:
        context.progress(percent, phase, message)
        if phase == "converting":
            context.logger.info("%s: %s %s written", identifier, what, message)

    return progress
