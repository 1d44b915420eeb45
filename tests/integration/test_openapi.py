"""openapi.yaml is what the app serves: regenerate with `audience openapi`."""

import re
from pathlib import Path

import yaml

from app.config import Settings
from app.main import create_app
from app.openapi import document
from app.selection.fields import FIELDS
from app.selection.operators import OPERATORS

ROOT = Path(__file__).resolve().parents[2]

# Request examples refer to what other examples create: a mailing's recipients and an
# event's contact are loaded contacts, a PUT changes what its POST made.
EXAMPLE_ORDER = [
    "upsert_contacts",
    "create_funnel",
    "create_group",
    "update_group",
    "create_mailing",
    "create_events",
    "create_rule",
    "update_rule",
    "create_segment",
    "update_segment",
    "count_selection",
    "preview_selection",
    "submit_job",
    "dry_run_job",
    "create_key",
    "export_selection",
    "create_tag",
    "create_webhook",
]
# Examples of schemas that are not request bodies themselves: how to send one.
NESTED_EXAMPLES = {
    "ContactIn": ("/v1/contacts", lambda ex: {"contacts": [ex]}),
    "EventIn": ("/v1/events", lambda ex: {"events": [ex]}),
    "RecipientIn": (
        "/v1/mailings",
        lambda ex: {"name": "Recipient example", "sent_at": "2026-11-02", "recipients": [ex]},
    ),
}


def committed() -> dict:
    return yaml.safe_load((ROOT / "openapi.yaml").read_text())


def operations(doc: dict):
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            yield path, method, op


def request_examples(doc: dict, op: dict) -> list:
    """The examples of an operation's JSON body: its own, else its schema's. A form's
    (an upload's): its fields' examples, by field."""
    if "multipart/form-data" in op["requestBody"]["content"]:
        form = op["requestBody"]["content"]["multipart/form-data"]["schema"]
        form = doc["components"]["schemas"][form["$ref"].split("/")[-1]]
        fields = {k: p["examples"] for k, p in form["properties"].items() if "examples" in p}
        return [fields] if fields else []
    content = op["requestBody"]["content"]["application/json"]
    if "example" in content:
        return [content["example"]]
    if "examples" in content:
        return [e["value"] for e in content["examples"].values()]
    schema = content["schema"]
    if "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].split("/")[-1]]
    return schema.get("examples", [])


def test_committed_openapi_equals_served():
    assert committed() == document(), "openapi.yaml is stale: run `audience openapi`"


def test_every_operation_has_an_id_a_tag_and_request_examples():
    doc = committed()
    ids = []
    for path, method, op in operations(doc):
        ids.append(op["operationId"])
        assert op.get("tags"), (method, path)
        if "requestBody" in op:
            assert request_examples(doc, op), f"{op['operationId']}: no request example"
    assert len(ids) == len(set(ids))


def test_every_route_names_its_operation():
    """Operation ids are the generated clients' function names: each route sets its own
    (FastAPI's generated ones end in the method), so renaming a Python function never
    renames a client method; and they are unique."""
    app = create_app(Settings(database_url="sqlite://", redis_url=None), start_runner=False)
    ids = [
        (f"{method.upper()} {path}", op["operationId"])
        for path, ops in app.openapi()["paths"].items()
        for method, op in ops.items()
    ]
    assert len(ids) > 30
    generated = [
        where for where, op_id in ids if re.search(r"_(get|post|put|delete|patch)$", op_id)
    ]
    assert not generated
    assert len({op_id for _, op_id in ids}) == len(ids)


def test_request_examples_are_accepted(client):
    doc = committed()
    with_body = {
        op["operationId"]: (path, method, op)
        for path, method, op in operations(doc)
        if "application/json" in op.get("requestBody", {}).get("content", {})
    }
    assert sorted(with_body) == sorted(EXAMPLE_ORDER), "add the operation to EXAMPLE_ORDER"
    # Every name a selection example uses must exist: the ones no other example creates.
    client.load({"email": "reader@example.com", "tags": ["newsletter"]})
    created: dict[str, int] = {}  # collection path -> id of the object its POST made
    for operation_id in EXAMPLE_ORDER:
        path, method, op = with_body[operation_id]
        collection = path.split("/{")[0]
        url = re.sub(r"\{\w+\}", str(created[collection]), path) if "{" in path else path
        for example in request_examples(doc, op):
            r = client.request(method.upper(), url, json=example)
            if r.status_code == 409 and "expected_total" in example:
                # a valid body whose guard refused it: the example's total is made up
                assert r.json()["error"]["expected_total"] == example["expected_total"]
                r = client.request(method.upper(), url, json=example, params={"dry_run": True})
            assert r.status_code < 300, (operation_id, example, r.text)
            answered_json = r.headers.get("content-type", "").startswith("application/json")
            if method == "post" and answered_json and "id" in r.json():
                created[collection] = r.json()["id"]

    # an upload's examples, with a file that has the columns they name
    ((options,),) = [
        f["options"] for f in request_examples(doc, doc["paths"]["/v1/imports"]["post"])
    ]
    csv_file = "E-mail,Plan,Teams\nimported@example.com,gold,Berlin|Warszawa\n"
    r = client.post(
        "/v1/imports", files={"file": ("a.csv", csv_file, "text/csv")}, data={"options": options}
    )
    assert r.status_code == 202, r.text
    assert client.wait(r.json()["id"])["status"] == "succeeded"

    bodies = {
        op["requestBody"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
        for _, _, op in with_body.values()
    }
    for name, schema in doc["components"]["schemas"].items():
        if name in bodies or not schema.get("examples"):
            continue
        assert name in NESTED_EXAMPLES, f"{name}: say in NESTED_EXAMPLES how to send one"
        url, wrap = NESTED_EXAMPLES[name]
        for example in schema["examples"]:
            r = client.post(url, json=wrap(example))
            assert r.status_code < 300, (name, example, r.text)


def test_served_at_openapi_json(api):
    assert api.get("/openapi.json").json() == document()


# To describe: schemas and operations of modules other than the ones described so far
# (contacts, jobs, exports). Shrink these as they get their descriptions; never grow them.
UNDESCRIBED_SCHEMAS: set[str] = set()
UNDESCRIBED_OPERATIONS: set[str] = set()


def undescribed(doc: dict, skip_schemas=frozenset(), skip_operations=frozenset()) -> list[str]:
    """Every operation, component schema and schema property without a description."""
    missing = [
        f"operation {op['operationId']}"
        for _, _, op in operations(doc)
        if not op.get("description") and op["operationId"] not in skip_operations
    ]
    for name, schema in doc["components"]["schemas"].items():
        if name in skip_schemas:
            continue
        if not schema.get("description"):
            missing.append(f"schema {name}")
        missing += [
            f"property {name}.{prop}"
            for prop, spec in schema.get("properties", {}).items()
            if not spec.get("description")
        ]
    return missing


def test_everything_is_described():
    """A front-end developer reads /docs or generated types and nothing else: every
    operation, schema and field says what it is (a docstring, `Field(description=…)`)."""
    doc = committed()
    assert undescribed(doc, UNDESCRIBED_SCHEMAS, UNDESCRIBED_OPERATIONS) == []
    # The allow-lists only shrink: an entry that is described now, or gone, must go.
    schemas = doc["components"]["schemas"]
    ids = {op["operationId"]: op for _, _, op in operations(doc)}
    stale = [name for name in UNDESCRIBED_SCHEMAS if name not in schemas] + [
        op_id for op_id in UNDESCRIBED_OPERATIONS if op_id not in ids
    ]
    assert not stale, f"gone: drop {sorted(stale)} from the allow-lists"
    done = [
        name
        for name in UNDESCRIBED_SCHEMAS
        if not undescribed({"paths": {}, "components": {"schemas": {name: schemas[name]}}})
    ] + [op_id for op_id in UNDESCRIBED_OPERATIONS if ids[op_id].get("description")]
    assert not done, f"described now: drop {sorted(done)} from the allow-lists"


def table(description: str) -> dict[str, list[str]]:
    """A markdown table's rows, by the first cell (code marks dropped), header left out."""
    lines = description.splitlines()
    body = lines[lines.index(next(line for line in lines if line.startswith("|---"))) + 1 :]
    rows = [line.split("|")[1:-1] for line in body if line.startswith("|")]
    return {row[0].strip(" `"): [cell.strip() for cell in row[1:]] for row in rows}


def test_the_operator_table_is_the_registry():
    """The operators and fields a field test documents are the registries' own, each with
    its operand and kinds, so the table cannot drift from what check.py accepts."""
    schema = committed()["components"]["schemas"]["FieldTest"]["properties"]
    operators = table(schema["op"]["description"])
    assert list(operators) == list(OPERATORS)
    assert operators["birthday_within_days"][1] == "`birth_date` only"
    assert operators["contains"][1] == "text, choice"
    assert operators["between"][:2] == ["`[low, high]`", "number, date, date-time"]
    assert operators["not_in"][2].endswith("also true with no value")
    fields = table(schema["field"]["description"])
    assert list(fields) == list(FIELDS)
    assert fields["sex"][0] == "choice"
    assert fields["birth_date"] == ["date", "also takes `birthday_within_days`"]
