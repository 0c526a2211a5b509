"""Shipped task tools. Adding a tool: a module here exporting a :class:`~georeg.core.tasks.model.Tool` in a
constant named after the tool's id (``my-tool`` -> ``MY_TOOL``), that constant's entry in ``MODULES``, a
flow line in ``flows/tools.py`` and a deployment in ``prefect.yaml``.

Tool modules are imported on first use, so that a flow-run process loads only the tool it runs
(:func:`shipped_tool`); ``SHIPPED_TOOLS`` and the constants (``from georeg.core.tasks.tools import REHASH``)
import what they name.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from georeg.core.tasks.model import Tool

MODULES = {
    "ARCHIVE_EXTRACT": "archive_extract",
    "BULK_DOWNLOAD": "bulk_download",
    "CSW_INGEST": "csw_ingest",
    "GENERATE_THUMBNAILS": "registry_maintenance",
    "NETCDF_GEOTIFF": "netcdf_geotiff",
    "PRUNE_MISSING": "registry_maintenance",
    "RASTER_EXPORT": "raster_export",
    "REHASH": "registry_maintenance",
    "RESCAN_INDEX": "rescan_index",
    "RESYNC": "registry_maintenance",
    "SEED_TILES": "seed_tiles",
    "SENTINEL_SAFE": "sentinel_safe",
}


def _load(name: str) -> Tool:
    return getattr(importlib.import_module(f"{__name__}.{MODULES[name]}"), name)


def shipped_tool(tool_id: str) -> Tool | None:
    """The shipped tool ``tool_id`` (None if there is none), importing only its own module."""
    name = tool_id.upper().replace("-", "_")
    return _load(name) if name in MODULES else None


def __getattr__(name: str) -> object:
    if name == "SHIPPED_TOOLS":
        return tuple(_load(constant) for constant in MODULES)
    if name in MODULES:
        return _load(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
