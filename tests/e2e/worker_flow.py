"""A flow for the ``georeg worker`` test: loaded by path by that worker's runs, so it imports only Prefect."""

from __future__ import annotations

import os
from pathlib import Path

from prefect import flow


@flow(name="e2e-worker-touch")
def touch(path: str) -> str:
    """Write the parent of the process that ran the flow: the fork server for a forked run."""
    Path(path).write_text(f"{os.getppid()}\n")
    return path
