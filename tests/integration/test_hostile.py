"""Hostile input: each case is a 4xx in the contract's shape, pointing at the offending part
where there is one; nothing is stored; the service keeps serving. (Deep and wide filter
trees: tests/integration/test_selection.py::test_limits; the fuzzer: tests/integration/test_fuzz.py.)"""

import asyncio
import json

import pytest

from tests.conftest import Scoped

HUGE = 2**70
SQL = "x'); DROP TABLE contacts; --"


def error_of(r, status=422) -> dict:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) >= {"code", "message", "details"}, error
    return error


def paths(r, status=422) -> list[str]:
    return [d["path"] for d in error_of(r, status)["details"]]


@pytest.fixture
def seeded(client: Scoped) -> Scoped:
    client.load({"email": "a@example.com", "tags": ["VIP"], "score": 5})
    return client


def unchanged(client: Scoped) -> None:
    """Nothing stored, and the service still answers."""
    assert client.count({"deleted": "include"}) == 1
    assert client.count({"include": [{"type": "tag", "tags": ["VIP"]}]}) == 1


SELECTIONS = {
    "score past 64 bits": (
        {"filter": {"field": "score", "op": "gt", "value": HUGE}},
        "filter.value",
    ),
    "score list past 64 bits": (
        {"filter": {"field": "score", "op": "in", "value": [1, -HUGE]}},
        "filter.value",
    ),
    "date with a five-digit year": (
        {"filter": {"field": "birth_date", "op": "eq", "value": "99999-01-01"}},
        "filter.value",
    ),
    "date in year zero": (
        {"filter": {"field": "birth_date", "op": "eq", "value": "0000-01-01"}},
        "filter.value",
    ),
    "timestamp with a signed year": (
        {"filter": {"field": "created_at", "op": "gt", "value": "+10000-01-01"}},
        "filter.value",
    ),
    "days past 64 bits": (
        {"filter": {"field": "created_at", "op": "within_last_days", "value": HUGE}},
        "filter.value",
    ),
    "as_of in year 10000": ({"as_of": "10000-01-01T00:00:00Z"}, "as_of"),
    "NUL in a value": (
        {"filter": {"field": "city", "op": "eq", "value": "a\u0000b"}},
        "filter.value",
    ),
    "NUL in a tag": ({"include": [{"type": "tag", "tags": ["a\u0000b"]}]}, "include[0].tags[0]"),
    "mailing id past 64 bits": (
        {"exclude": [{"type": "mailing", "mailings": [HUGE]}]},
        "exclude[0].mailings[0]",
    ),
    "SQL in a field name": (
        {"filter": {"field": f"score{SQL}", "op": "eq", "value": 1}},
        "filter.field",
    ),
    "SQL in an operator": (
        {"filter": {"field": "city", "op": f"eq{SQL}", "value": "x"}},
        "filter.op",
    ),
    "SQL in an unknown key": (
        {"filter": {"field": "city", "op": "eq", "value": "x", "sql": SQL}},
        "filter.sql",
    ),
    "NUL in a detail name": (
        {"filter": {"detail": "k\u0000", "op": "eq", "value": "x"}},
        "filter.detail",
    ),
    "NUL in an event type": (
        {"filter": {"event": {"type": "A\u0000"}, "agg": "count", "op": "gte", "value": 1}},
        "filter.event.type",
    ),
    "unknown selector key": (
        {"include": [{"type": "tag", "tags": ["VIP"], "extra": 1}]},
        "include[0].extra",
    ),
    "number as a string": (
        {"filter": {"field": "score", "op": "gt", "value": "5"}},
        "filter.value",
    ),
    "boolean as a number": (
        {"filter": {"field": "email_opt_in", "op": "eq", "value": 1}},
        "filter.value",
    ),
}


@pytest.mark.parametrize(("spec", "path"), SELECTIONS.values(), ids=SELECTIONS.keys())
def test_hostile_selection_is_422_at_its_path(seeded, spec, path):
    assert path in paths(seeded.post("/v1/selections/count", json=spec))
    unchanged(seeded)


def test_sql_shaped_names_and_values_are_data(seeded):
    """Detail names, tag names and values shaped like SQL are compared as data."""
    seeded.load({"email": "b@example.com", "tags": [SQL], "details": {SQL: SQL}})
    assert seeded.count({"include": [{"type": "tag", "tags": [SQL]}]}) == 1
    assert seeded.count({"filter": {"detail": SQL, "op": "eq", "value": SQL}}) == 1
    assert seeded.count({"filter": {"field": "email", "op": "eq", "value": "' OR '1'='1"}}) == 0
    assert seeded.count({"deleted": "include"}) == 2


CONTACTS = {
    "score past 64 bits": ({"email": "x@example.com", "score": HUGE}, "contacts[1].score"),
    "fractional score": ({"email": "x@example.com", "score": 5.5}, "contacts[1].score"),
    "score as a string": ({"email": "x@example.com", "score": "5"}, "contacts[1].score"),
    "opt-in as a number": (
        {"email": "x@example.com", "email_opt_in": 1},
        "contacts[1].email_opt_in",
    ),
    "birth date in year zero": (
        {"email": "x@example.com", "birth_date": "0000-01-01"},
        "contacts[1].birth_date",
    ),
    "birth date with a five-digit year": (
        {"email": "x@example.com", "birth_date": "10000-01-01"},
        "contacts[1].birth_date",
    ),
    "birth date as a number": (
        {"email": "x@example.com", "birth_date": 0},
        "contacts[1].birth_date",
    ),
    "timestamp as a number": (
        {"email": "x@example.com", "created_at": 1700000000},
        "contacts[1].created_at",
    ),
    "timestamp as a numeric string": (
        {"email": "x@example.com", "created_at": "1700000000"},
        "contacts[1].created_at",
    ),
    "birth date as a numeric string": (
        {"email": "x@example.com", "birth_date": "19880412"},
        "contacts[1].birth_date",
    ),
    "timestamp with a five-digit year": (
        {"email": "x@example.com", "created_at": "99999-01-01T00:00:00Z"},
        "contacts[1].created_at",
    ),
    "NUL in the e-mail": ({"email": "x@exa\u0000mple.com"}, "contacts[1].email"),
    "NUL in a name": (
        {"email": "x@example.com", "first_name": "A\u0000"},
        "contacts[1].first_name",
    ),
    "NUL in a tag": ({"email": "x@example.com", "tags": ["a\u0000"]}, "contacts[1].tags[0]"),
    "NUL in a detail value": (
        {"email": "x@example.com", "details": {"k": "v\u0000"}},
        "contacts[1].details.k",
    ),
    "NUL in a detail name": (
        {"email": "x@example.com", "details": {"k\u0000": "v"}},
        "contacts[1].details.k\u0000",
    ),
    "101 detail keys": (
        {"email": "x@example.com", "details": {f"k{i}": "v" for i in range(101)}},
        "contacts[1].details",
    ),
    "tag of Unicode blanks": (
        {"email": "x@example.com", "tags": [" \u3000\ufeff"]},
        "contacts[1].tags[0]",
    ),
    "id given": ({"email": "x@example.com", "id": 1}, "contacts[1].id"),
    "account_id given": ({"email": "x@example.com", "account_id": 2}, "contacts[1].account_id"),
}


@pytest.mark.parametrize(("entry", "path"), CONTACTS.values(), ids=CONTACTS.keys())
def test_hostile_contact_rejects_the_whole_batch(seeded, entry, path):
    body = {"contacts": [{"email": "new@example.com"}, entry]}
    assert path in paths(seeded.post("/v1/contacts", json=body))
    unchanged(seeded)


def test_ten_thousand_contacts_with_one_bad_row_store_nothing(seeded):
    batch = [{"email": f"c{i}@example.com", "tags": ["batch"]} for i in range(10_000)]
    batch[9_876] = {"email": "bad@example.com", "birth_date": "1990-02-30"}
    assert paths(seeded.post("/v1/contacts", json={"contacts": batch})) == [
        "contacts[9876].birth_date"
    ]
    unchanged(seeded)
    # not even the tag: naming it is a 422
    batch_tag = {"include": [{"type": "tag", "tags": ["batch"]}]}
    assert paths(seeded.post("/v1/selections/count", json=batch_tag)) == ["include[0].tags[0]"]


@pytest.mark.parametrize(
    "body",
    [b'{"filter": "\xff\xfe"}', b"\xef\xbb\xbf\xff", b"not json", b'{"a": 1', b"\x00" * 10],
    ids=["invalid-utf8", "bom-then-junk", "not-json", "truncated", "nul-bytes"],
)
def test_unreadable_bodies_are_422(seeded, body):
    r = seeded.post(
        "/v1/selections/count", content=body, headers={"Content-Type": "application/json"}
    )
    error_of(r)
    unchanged(seeded)


def test_nul_in_events_and_actions_is_422(seeded):
    event = {"email": "a@example.com", "type": "VISIT", "occurred_at": "2026-11-01T00:00:00Z"}
    for bad, path in [
        ({"type": "VI\u0000SIT"}, "events[0].type"),
        ({"products": "shoe\u0000"}, "events[0].products"),
        ({"details": {"k": "v\u0000"}}, "events[0].details.k"),
    ]:
        assert path in paths(seeded.post("/v1/events", json={"events": [{**event, **bad}]}))
    for action, path in [
        ({"type": "set_detail", "name": "k", "value": "v\u0000"}, "actions[0].value"),
        ({"type": "set_detail", "name": "k\u0000", "value": "v"}, "actions[0].name"),
        ({"type": "delete_detail", "name": "k\u0000"}, "actions[0].name"),
    ]:
        assert path in paths(seeded.post("/v1/jobs", json={"selection": {}, "actions": [action]}))
    unchanged(seeded)


def test_ids_past_64_bits(seeded):
    for url in ("/v1/contacts", "/v1/jobs", "/v1/funnels", "/v1/groups", "/v1/segments"):
        assert paths(seeded.get(f"{url}/{HUGE}"))[0].startswith("path."), url
        assert seeded.get(f"{url}/-1").status_code == 404, url
    r = seeded.post(
        "/v1/jobs", json={"actions": [{"type": "run_rule", "rule": HUGE}], "selection": {}}
    )
    assert "actions[0].rule" in paths(r)


def test_unknown_query_parameters_are_refused(seeded):
    """A mistyped ?dry_run must not run the job."""
    r = seeded.post("/v1/jobs?dryrun=true", json={"selection": {}, "actions": [{"type": "delete"}]})
    assert paths(r) == ["query.dryrun"]
    unchanged(seeded)
    assert paths(seeded.get("/v1/jobs?limit=5&surprise=1")) == ["query.surprise"]


def test_nul_in_a_query_string_is_a_422(seeded):
    for url in (
        "/v1/event-types?prefix=a%00",
        "/v1/tags?after=%00",
        "/v1/contacts?q=%00x",
        "/v1/jobs?action=tag%00",
        "/v1/contacts/1/history?before=%00",
    ):
        r = seeded.get(url)
        assert r.status_code == 422, (url, r.text)
        assert "NUL" in r.json()["error"]["details"][0]["message"], url


def test_one_value_query_parameters_given_twice_are_refused(seeded):
    """Which of two prefixes (or dry_run=false&dry_run=true) was meant is a guess: a 422."""
    assert paths(seeded.get("/v1/tags?prefix=a&prefix=b")) == ["query.prefix"]
    r = seeded.post(
        "/v1/jobs?dry_run=true&dry_run=false",
        json={"selection": {}, "actions": [{"type": "delete"}]},
    )
    assert paths(r) == ["query.dry_run"]
    unchanged(seeded)
    assert seeded.get("/v1/tags?prefix=a").status_code == 200


def test_wrong_method_lists_the_allowed_ones(seeded):
    r = seeded.request("PATCH", "/v1/groups/1")
    error_of(r, 405)
    assert r.headers["Allow"] == "GET, PUT, DELETE"
    assert seeded.request("DELETE", "/v1/groups").headers["Allow"] == "GET, POST"


def test_body_over_the_limit_is_413(db_url, engine, solo_app, account):
    client = Scoped(solo_app(max_body_bytes=10_000), account[1])
    big = {"contacts": [{"email": f"c{i}@example.com"} for i in range(1000)]}
    error_of(client.post("/v1/contacts", json=big), 413)
    r = client.post("/v1/contacts", json={"contacts": [{"email": "ok@example.com"}]})
    assert r.status_code == 200  # still serving
    assert client.count({}) == 1


def test_body_over_the_limit_is_not_read_whole(db_url, engine, api):
    """Without a Content-Length, the body is refused as soon as it passes the limit: the
    rest is never read."""
    from app.main import create_app
    from tests.conftest import make_settings

    app = create_app(make_settings(db_url, max_body_bytes=10_000), engine=engine)
    chunks = [b'{"contacts": [' + b" " * 4096] + [b" " * 4096] * 1000
    sent = {"n": 0}
    messages = []

    async def receive():
        sent["n"] += 1
        more = sent["n"] < len(chunks)
        return {"type": "http.request", "body": chunks[sent["n"] - 1], "more_body": more}

    async def send(message):
        messages.append(message)

    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "path": "/v1/contacts",
        "raw_path": b"/v1/contacts",
        "root_path": "",
        "scheme": "http",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"authorization", b"Bearer x")],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
        "state": {},
    }
    asyncio.run(app(scope, receive, send))
    start = next(m for m in messages if m["type"] == "http.response.start")
    assert start["status"] == 413
    assert sent["n"] <= 4, f"read {sent['n']} of {len(chunks)} chunks"
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    assert json.loads(body)["error"]["code"] == "payload_too_large"


def test_an_action_type_that_is_not_a_string_is_a_422(client):
    for kind in ({"a": 1}, [1], 7, None):
        body = {"selection": {}, "actions": [{"type": kind}]}
        r = client.post("/v1/jobs?dry_run=true", json=body)
        assert r.status_code == 422, (kind, r.text)
        assert r.json()["error"]["details"][0]["path"] == "actions[0].type"
