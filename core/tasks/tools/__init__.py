"""The shipped task tools, declared once in :data:`TOOLS`.

Adding a tool: a module here exporting a :class:`~georeg.core.tasks.model.Tool` in a constant named after the
tool's id (``my-tool`` -> ``MY_TOOL``), and its line in :data:`TOOLS`. Everything else follows from that list:
``flows/tools.py`` makes one flow per tool, the API's tool registry and ``/sys/features`` list them, and a test
holds ``prefect.yaml`` to one deployment per tool (it prints the entry to add when one is missing).

This module imports nothing heavy: a flow-run process reads the list before its run is Running, and a tool's
module (with the libraries it needs) is imported only when the tool is asked for (:func:`shipped_tool`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from georeg.core.tasks.model import Tool, ToolRegistry

# tool id -> module of this package defining it
TOOLS: dict[str, str] = {
    "archive-extract": "archive_extract",
    "build": "build",
    "check-artifacts": "check_artifacts",
    "bulk-download": "bulk_download",
    "csw-harvest": "csw_harvest",
    "csw-ingest": "csw_ingest",
    "generate-thumbnails": "registry_maintenance",
    "hyspex-parent": "hyspex_parent",
    "nc-to-geotiff": "nc_to_geotiff",
    "netcdf-geotiff": "netcdf_geotiff",
    "point-cloud-grid": "point_cloud_grid",
    "prune-missing": "registry_maintenance",
    "raster-export": "raster_export",
    "registry-cleanup": "registry_cleanup",
    "registry-import": "registry_import",
    "rehash": "registry_maintenance",
    "rescan-index": "rescan_index",
    "resync": "registry_maintenance",
    "seed-tiles": "seed_tiles",
    "sentinel-safe": "sentinel_safe",
}


def constant_name(tool_id: str) -> str:
    """The module constant holding a tool: ``bulk-download`` -> ``BULK_DOWNLOAD``."""
    return tool_id.upper().replace("-", "_")


def shipped_tool(tool_id: str) -> Tool | None:
    """The shipped tool ``tool_id`` (None if there is none), importing only its own module."""
    if tool_id not in TOOLS:
        return None
    module = importlib.import_module(f"{__name__}.{TOOLS[tool_id]}")
    return getattr(module, constant_name(tool_id))


def shipped_tools() -> list[Tool]:
    """Every shipped tool (importing every tool module)."""
    return [shipped_tool(tool_id) for tool_id in TOOLS]


def shipped_registry() -> ToolRegistry:
    """A registry of the shipped tools: what the API offers unless a test gives it others."""
    from georeg.core.tasks.model import ToolRegistry

    return ToolRegistry(shipped_tools())
