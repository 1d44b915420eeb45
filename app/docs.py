"""/docs: Swagger UI 5 (it renders the OpenAPI 3.1 FastAPI serves) from files shipped
in app/static/docs/, never from a CDN, so the page works offline. The files come from the
npm package swagger-ui-dist; scripts/vendor-swagger-ui.sh fetches them again."""

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(__file__).parent / "static" / "docs"
ASSETS_URL = "/docs/static"


def install(app: FastAPI) -> None:
    """Serve /docs (and its OAuth redirect) with the shipped assets. Built with
    `docs_url=None, redoc_url=None`: FastAPI's own pages load their scripts from a CDN."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title=f"{app.title} — API",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon-32x32.png",
            oauth2_redirect_url="/docs/oauth2-redirect",
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
