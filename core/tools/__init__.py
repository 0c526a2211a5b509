"""Shipped task tools. Adding a tool: a module here exporting a :class:`~georeg.core.tasks.Tool`,
its entry in ``SHIPPED_TOOLS``, a flow line in ``flows/tools.py`` and a deployment in ``prefect.yaml``."""

from georeg.core.tools.archive_extract import ARCHIVE_EXTRACT
from georeg.core.tools.bulk_download import BULK_DOWNLOAD
from georeg.core.tools.raster_export import RASTER_EXPORT
from georeg.core.tools.registry_maintenance import GENERATE_THUMBNAILS, PRUNE_MISSING, REHASH, RESYNC
from georeg.core.tools.rescan_index import RESCAN_INDEX
from georeg.core.tools.seed_tiles import SEED_TILES

SHIPPED_TOOLS = (
    ARCHIVE_EXTRACT, BULK_DOWNLOAD, GENERATE_THUMBNAILS, PRUNE_MISSING, RASTER_EXPORT, REHASH, RESCAN_INDEX, RESYNC,
    SEED_TILES,
)
