"""The FastAPI application factory. Nothing happens at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.middleware.cors import CORSMiddleware

from georeg.api.docs import install_docs
from georeg.api.errors import NoSniffMiddleware, install_error_handlers
from georeg.api.prefect_client import PrefectClient
from georeg.api.routes import (
    admin,
    builds,
    csw,
    datasets,
    entry_previews,
    hyspex,
    jobs,
    meta,
    netcdf_points,
    objects,
    ogc,
    orgs,
    pointclouds,
    push,
    raster_jobs,
    rasters,
    rendering,
    share,
    stac,
    styles,
    system,
    tasks,
    users,
)
from georeg.api.tasks.submitter import TaskSubmitter
from georeg.api.tasks.sync import sync_forever
from georeg.api.web import install_web
from georeg.core import __version__
from georeg.core.bootstrap import bootstrap
from georeg.core.config import Settings, load_settings
from georeg.core.db import make_engine
from georeg.core.rasters.reader import limit_gdal_cache
from georeg.core.rasters.thumbnails import ThumbnailCache
from georeg.core.tasks.model import ToolRegistry
from georeg.core.tasks.tools import shipped_registry

logger = logging.getLogger("georeg.api")
CORS_EXPOSED_HEADERS = ["Content-Disposition", "Content-Range", "Accept-Ranges", "ETag", "Retry-After"]


def create_app(settings: Settings | None = None, *, tools: ToolRegistry | None = None) -> FastAPI:
    """Build the API. The lifespan owns the database engine, the Prefect client, the HTTP client for upstream
    services (CSW catalogues), the thumbnail cache and the task state synchroniser.

    ``tools`` replaces the shipped tool registry (tests add test-only tools this way)."""
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limit_gdal_cache(settings.gdal_cache_mb)
        engine = make_engine(settings.effective_database_url)
        report = await run_in_threadpool(bootstrap, settings, engine)
        if report.generated_password:
            print(f"georeg: created admin user {report.admin_username!r} with password: {report.generated_password}")
        app.state.settings = settings
        app.state.engine = engine
        app.state.secret_key = settings.resolve_secret_key()
        app.state.tools = tools or shipped_registry()
        app.state.prefect = PrefectClient(settings.effective_prefect_api_url)
        app.state.thumbnails = ThumbnailCache(settings.cache_dir, tmp_dir=settings.tmp_dir)
        app.state.upstream = httpx.Client(headers={"User-Agent": f"georeg/{__version__}"})
        app.state.submitter = TaskSubmitter(engine=engine, settings=settings, prefect=app.state.prefect,
                                            tools=app.state.tools)
        synchroniser = asyncio.create_task(sync_forever(engine=engine, settings=settings, prefect=app.state.prefect,
                                                        tools=app.state.tools, submitter=app.state.submitter))
        submitter = asyncio.create_task(app.state.submitter.run_forever())
        try:
            yield
        finally:
            for background in (submitter, synchroniser):
                background.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await background
            await app.state.prefect.aclose()
            app.state.upstream.close()
            engine.dispose()

    app = FastAPI(
        title="georeg",
        version=__version__,
        description="Geospatial dataset registry and processing platform.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    install_docs(app)
    install_error_handlers(app)
    if settings.cors_origins:  # CORS is off unless GEOREG_CORS_ORIGINS names origins (Bearer tokens, no cookies)
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
                           allow_headers=["*"], expose_headers=CORS_EXPOSED_HEADERS)
    app.add_middleware(NoSniffMiddleware)  # added last: the outermost, so CORS preflight answers get it too
    for module in (system, admin, builds, users, orgs, datasets, objects, entry_previews, meta, tasks, jobs, csw,
                   hyspex, netcdf_points, raster_jobs, pointclouds, rasters, rendering, styles, ogc, push, share,
                   stac):
        app.include_router(module.router)
    install_web(app)  # the web interface's pages (/, /signin, /r/...) and /web/static, outside the OpenAPI schema
    return app
