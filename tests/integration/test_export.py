"""POST /v1/selections/export: every selected contact, id order, CSV or NDJSON, the fields
asked for, formulas neutralised, gzip on request, 422s before the stream starts."""

import csv
import gzip
import io
import json


def people(client):
    client.post("/v1/funnels", json={"name": "Sales", "stages": ["Lead", "Won"]})
    client.load(
        {
            "email": "anna@x.pl",
            "first_name": "Anna",
            "tags": ["VIP", "b"],
            "details": {"plan": "gold", "x": "1"},
            "funnels": {"Sales": "Won"},
            "score": 5,
        },
        {"email": "=cmd@x.pl", "first_name": "-2+3", "tags": ["VIP"]},
        {"email": "jan@x.pl", "last_name": "Nowak, Jr."},
    )
    return client.ids("anna@x.pl", "=cmd@x.pl", "jan@x.pl")


def test_csv_with_the_default_fields(client):
    anna, cmd, jan = people(client)
    r = client.post("/v1/selections/export", json={"selection": {}})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"] == 'attachment; filename="contacts.csv"'
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows == [
        ["id", "email", "first_name", "last_name", "tags"],
        [str(anna), "anna@x.pl", "Anna", "", "VIP;b"],
        [str(cmd), "'=cmd@x.pl", "'-2+3", "", "VIP"],
        [str(jan), "jan@x.pl", "", "Nowak, Jr.", ""],
    ]


def test_ndjson_with_fields_and_a_selection(client):
    anna, cmd, _ = people(client)
    body = {
        "selection": {"include": [{"type": "tag", "tags": ["vip"]}]},
        "fields": ["email", "score", "funnels", "detail:plan", "deleted", "created_at"],
        "format": "ndjson",
    }
    r = client.post("/v1/selections/export", json=body)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert [x["email"] for x in lines] == ["anna@x.pl", "=cmd@x.pl"]  # JSON needs no quoting
    assert lines[0]["funnels"] == {"Sales": "Won"} and lines[0]["detail:plan"] == "gold"
    assert lines[1]["detail:plan"] is None and lines[0]["deleted"] is False
    assert lines[0]["created_at"].endswith("Z") and list(lines[0]) == body["fields"]


def test_many_contacts_in_batches_and_gzip(client):
    client.load(*({"email": f"p{i:04d}@x.pl"} for i in range(2500)))
    r = client.post(
        "/v1/selections/export",
        json={"selection": {}, "fields": ["email"]},
        headers={"Accept-Encoding": "gzip"},
    )
    assert r.status_code == 200 and r.headers.get("content-encoding") == "gzip"
    # httpx decodes it; the raw stream was gzip
    lines = r.text.splitlines()
    assert lines[0] == "email" and len(lines) == 2501 and lines[1:] == sorted(lines[1:])
    assert gzip.compress(b"x")  # the module works here too


def test_bad_requests_are_422_before_the_stream(client):
    people(client)
    r = client.post("/v1/selections/export", json={"selection": {}, "fields": ["password"]})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["path"] == "fields[0]"
    r = client.post(
        "/v1/selections/export",
        json={"selection": {"include": [{"type": "tag", "tags": ["nope"]}]}},
    )
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["path"] == "selection.include[0].tags[0]"
    r = client.post("/v1/selections/export", json={"fields": ["email"]})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["path"] == "selection"
    r = client.post("/v1/selections/export", json={"selection": {}, "format": "xlsx"})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["path"] == "format"
