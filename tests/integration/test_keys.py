"""API keys: labels and scopes, create / list / revoke over HTTP and from the CLI, a read
key refused every write (walked from the OpenAPI document), revocation at once on every
API process, the key's label as a job's created_by."""

import re

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.cli import app as cli
from app.config import get_settings
from app.main import create_app
from app.openapi import document
from tests.conftest import Scoped, make_settings

READS = {
    ("post", "/v1/selections/count"),
    ("post", "/v1/selections/preview"),
    ("post", "/v1/selections/export"),
}


def new_key(client, label: str, scope: str = "full") -> dict:
    r = client.post("/v1/keys", json={"label": label, "scope": scope})
    assert r.status_code == 201, r.text
    return r.json()


def test_create_list_revoke(api, client, app_engine, db_url):
    made = new_key(client, "shop front end", "read")
    assert made["key"].startswith("aud_") and made["prefix"] == made["key"][:8]
    assert (made["label"], made["scope"], made["last_used_at"]) == ("shop front end", "read", None)
    reader = Scoped(api, made["key"])
    assert reader.post("/v1/selections/count", json={}).status_code == 200

    listed = client.get("/v1/keys").json()["keys"]
    assert [k["label"] for k in listed] == ["default", "shop front end"]
    assert all("key" not in k and "key_hash" not in k for k in listed)
    assert listed[1]["last_used_at"] is not None  # the count above

    # a second API process (its own engine and pools) sees the revocation at once
    other = create_app(make_settings(db_url), engine=app_engine)
    with TestClient(other) as second:
        assert second.get("/v1/jobs", headers=reader.headers).status_code == 200
        assert client.delete(f"/v1/keys/{made['id']}").status_code == 204
        r = second.get("/v1/jobs", headers=reader.headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    assert api.get("/v1/jobs", headers=reader.headers).status_code == 401
    assert client.delete(f"/v1/keys/{made['id']}").status_code == 404
    r = client.post("/v1/keys", json={"label": "", "scope": "admin"})
    assert r.status_code == 422
    assert {d["path"] for d in r.json()["error"]["details"]} == {"label", "scope"}


def test_a_read_key_may_read_and_nothing_else(api, client):
    reader = Scoped(api, new_key(client, "dashboard", "read")["key"])
    walked = 0
    for path, item in document()["paths"].items():
        url = re.sub(r"\{\w+\}", "1", path)
        for method, op in item.items():
            if "security" in op and not op["security"]:
                continue  # public
            if path in ("/v1/links/{token}",) or not path.startswith("/v1/"):
                continue
            r = api.request(method.upper(), url, headers=reader.headers, json={})
            reads = (method == "get" and not path.startswith("/v1/keys")) or (
                method,
                path,
            ) in READS
            if reads:
                assert r.status_code != 403, (method, path, r.text)
            else:
                assert r.status_code == 403, (method, path, r.text)
                assert r.json()["error"]["code"] == "forbidden"
                walked += 1
    assert walked >= 20
    # nothing was written
    assert client.get("/v1/jobs").json()["jobs"] == []


def test_the_label_of_the_submitting_key_is_the_jobs_created_by(api, client):
    client.load({"email": "a@x.pl"})
    ops = Scoped(api, new_key(client, "nightly cron")["key"])
    job = ops.run({}, [{"type": "add_tags", "tags": ["x"]}])
    assert job["created_by"] == "nightly cron"
    assert client.run({}, [{"type": "add_tags", "tags": ["y"]}])["created_by"] == "default"
    undone = ops.wait(ops.post(f"/v1/jobs/{job['id']}/revert").json()["id"])
    assert undone["created_by"] == "nightly cron"


def test_keys_from_the_cli(api, client, account, db_url, monkeypatch, request):
    monkeypatch.setenv("AUDIENCE_DATABASE_URL", db_url)
    get_settings.cache_clear()  # the CLI reads the environment afresh …
    request.addfinalizer(get_settings.cache_clear)  # … and so does whoever comes next
    runner = CliRunner()
    account_id = account[0]
    r = runner.invoke(cli, ["keys", "create", str(account_id), "--label", "ops", "--scope", "read"])
    assert r.exit_code == 0, r.output
    key = r.output.strip().splitlines()[-1]
    assert Scoped(api, key).post("/v1/selections/count", json={}).status_code == 200
    assert (
        api.post("/v1/groups", json={"name": "x"}, headers=Scoped(api, key).headers).status_code
        == 403
    )

    r = runner.invoke(cli, ["keys", "list", str(account_id)])
    assert r.exit_code == 0 and "\tread\t" in r.output and "\tops\t" in r.output, r.output
    key_id = next(k["id"] for k in client.get("/v1/keys").json()["keys"] if k["label"] == "ops")
    r = runner.invoke(cli, ["keys", "revoke", str(key_id)])
    assert r.exit_code == 0, r.output
    assert api.get("/v1/jobs", headers=Scoped(api, key).headers).status_code == 401
    assert runner.invoke(cli, ["keys", "revoke", str(key_id)]).exit_code == 1
    bad = runner.invoke(cli, ["keys", "create", str(account_id), "--label", "x", "--scope", "all"])
    assert bad.exit_code == 2


@pytest.mark.parametrize("header", ["aud_nothing", "Bearer"])
def test_wrong_keys_are_401(api, header):
    assert api.get("/v1/keys", headers={"Authorization": header}).status_code == 401
