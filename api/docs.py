"""The interactive API docs, served without any other host.

FastAPI's own ``/docs`` and ``/redoc`` pages load Swagger UI, ReDoc, their CSS, a favicon and Google fonts from
CDNs, so they stay blank on a machine without internet. :func:`install_docs` serves the same pages with the assets
the ``fastapi-offline`` wheel ships (Swagger UI 5 and ReDoc 2, which both render OpenAPI 3.1, plus a favicon),
mounted from that package's ``static`` folder. Only the assets of the package are used, not its ``FastAPIOffline``
factory, so the app keeps being built by :func:`georeg.api.app.create_app`.

The pages also carry a Content-Security-Policy that lets them load from their own origin only: ReDoc 2 renders an
"API docs by Redocly" footer whose logo is an image on cdn.redoc.ly (no option turns it off); under the policy the
browser refuses it without any request leaving the machine, and ReDoc hides the broken image.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.staticfiles import StaticFiles
from starlette.requests import Request
from starlette.responses import HTMLResponse

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
ASSETS_URL = "/docs/static"
"""Where the Swagger UI / ReDoc files are mounted (under ``/docs`` so the app's other paths stay free)."""

ASSETS_PACKAGE = ("fastapi_offline", "static")
"""The package folder holding ``swagger-ui-bundle.js``, ``swagger-ui.css``, ``redoc.standalone.js``, ``favicon.png``."""

SWAGGER_JS = "swagger-ui-bundle.js"
SWAGGER_CSS = "swagger-ui.css"
REDOC_JS = "redoc.standalone.js"
FAVICON = "favicon.png"

DOCS_CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self' 'unsafe-inline'",  # FastAPI's pages start Swagger UI / the OAuth2 redirect inline
    "style-src 'self' 'unsafe-inline'",  # both UIs set inline styles
    "img-src 'self' data:",
    "font-src 'self' data:",
    "worker-src 'self' blob:",  # ReDoc's search worker
    "connect-src 'self'",
    "base-uri 'self'",
    "form-action 'self'",
])
"""Everything the docs pages load comes from the origin that served them."""

# Swagger UI's default validatorUrl (validator.swagger.io) would show a badge image loaded from that host.
_SWAGGER_UI_DEFAULTS: dict[str, object] = {"validatorUrl": None}


def _root_path(request: Request) -> str:
    """The prefix the app is served under (behind a proxy), without a trailing slash, as FastAPI's own docs use."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def _own_origin_only(response: HTMLResponse) -> HTMLResponse:
    """``response`` with :data:`DOCS_CSP`."""
    response.headers["Content-Security-Policy"] = DOCS_CSP
    return response


def install_docs(app: FastAPI) -> None:
    """Serve Swagger UI at ``/docs`` (with its OAuth2 redirect page) and ReDoc at ``/redoc`` from the app itself.

    The app must be created with ``docs_url=None, redoc_url=None`` so that FastAPI does not add its CDN pages
    first. Nothing is installed when the app has no OpenAPI schema (``openapi_url=None``). Raises at once if the
    asset package is not installed (Starlette checks the folder when the mount is built). The HTML pages carry
    :data:`DOCS_CSP`."""
    if not app.openapi_url:
        return
    openapi_path = app.openapi_url
    assets = StaticFiles(packages=[ASSETS_PACKAGE])

    async def swagger_ui_html(request: Request) -> HTMLResponse:
        root = _root_path(request)
        oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url
        page = get_swagger_ui_html(
            openapi_url=root + openapi_path,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_URL}/{SWAGGER_JS}",
            swagger_css_url=f"{root}{ASSETS_URL}/{SWAGGER_CSS}",
            swagger_favicon_url=f"{root}{ASSETS_URL}/{FAVICON}",
            oauth2_redirect_url=root + oauth2_redirect_url if oauth2_redirect_url else None,
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters={**_SWAGGER_UI_DEFAULTS, **(app.swagger_ui_parameters or {})},
        )
        return _own_origin_only(page)

    async def swagger_ui_redirect(_request: Request) -> HTMLResponse:
        return _own_origin_only(get_swagger_ui_oauth2_redirect_html())

    async def redoc_html(request: Request) -> HTMLResponse:
        root = _root_path(request)
        page = get_redoc_html(
            openapi_url=root + openapi_path,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/{REDOC_JS}",
            redoc_favicon_url=f"{root}{ASSETS_URL}/{FAVICON}",
            with_google_fonts=False,
        )
        return _own_origin_only(page)

    app.mount(ASSETS_URL, assets, name="docs-static")
    app.add_route(DOCS_URL, swagger_ui_html, include_in_schema=False)
    if app.swagger_ui_oauth2_redirect_url:
        app.add_route(app.swagger_ui_oauth2_redirect_url, swagger_ui_redirect, include_in_schema=False)
    app.add_route(REDOC_URL, redoc_html, include_in_schema=False)
