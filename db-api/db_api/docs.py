"""The API docs pages, Swagger UI at /docs and ReDoc at /redoc, with their own assets.

FastAPI's default pages load their scripts, styles, favicon and fonts from public hosts:
offline the pages stay blank, and online every visit tells those hosts who reads the
docs. Here the same pages load everything from db-api itself. As before, they are open
to anyone who reaches db-api; the operations they call still need the service token.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

SWAGGER_UI_URL = "/docs"
SWAGGER_UI_OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
REDOC_URL = "/redoc"
DOCS_ASSETS_URL = "/docs/assets"
# The browser may fetch nothing from another host for these pages, whatever the bundles
# ask: ReDoc's side menu, for one, loads Redocly's logo from Redocly's CDN. Each
# relaxation is one the pages break without (checked in Chromium): Swagger UI starts from
# an inline script, both bundles inject <style> elements, icons are data: URLs, and
# ReDoc's search runs in a worker made from a blob: URL.
DOCS_CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "worker-src 'self' blob:",
        "base-uri 'none'",
    ]
)
# fastapi-offline ships Swagger UI's and ReDoc's dist files in this folder of its package;
# only the files are used, the pages are built here.
DOCS_ASSETS_PACKAGE = ("fastapi_offline", "static")


def install_docs_pages(app: FastAPI) -> None:
    """Serve /docs, /docs/oauth2-redirect and /redoc; the app must be made without them."""
    if app.docs_url is not None or app.redoc_url is not None:
        raise ValueError("Create the app with docs_url=None and redoc_url=None")
    openapi_url = app.openapi_url
    if openapi_url is None:
        raise ValueError("The docs pages render the app's OpenAPI schema; keep openapi_url")
    app.mount(DOCS_ASSETS_URL, StaticFiles(packages=[DOCS_ASSETS_PACKAGE]), name="docs_assets")

    async def swagger_ui_page(request: Request) -> HTMLResponse:
        root = _root_path(request)
        page = get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS_URL}/favicon.png",
            oauth2_redirect_url=root + SWAGGER_UI_OAUTH2_REDIRECT_URL,
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters=app.swagger_ui_parameters,
        )
        page.headers["Content-Security-Policy"] = DOCS_CONTENT_SECURITY_POLICY
        return page

    async def swagger_ui_oauth2_redirect_page(_request: Request) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc_page(request: Request) -> HTMLResponse:
        root = _root_path(request)
        page = get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{DOCS_ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_ASSETS_URL}/favicon.png",
            # Google Fonts would be one more outside host; ReDoc falls back to system fonts.
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = DOCS_CONTENT_SECURITY_POLICY
        return page

    app.add_route(SWAGGER_UI_URL, swagger_ui_page, include_in_schema=False)
    app.add_route(
        SWAGGER_UI_OAUTH2_REDIRECT_URL, swagger_ui_oauth2_redirect_page, include_in_schema=False
    )
    app.add_route(REDOC_URL, redoc_page, include_in_schema=False)


def _root_path(request: Request) -> str:
    """The prefix a proxy serves db-api under, so the pages' links work behind it too."""
    root_path: str = request.scope.get("root_path", "")
    return root_path.rstrip("/")
