"""/docs works offline: the page names no http(s) URL, and every asset it loads is served
by the app itself (Swagger UI 5, which renders OpenAPI 3.1)."""

import re

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.conftest import make_settings


@pytest.fixture(scope="module")
def app_client():
    with TestClient(create_app(make_settings("sqlite://"), start_runner=False)) as client:
        yield client


def test_docs_load_nothing_from_outside(app_client):
    r = app_client.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert not re.search(r"https?://", page), re.findall(r"https?://\S+", page)
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page)
    assets += re.findall(r"""url:\s*["']([^"']+)["']""", page)
    assert {"/docs/static/swagger-ui-bundle.js", "/docs/static/swagger-ui.css"} <= set(assets)
    assert "/openapi.json" in assets
    for asset in assets:
        got = app_client.get(asset)
        assert got.status_code == 200, asset
        assert got.content, asset
    js = app_client.get("/docs/static/swagger-ui-bundle.js")
    assert "javascript" in js.headers["content-type"]
    assert "SwaggerUIBundle" in js.text
    assert (
        app_client.get("/docs/static/swagger-ui.css").headers["content-type"].startswith("text/css")
    )


def test_the_shipped_swagger_ui_renders_openapi_3_1(app_client):
    r = app_client.get("/docs/static/VERSION")
    assert r.status_code == 200 and r.text.split(".")[0] == "5", r.text
    assert app_client.get("/openapi.json").json()["openapi"].startswith("3.1")


def test_oauth_redirect_and_no_cdn_redoc(app_client):
    r = app_client.get("/docs/oauth2-redirect")
    assert r.status_code == 200 and not re.search(r"https?://", r.text)
    assert app_client.get("/redoc").status_code == 404
