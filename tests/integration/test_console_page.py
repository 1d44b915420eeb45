"""GET /console without a browser: the page and its assets, their headers (a strict CSP, no
inline script), the first load's weight, the catalogue the forms are drawn from, the key's
scope, and the assets inside a built (non-editable) package."""

import gzip
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from app.actions.schemas import ACTION_MODELS
from app.selection.fields import FIELDS
from app.selection.operators import OPERATORS

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "app" / "console" / "static"
FIRST_LOAD_LIMIT = 300 * 1024  # gzip'd bytes


def first_load(api) -> dict[str, bytes]:
    """What a browser fetches to show the page: the HTML, then every asset it links and
    every module those modules import, followed transitively."""
    html = api.get("/console").content
    todo = re.findall(rb'(?:src|href)="(/console/assets/[^"]+)"', html)
    seen: dict[str, bytes] = {"/console": html}
    while todo:
        url = todo.pop().decode()
        if url in seen:
            continue
        r = api.get(url)
        assert r.status_code == 200, url
        seen[url] = r.content
        for name in re.findall(rb'from "\./([^"]+)"', r.content):
            todo.append(b"/console/assets/" + name)
    return seen


def test_the_page_and_its_assets_carry_a_strict_csp(api):
    r = api.get("/console")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    # no inline script or style: every <script> has a src, no style attributes
    assert not re.search(rb"<script(?![^>]*\bsrc=)[^>]*>", r.content)
    assert b"style=" not in r.content
    for url, body in first_load(api).items():
        if url == "/console":
            continue
        response = api.get(url)
        kind = "text/javascript" if url.endswith(".js") else "text/css"
        assert response.headers["content-type"].startswith(kind), url
        assert response.headers["content-security-policy"] == csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert b"http://" not in body and b"https://" not in body, f"{url} reaches out"


def test_every_static_file_is_used_and_the_first_load_is_small(api):
    loaded = first_load(api)
    names = {url.rsplit("/", 1)[1] for url in loaded if url != "/console"}
    assert names == {p.name for p in STATIC.iterdir() if p.suffix in (".js", ".css")}
    weight = sum(len(gzip.compress(body, 9)) for body in loaded.values())
    assert weight < FIRST_LOAD_LIMIT, f"first load is {weight} bytes gzip'd"


@pytest.mark.parametrize("name", ["../main.py", "nope.js", "index.html", "..%2Fconsole.py"])
def test_only_the_folders_assets_are_served(api, name):
    r = api.get(f"/console/assets/{name}")
    assert r.status_code == 404
    assert r.json()["error"]["code"]


def test_the_catalogue_is_the_servers_own(api):
    catalog = api.get("/console/catalog.json").json()
    assert [f["name"] for f in catalog["fields"]] == list(FIELDS)
    by_name = {f["name"]: f for f in catalog["fields"]}
    assert by_name["birth_date"]["operators"][-1] == "birthday_within_days"
    assert by_name["state"]["choices"] == list(FIELDS["state"].choices)
    assert set(catalog["operators"]) == set(OPERATORS)
    assert catalog["operators"]["between"] == "pair"
    assert set(catalog["actions"]) == set(ACTION_MODELS)
    assert catalog["actions"]["set_score"]["properties"]["mode"]["enum"] == ["set", "add"]


def test_me_says_the_keys_scope(client, api):
    me = client.get("/console/me")
    assert me.status_code == 200 and me.json()["scope"] == "full"
    made = client.post("/v1/keys", json={"label": "viewer", "scope": "read"}).json()
    read = api.get("/console/me", headers={"Authorization": f"Bearer {made['key']}"})
    assert read.json() == {"label": "viewer", "scope": "read"}
    assert api.get("/console/me").status_code == 401


def test_console_routes_stay_out_of_the_api_document(api):
    paths = api.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/console")]


def test_a_built_package_ships_the_console(tmp_path):
    """A non-editable install has the assets: they are package data of the wheel. Built
    from a copy, so that the build leaves nothing in the working tree."""
    source = tmp_path / "src"
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for part in ("app", "migrations"):
        shutil.copytree(ROOT / part, source / part, ignore=skip)
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / part, source / part)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    wheel = next(tmp_path.glob("audience-*.whl"))
    inside = set(zipfile.ZipFile(wheel).namelist())
    for path in STATIC.iterdir():
        assert f"app/console/static/{path.name}" in inside
