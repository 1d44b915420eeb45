"""openapi.yaml is what the app serves: regenerate with `audience openapi`."""

from pathlib import Path

import yaml

from app.openapi import document

ROOT = Path(__file__).resolve().parent.parent


def test_committed_openapi_equals_served():
    committed = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    assert committed == document(), "openapi.yaml is stale: run `audience openapi`"


def test_every_operation_has_an_id_a_tag_and_request_examples():
    doc = document()
    ids = []
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            ids.append(op["operationId"])
            assert op.get("tags"), (method, path)
            body = op.get("requestBody")
            if body:
                schema = body["content"]["application/json"]["schema"]
                ref = schema["$ref"].split("/")[-1]
                assert doc["components"]["schemas"][ref].get("examples"), ref
    assert len(ids) == len(set(ids))


def test_served_at_openapi_json(api):
    assert api.get("/openapi.json").json() == document()
