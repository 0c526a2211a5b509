"""The web interface: server-rendered pages (Jinja2) at ``/``, ``/signin``, ``/r/{org}[/{ds}[/tasks[/{id}]]]``,
``/rasters[/{id}]``, with their static files (the app's CSS and JavaScript, vendored Leaflet and htmx) at
``/web/static``.

Pages are kept apart from the JSON API: their routes are not in the OpenAPI schema, they read the caller from an
HttpOnly, SameSite=Strict session cookie (the JSON API keeps its ``Authorization: Bearer`` header), their POST
forms carry a CSRF token, and their errors are HTML pages (the JSON API's stay ``{"error", "code"}``)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from georeg.api.web import admin, datasets, pages, rasters, tasks
from georeg.api.web.render import STATIC_DIR, STATIC_URL


def install_web(app: FastAPI) -> None:
    """Add the pages and mount their static files on ``app``."""
    app.include_router(pages.router)
    app.include_router(datasets.router)
    app.include_router(rasters.router)
    app.include_router(tasks.router)
    app.include_router(admin.router)
    app.include_router(pages.fallback)
    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="web-static")
