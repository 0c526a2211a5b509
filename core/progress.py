"""Progress reporting shared by long operations (tools, ingests, SAFE processing): a callback taking
``(percent, phase, message)``; :func:`no_progress` when nobody listens."""

from __future__ import annotations

from collections.abc import Callable

ProgressCallback = Callable[[float, str, str], None]


def no_progress(*_: object) -> None:
    """A :data:`ProgressCallback` that reports nowhere."""
