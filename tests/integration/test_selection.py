"""Every selector, field and operator on a small known dataset, on every database; the
count and preview endpoints; segments; and every kind of 422."""

import json
import uuid

import pytest
import sqlalchemy as sa

from app.auth import create_account
from tests.conftest import Scoped

AS_OF = "2026-03-01T12:00:00Z"


@pytest.fixture(scope="module")
def world(api, engine):
    """Five contacts (a–e, d soft-deleted) with everything the compiler can test."""
    with engine.begin() as conn:
        _, key = create_account(conn, f"sel-{uuid.uuid4().hex[:6]}")
    c = Scoped(api, key)
    c.post("/v1/funnels", json={"name": "Sales", "stages": ["Lead", "Won"]})
    c.load(
        {
            "email": "anna@shop.pl",
            "first_name": "Anna",
            "last_name": "Nowak",
            "city": "ŁÓDŹ",
            "country": "PL",
            "birth_date": "1990-03-05",
            "sex": "female",
            "score": 50,
            "state": "CUSTOMER",
            "email_opt_in": True,
            "tags": ["VIP", "news"],
            "details": {"plan": "gold", "points": "120", "since": "2020-05-01"},
            "owners": ["sales@x.com"],
            "funnels": {"Sales": "Lead"},
            "groups": ["G1"],
            "created_at": "2026-02-15T10:00:00Z",
        },
        {
            "email": "bob@gmail.com",
            "first_name": "Bob",
            "city": "łódź",
            "country": "DE",
            "birth_date": "2000-02-29",
            "sex": "male",
            "score": -5,
            "tags": ["vip"],
            "details": {"points": "abc", "since": "2023-02-30", "plan": ""},
            "funnels": {"Sales": "Won"},
            "created_at": "2020-01-01T00:00:00Z",
        },
        {
            "email": "Carl@Gmail.com",
            "company": "",
            "phone": "+48 600",
            "email_valid": False,
            "phone_opt_in": True,
        },
        {"email": "dora@shop.pl", "tags": ["VIP"]},
        {
            "email": "eve@example.com",
            "first_name": "eve",
            "birth_date": "2008-03-01",
            "score": 100,
            "tags": ["news", "x"],
            "owners": ["boss@x.com", "sales@x.com"],
        },
    )
    ids = dict(
        zip(
            "abcde",
            c.ids(
                "anna@shop.pl", "bob@gmail.com", "carl@gmail.com", "dora@shop.pl", "eve@example.com"
            ),
            strict=True,
        )
    )
    c.run({"filter": {"field": "email", "op": "eq", "value": "dora@shop.pl"}}, [{"type": "delete"}])
    m1 = c.post(
        "/v1/mailings",
        json={
            "name": "M1",
            "sent_at": "2026-02-01T10:00:00Z",
            "recipients": [
                {
                    "email": "anna@shop.pl",
                    "opened_at": "2026-02-01T11:00:00Z",
                    "clicked_at": "2026-02-01T11:05:00Z",
                },
                {"email": "bob@gmail.com", "bounced": True},
                {"email": "carl@gmail.com"},
            ],
        },
    ).json()["id"]
    m2 = c.post(
        "/v1/mailings",
        json={
            "name": "M2",
            "sent_at": "2026-02-10T10:00:00Z",
            "recipients": [{"email": "eve@example.com", "opened_at": "2026-02-10T12:00:00Z"}],
        },
    ).json()["id"]
    r = c.post(
        "/v1/events",
        json={
            "events": [
                {
                    "email": "anna@shop.pl",
                    "type": "PURCHASE",
                    "occurred_at": "2026-02-20T10:00:00Z",
                    "value": 100,
                    "products": "Red Shoes, Socks",
                },
                {
                    "email": "anna@shop.pl",
                    "type": "PURCHASE",
                    "occurred_at": "2025-01-01T10:00:00Z",
                    "value": 50,
                },
                {"email": "anna@shop.pl", "type": "VISIT", "occurred_at": "2026-02-28T10:00:00Z"},
                {
                    "email": "bob@gmail.com",
                    "type": "CART",
                    "occurred_at": "2026-02-25T10:00:00Z",
                    "value": 30,
                },
                {
                    "email": "eve@example.com",
                    "type": "PURCHASE",
                    "occurred_at": "2026-02-27T10:00:00Z",
                    "value": 10,
                },
                {
                    "email": "eve@example.com",
                    "type": "PURCHASE",
                    "occurred_at": "2026-02-28T10:00:00Z",
                },
            ]
        },
    )
    assert r.status_code == 200
    c.post(
        "/v1/segments",
        json={"name": "VIPs", "selection": {"include": [{"type": "tag", "tags": ["VIP"]}]}},
    )
    c.post(
        "/v1/segments",
        json={
            "name": "Rich VIPs",
            "selection": {
                "include": [{"type": "segment", "segments": ["vips"]}],
                "filter": {"field": "score", "op": "gt", "value": 0},
            },
        },
    )
    return c, ids, {"M1": m1, "M2": m2}


def _names(world, spec) -> set[str]:
    c, ids, _ = world
    spec = {"as_of": AS_OF, **spec}
    r = c.post("/v1/selections/preview", json={"selection": spec, "limit": 100})
    assert r.status_code == 200, r.text
    body = r.json()
    by_id = {v: k for k, v in ids.items()}
    names = {by_id[x["id"]] for x in body["contacts"]}
    assert body["total"] == len(names) == c.count(spec)
    return names


def F(field, op, value=None):  # noqa: N802 - reads like the spec
    node = {"field": field, "op": op}
    if value is not None:
        node["value"] = value
    return {"filter": node}


def E(event, agg="count", op="gte", value=1):  # noqa: N802
    return {"filter": {"event": event, "agg": agg, "op": op, "value": value}}


def tag(*tags, match="any"):
    return {"type": "tag", "tags": list(tags), "match": match}


CASES = [
    ({}, "abce"),
    ({"deleted": "only"}, "d"),
    ({"deleted": "include"}, "abcde"),
    ({"include": [tag("VIP")]}, "ab"),
    ({"include": [tag("VIP")], "deleted": "include"}, "abd"),
    ({"include": [tag("vip", "NEWS", match="all")]}, "a"),
    ({"include": [tag("VIP", "news")]}, "abe"),
    ({"include": [tag("VIP"), tag("news")]}, "abe"),
    ({"filter": {"and": [tag("VIP")] * 5 + [tag("news")] * 5}}, "a"),  # one "match all"
    ({"filter": {"and": [tag("VIP")] * 9 + [tag("vip", "news")]}}, "ab"),
    ({"exclude": [tag("news")]}, "bc"),
    ({"include": [tag("VIP")], "exclude": [tag("news")]}, "b"),
    ({"include": [{"type": "funnel", "funnel": "sales"}]}, "ab"),
    ({"include": [{"type": "funnel", "funnel": "Sales", "stages": ["WON"]}]}, "b"),
    ({"include": [{"type": "group", "groups": ["g1"]}]}, "a"),
    ({"include": [{"type": "segment", "segments": ["vips"]}]}, "ab"),
    ({"include": [{"type": "segment", "segments": ["RICH VIPS"]}]}, "a"),
    ({"exclude": [{"type": "segment", "segments": ["VIPs"]}]}, "ce"),
    ({"filter": {"type": "segment", "segments": ["VIPs"]}}, "ab"),
    (F("city", "eq", "łódź"), "ab"),
    (F("city", "ne", "Łódź"), "ce"),
    (F("city", "in", ["LÓDŹ", "łódź"]), "ab"),
    (F("city", "not_in", ["łódź"]), "ce"),
    (F("first_name", "is_empty"), "c"),
    (F("first_name", "is_not_empty"), "abe"),
    (F("company", "is_empty"), "abce"),
    (F("first_name", "contains", "AN"), "a"),
    (F("first_name", "not_contains", "an"), "bce"),
    (F("first_name", "starts_with", "b"), "b"),
    (F("first_name", "ends_with", "VE"), "e"),
    (F("first_name", "contains", "%"), ""),
    (F("first_name", "contains", "_"), ""),
    (F("last_name", "eq", "nowak"), "a"),
    (F("phone", "starts_with", "+48"), "c"),
    (F("email", "eq", "CARL@gmail.com"), "c"),
    (F("email", "ends_with", "@GMAIL.COM"), "bc"),
    (F("email_domain", "eq", "gmail.com"), "bc"),
    (F("email_domain", "in", ["SHOP.PL"]), "a"),
    (F("email_domain", "ne", "gmail.com"), "ae"),
    (F("country", "in", ["pl", "de"]), "ab"),
    (F("country", "not_in", ["PL"]), "bce"),
    (F("sex", "eq", "female"), "a"),
    (F("sex", "ne", "male"), "ace"),
    (F("sex", "in", ["female", "unknown"]), "ace"),
    (F("sex", "is_empty"), ""),
    (F("state", "eq", "customer"), "a"),
    (F("state", "eq", "PROSPECT"), "bce"),
    (F("score", "gt", 0), "ae"),
    (F("score", "between", [0, 50]), "ac"),
    (F("score", "lt", 0), "b"),
    (F("score", "eq", 0), "c"),
    (F("score", "in", [50, 100]), "ae"),
    (F("score", "lte", 50.5), "abc"),
    (F("age", "between", [18, 40]), "abe"),
    (F("age", "lt", 18), ""),
    (F("age", "gte", 26), "ab"),
    (F("age", "eq", 35), "a"),
    (F("age", "ne", 35), "bce"),
    (F("age", "is_empty"), "c"),
    (F("age", "gt", 25.5), "ab"),
    (F("birth_date", "birthday_within_days", 0), "e"),
    (F("birth_date", "birthday_within_days", 4), "ae"),
    ({**F("birth_date", "birthday_within_days", 0), "as_of": "2026-02-28T08:00:00Z"}, "b"),
    ({**F("birth_date", "birthday_within_days", 1), "as_of": "2028-02-28T08:00:00Z"}, "b"),
    ({**F("birth_date", "birthday_within_days", 0), "as_of": "2028-02-28T08:00:00Z"}, ""),
    ({**F("birth_date", "birthday_within_days", 62), "as_of": "2025-12-30T08:00:00Z"}, "be"),
    (F("birth_date", "lt", "1995-01-01"), "a"),
    (F("birth_date", "between", ["2000-02-29", "2008-03-01"]), "be"),
    (F("birth_date", "ne", "2000-02-29"), "ace"),
    (F("created_at", "older_than_days", 365), "b"),
    (F("created_at", "within_last_days", 30), "a"),
    (F("created_at", "lt", "2021-01-01"), "b"),
    (F("email_opt_in", "eq", True), "a"),
    (F("email_valid", "eq", False), "c"),
    (F("phone_opt_in", "ne", True), "abe"),
    (F("email_valid", "in", [True]), "abe"),
    (F("owner", "eq", "SALES@x.com"), "ae"),
    (F("owner", "ne", "sales@x.com"), "bc"),
    (F("owner", "is_empty"), "bc"),
    (F("owner", "is_not_empty"), "ae"),
    (F("owner", "contains", "boss"), "e"),
    (F("owner", "not_contains", "boss"), "abc"),
    (F("tag_count", "eq", 0), "c"),
    (F("tag_count", "gte", 2), "ae"),
    (F("tag_count", "lt", 1), "c"),
    (F("tag_count", "ne", 2), "bc"),
    ({"filter": {"detail": "plan", "op": "eq", "value": "GOLD"}}, "a"),
    ({"filter": {"detail": "plan", "op": "ne", "value": "gold"}}, "bce"),
    ({"filter": {"detail": "plan", "op": "is_empty"}}, "bce"),
    ({"filter": {"detail": "points", "op": "gt", "value": 100, "as": "number"}}, "a"),
    ({"filter": {"detail": "points", "op": "is_empty", "as": "number"}}, "bce"),
    ({"filter": {"detail": "points", "op": "is_not_empty", "as": "string"}}, "ab"),
    ({"filter": {"detail": "since", "op": "lt", "value": "2021-01-01", "as": "date"}}, "a"),
    ({"filter": {"detail": "since", "op": "is_not_empty", "as": "date"}}, "a"),
    ({"filter": {"detail": "Plan", "op": "eq", "value": "gold"}}, ""),
    (E({"type": "PURCHASE"}), "ae"),
    (E({"type": "PURCHASE"}, op="eq", value=0), "bc"),
    (E({"type": "purchase"}), ""),
    (E({"type": "PURCHASE", "within_days": 30}), "ae"),
    (E({"type": "PURCHASE", "within_days": 2}), "e"),
    (E({"type": "PURCHASE"}, "sum", "gt", 60), "a"),
    (E({"type": "PURCHASE"}, "sum", "eq", 0), "bc"),
    (E({"type": "PURCHASE"}, "sum", "lt", 20), "bce"),
    (E({"type": "PURCHASE"}, "max", "gte", 100), "a"),
    (E({"type": "PURCHASE"}, "max", "is_empty", None), "bc"),
    (E({"type": "PURCHASE"}, "max", "ne", 100), "bce"),
    (E({"type": "PURCHASE"}, "last_at", "within_last_days", 2), "e"),
    (E({"type": "PURCHASE"}, "last_at", "gt", "2026-02-21"), "e"),
    (E({}, "last_at", "older_than_days", 3), "b"),
    (E({"products_contains": "RED"}), "a"),
    (E({"value_gte": 60}), "a"),
    (E({"value_lte": 30, "value_gte": 30}), "b"),
    (E({"from": "2026-02-24", "to": "2026-02-26T00:00:00Z"}), "b"),
    (E({}, "count", "gte", 3), "a"),
    ({"filter": {"event": {"type": "PURCHASE"}, "agg": "count", "op": "gte", "value": 1}}, "ae"),
    ({"filter": {"not": {"field": "city", "op": "eq", "value": "łódź"}}}, "ce"),
    ({"filter": {"not": {"not": {"field": "city", "op": "eq", "value": "łódź"}}}}, "ab"),
    ({"filter": {"or": [tag("VIP"), tag("news")]}}, "abe"),
    ({"filter": {"and": [tag("VIP"), {"field": "score", "op": "gt", "value": 0}]}}, "a"),
    ({"filter": {"and": []}}, "abce"),
    ({"filter": {"or": []}}, ""),
    ({"filter": {"not": {"or": []}}}, "abce"),
    ({"include": [{"type": "mailing", "mailings": ["M1"]}]}, "abc"),
    ({"include": [{"type": "mailing", "mailings": ["M1"], "event": "opened"}]}, "a"),
    ({"include": [{"type": "mailing", "mailings": ["M1", "M2"], "event": "opened"}]}, "ae"),
    ({"include": [{"type": "mailing", "mailings": ["M1"], "event": "not_opened"}]}, "bc"),
    ({"include": [{"type": "mailing", "mailings": ["M1"], "event": "clicked"}]}, "a"),
    ({"include": [{"type": "mailing", "mailings": ["M1"], "event": "bounced"}]}, "b"),
]


def _bind(world, spec):
    """Mailing names in a case stand for the mailing ids created by the fixture."""
    mailings = world[2]
    for sel in spec.get("include", []):
        if sel.get("type") == "mailing":
            sel["mailings"] = [mailings.get(m, m) for m in sel["mailings"]]
    return spec


def _spec_id(spec: dict) -> str:
    """A case's id: its spec, compact (`filter:field:city,op:eq,value:łódź`)."""
    text = json.dumps(spec, ensure_ascii=False, separators=(",", ":"))
    return text.replace('"', "").replace("{", "").replace("}", "") or "everyone"


@pytest.mark.parametrize(("spec", "expected"), CASES, ids=[_spec_id(s) for s, _ in CASES])
def test_selects(world, spec, expected):
    import copy

    spec = _bind(world, copy.deepcopy(spec))
    assert _names(world, spec) == set(expected), spec


def test_preview_lowest_ids_first_and_limit(world):
    c, ids, _ = world
    r = c.post("/v1/selections/preview", json={"selection": {}, "limit": 2}).json()
    assert r["total"] == 4
    assert [x["id"] for x in r["contacts"]] == sorted(ids[k] for k in "abce")[:2]
    full = r["contacts"][0]
    assert {"tags", "details", "owners", "funnels", "groups", "email", "deleted"} <= set(full)


BAD = [
    ({"filter": {"field": "shoe_size", "op": "eq", "value": 1}}, "filter.field"),
    ({"filter": {"field": "score", "op": "contains", "value": "1"}}, "filter.op"),
    ({"filter": {"field": "score", "op": "eq", "value": "1"}}, "filter.value"),
    ({"filter": {"field": "score", "op": "eq"}}, "filter.value"),
    ({"filter": {"field": "birth_date", "op": "eq", "value": "1990-02-30"}}, "filter.value"),
    ({"filter": {"field": "created_at", "op": "gt", "value": "yesterday"}}, "filter.value"),
    ({"filter": {"field": "age", "op": "between", "value": [1]}}, "filter.value"),
    ({"filter": {"field": "city", "op": "in", "value": "x"}}, "filter.value"),
    ({"filter": {"field": "city", "op": "birthday_within_days", "value": 3}}, "filter.op"),
    ({"filter": {"field": "birth_date", "op": "within_last_days", "value": -1}}, "filter.value"),
    ({"filter": {"field": "email_opt_in", "op": "eq", "value": "yes"}}, "filter.value"),
    ({"filter": {"field": "sex", "op": "eq", "value": "robot"}}, "filter.value"),
    ({"filter": {"field": "score", "op": "eq", "value": 2**70}}, "filter.value"),
    ({"filter": {"field": "score", "op": "frobnicate", "value": 1}}, "filter.op"),
    (
        {
            "filter": {
                "and": [
                    {"field": "city", "op": "eq", "value": "x"},
                    {"field": "score", "op": "eq", "value": "x"},
                    {"field": "score", "op": "gt", "value": 1},
                ]
            }
        },
        "filter.and[1].value",
    ),
    ({"filter": {"and": [{}, {"field": "x"}]}}, "filter.and[0]"),
    (
        {"filter": {"or": [{"not": {"field": "score", "op": "gt", "value": []}}]}},
        "filter.or[0].not.value",
    ),
    ({"filter": {"detail": "points", "op": "gt", "value": "1", "as": "number"}}, "filter.value"),
    ({"filter": {"detail": "points", "op": "eq", "value": 1, "as": "integer"}}, "filter.as"),
    (
        {"filter": {"event": {"type": "PURCHASE"}, "agg": "avg", "op": "gt", "value": 1}},
        "filter.agg",
    ),
    (
        {"filter": {"event": {"type": "PURCHASE"}, "agg": "last_at", "op": "gt", "value": 1}},
        "filter.value",
    ),
    (
        {"filter": {"event": {"kind": "PURCHASE"}, "agg": "count", "op": "gt", "value": 1}},
        "filter.event.kind",
    ),
    ({"filter": {"event": {"type": "PURCHASE"}, "op": "gt", "value": 1}}, "filter.agg"),
    ({"filter": {"event": {"type": "PURCHASE"}, "agg": "count", "value": 1}}, "filter.op"),
    ({"filter": {"or": [{"type": "planet"}]}}, "filter.or[0].type"),
    ({"include": [{"type": "tag", "tags": []}]}, "include[0].tags"),
    ({"include": [{"type": "tag"}]}, "include[0].tags"),
    ({"include": [{"type": "tag", "tags": ["a"], "match": "some"}]}, "include[0].match"),
    ({"include": [{"type": "planet"}]}, "include[0].type"),
    ({"include": [{"type": "segment", "segments": ["nope"]}]}, "include[0].segments"),
    ({"include": [tag("nope")]}, "include[0].tags[0]"),
    ({"include": [tag("VIP", "nope", match="all")]}, "include[0].tags[1]"),
    ({"include": [{"type": "funnel", "funnel": "Nope"}]}, "include[0].funnel"),
    (
        {"include": [{"type": "funnel", "funnel": "Sales", "stages": ["Won", "Nope"]}]},
        "include[0].stages[1]",
    ),
    ({"exclude": [{"type": "group", "groups": ["g1", "nope"]}]}, "exclude[0].groups[1]"),
    ({"include": [{"type": "mailing", "mailings": [999999999]}]}, "include[0].mailings[0]"),
    ({"filter": {"not": {"type": "tag", "tags": ["nope"]}}}, "filter.not.tags[0]"),
    ({"exclude": [{"type": "mailing", "mailings": ["x"]}]}, "exclude[0].mailings[0]"),
    ({"deleted": "sometimes"}, "deleted"),
    ({"as_of": "tomorrow"}, "as_of"),
    ({"surprise": 1}, "surprise"),
    ({"filter": {"field": "city", "op": "in", "value": ["x"] * 10_001}}, "filter.value"),
]


@pytest.mark.parametrize(("spec", "path"), BAD, ids=[p for _, p in BAD])
def test_bad_spec_is_422_naming_the_part(world, spec, path):
    c = world[0]
    r = c.post("/v1/selections/count", json=spec)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "validation_error"
    assert path in [d["path"] for d in error["details"]], error


def _nest(depth: int) -> dict:
    node: dict = {"field": "score", "op": "gt", "value": 0}
    for _ in range(depth - 1):
        node = {"not": node}
    return node


def test_limits(world):
    c = world[0]
    assert c.post("/v1/selections/count", json={"filter": _nest(64)}).status_code == 200
    r = c.post("/v1/selections/count", json={"filter": _nest(65)})
    assert r.status_code == 422 and "64" in r.json()["error"]["message"]
    deep = '{"filter": ' + '{"not": ' * 100_000 + "{}" + "}" * 100_001
    r = c.post("/v1/selections/count", content=deep, headers={"Content-Type": "application/json"})
    assert r.status_code in (400, 422) and r.json()["error"]["message"]
    wide = {"or": [{"field": "score", "op": "eq", "value": i} for i in range(2001)]}
    assert c.post("/v1/selections/count", json={"filter": wide}).status_code == 422
    wide["or"] = wide["or"][:1999]
    assert c.post("/v1/selections/count", json={"filter": wide}).status_code == 200


def test_segments_crud_and_cycles(world):
    c = world[0]
    r = c.post(
        "/v1/segments",
        json={
            "name": "Loop",
            "selection": {"include": [{"type": "segment", "segments": ["loop"]}]},
        },
    )
    assert r.status_code == 422 and r.json()["error"]["details"][0]["path"].startswith(
        "selection.include[0]"
    )
    a = c.post("/v1/segments", json={"name": "A", "selection": {}}).json()
    b = c.post(
        "/v1/segments",
        json={"name": "B", "selection": {"include": [{"type": "segment", "segments": ["A"]}]}},
    )
    assert b.status_code == 201
    r = c.put(
        f"/v1/segments/{a['id']}",
        json={"name": "A", "selection": {"include": [{"type": "segment", "segments": ["b"]}]}},
    )
    assert r.status_code == 422, r.text
    assert "cycle" in r.json()["error"]["message"] or "itself" in r.json()["error"]["message"]
    assert c.get(f"/v1/segments/{a['id']}").json()["selection"] == {}
    assert c.post("/v1/segments", json={"name": "a", "selection": {}}).status_code == 409
    assert (
        c.post(
            "/v1/segments",
            json={
                "name": "C",
                "selection": {"include": [{"type": "segment", "segments": ["missing"]}]},
            },
        ).status_code
        == 422
    )
    assert c.delete(f"/v1/segments/{b.json()['id']}").status_code == 204
    assert c.get(f"/v1/segments/{b.json()['id']}").status_code == 404
    names = [s["name"] for s in c.get("/v1/segments").json()]
    assert "A" in names and "B" not in names


@pytest.mark.postgres
def test_selectors_use_indexes_on_postgres(db_url, engine):
    """At 100,000 contacts the tag, funnel and event tests are index-driven (index-only
    scans, once VACUUM has set the visibility map, as autovacuum keeps it)."""
    if not db_url.startswith("postgresql"):
        pytest.skip("EXPLAIN shapes are PostgreSQL's")
    import sqlalchemy as sa

    from app.selection.service import prepare
    from tests.bulk import bulk_account

    # Another account of the same size first: as in production, the tables hold more than
    # this account's rows (alone in them, a seq scan of a small link table can rightly win).
    bulk_account(engine, 100_000)
    account_id = bulk_account(engine, 100_000)
    specs = {
        "tag": {"include": [{"type": "tag", "tags": ["t7"]}]},  # 2%: selective
        "funnel": {"include": [{"type": "funnel", "funnel": "Sales", "stages": ["Won"]}]},
        "event": {
            "filter": {
                "event": {"type": "PURCHASE", "within_days": 30},
                "agg": "count",
                "op": "gte",
                "value": 1,
            }
        },
    }
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")
    with engine.begin() as conn:
        for name, raw in specs.items():
            query = prepare(conn, account_id, raw).count()
            sql = str(query.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
            plan = "\n".join(r[0] for r in conn.execute(sa.text("EXPLAIN " + sql)))
            assert "Index" in plan, f"{name}:\n{plan}"


@pytest.mark.postgres
def test_statement_timeout_answers_503(db_url, engine, api):
    if not db_url.startswith("postgresql"):
        pytest.skip("statement_timeout is PostgreSQL's")
    from tests.bulk import bulk_account

    _, key = bulk_account(engine, 50_000, with_key=True)
    c = Scoped(api, key)
    spec = {
        "filter": {
            "or": [
                {"event": {"type": "PURCHASE"}, "agg": "sum", "op": "gt", "value": 10},
                {"field": "first_name", "op": "contains", "value": "me1"},
            ]
        }
    }
    settings = api.app.state.settings
    saved = settings.statement_timeout_s
    settings.statement_timeout_s = 0.001
    try:
        r = api.post("/v1/selections/count", json=spec, headers=c.headers)
    finally:
        settings.statement_timeout_s = saved
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "query_timeout"
    assert c.count(spec) > 0


@pytest.mark.postgres
def test_every_test_kind_runs_in_a_parallel_query(db_url, engine, world):
    """Functions the compiler calls must be PARALLEL SAFE and never fail inside a
    parallel worker (PL/pgSQL exception blocks do: they open subtransactions)."""
    if not db_url.startswith("postgresql"):
        pytest.skip("parallel query is PostgreSQL's")
    from app.selection.service import prepare

    specs = [
        {"filter": {"detail": "points", "op": "gt", "value": 100, "as": "number"}},
        {"filter": {"detail": "since", "op": "lt", "value": "2021-01-01", "as": "date"}},
        {"filter": {"field": "email_domain", "op": "eq", "value": "gmail.com"}},
        {"filter": {"field": "birth_date", "op": "birthday_within_days", "value": 30}},
        {"filter": {"field": "city", "op": "contains", "value": "ł"}},
    ]
    c, ids, _ = world
    with engine.connect() as conn:
        account_id = conn.execute(
            sa.text("SELECT account_id FROM contacts WHERE id = :i"), {"i": ids["a"]}
        ).scalar_one()
    with engine.begin() as conn:
        version = int(conn.exec_driver_sql("SHOW server_version_num").scalar_one())
        knob = "debug_parallel_query" if version >= 160000 else "force_parallel_mode"
        conn.exec_driver_sql(f"SET LOCAL {knob} = on")
        for raw in specs:
            query = prepare(conn, account_id, raw).count()
            assert conn.execute(query).scalar_one() == c.count(raw)


def test_preview_errors_point_inside_selection(client):
    """Preview's body nests the spec under "selection": its 422 paths say so."""
    cases = [
        ({"include": [{"type": "segment", "segments": ["nope"]}]}, "selection.include[0].segments"),
        ({"filter": {"field": "score", "op": "gt", "value": "x"}}, "selection.filter.value"),
    ]
    for selection, path in cases:
        r = client.post("/v1/selections/preview", json={"selection": selection})
        assert r.status_code == 422, r.text
        assert r.json()["error"]["details"][0]["path"] == path


def test_audience_explain_prints_the_sql_and_the_plan(db_url, engine, client, account, tmp_path):
    """`audience explain SPEC.json`: the count query with its values, and on PostgreSQL
    the plan; a bad spec is the same 422 text an API client would get."""
    from typer.testing import CliRunner

    from app.cli import app as cli
    from app.config import get_settings

    client.load({"email": "vip@x.pl", "tags": ["VIP"]})
    spec = tmp_path / "spec.json"
    spec.write_text('{"include": [{"type": "tag", "tags": ["VIP"]}]}')
    get_settings.cache_clear()
    try:
        env = {"AUDIENCE_DATABASE_URL": db_url, "AUDIENCE_REDIS_URL": None}
        args = ["explain", str(spec), "--account", str(account[0])]
        result = CliRunner().invoke(cli, args, env=env)
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    with engine.connect() as conn:
        tag_id = conn.execute(
            sa.text("SELECT id FROM tags WHERE account_id = :a AND name_key = 'vip'"),
            {"a": account[0]},
        ).scalar_one()
    # the name was looked up before compiling: the count names the tag by its id
    assert "FROM contact_tags" in result.output and f"tag_id = {tag_id}" in result.output
    assert "'vip'" not in result.output
    assert ("Seq Scan" in result.output or "Index" in result.output) == db_url.startswith(
        "postgresql"
    )


def test_segments_multiplied_by_reuse_are_refused_at_once(client):
    """Each segment uses the previous one ten times: s4 would expand to 21,110 conditions.
    Saving it is a 422 in milliseconds; the others count as usual."""
    import time

    client.load({"email": "a@x.pl", "tags": ["a"]})
    client.post("/v1/segments", json={"name": "s0", "selection": {"include": [tag("a")]}})
    for i in range(1, 5):
        uses = [{"type": "segment", "segments": [f"s{i - 1}"]}] * 10
        started = time.monotonic()
        r = client.post("/v1/segments", json={"name": f"s{i}", "selection": {"include": uses}})
        assert time.monotonic() - started < 2
        assert r.status_code == (201 if i < 4 else 422), r.text
    assert "expands to more than" in r.json()["error"]["details"][0]["message"]
    assert client.count({"include": [{"type": "segment", "segments": ["s3"]}]}) == 1


def test_long_in_lists_are_one_parameter_each(world):
    """Two lists of 10,000 values (SQLite stops at 32,766 parameters a statement, and
    the statement text no longer grows with them); past 20,000 values in all, a 422."""

    def spec(emails, scores):
        return {
            "filter": {
                "and": [
                    {"field": "email", "op": "in", "value": emails},
                    {"field": "score", "op": "not_in", "value": scores},
                ]
            }
        }

    small = spec(["ANNA@shop.pl", "bob@shop.pl"], [5])
    big = spec(
        [f"nobody{i}@x.pl" for i in range(9_998)] + ["ANNA@shop.pl", "bob@shop.pl"],
        list(range(10_000, 19_999)) + [5],
    )
    assert _names(world, big) == _names(world, small) != set()
    big["filter"]["and"].append({"field": "city", "op": "in", "value": ["x"] * 1_000})
    r = world[0].post("/v1/selections/count", json=big)
    assert r.status_code == 422 and "20000 values" in r.json()["error"]["message"], r.text


def test_unknown_names_offer_the_closest(world):
    """A typo never silently selects or excludes nobody: a 422 at the name, offering the
    closest existing names; inside a saved segment too, and when saving one."""
    c = world[0]
    cases = [
        (
            {"exclude": [{"type": "group", "groups": ["G1x"]}]},
            "exclude[0].groups[0]",
            "no group named 'G1x'; did you mean 'G1'?",
        ),
        (
            {"include": [tag("VIPS")]},
            "include[0].tags[0]",
            "no tag named 'VIPS'; did you mean 'VIP'?",
        ),
        (
            {"include": [{"type": "funnel", "funnel": "Sale"}]},
            "include[0].funnel",
            "no funnel named 'Sale'; did you mean 'Sales'?",
        ),
        (
            {"include": [{"type": "funnel", "funnel": "sales", "stages": ["Wonn"]}]},
            "include[0].stages[0]",
            "no stage named 'Wonn' in funnel 'sales'; did you mean 'Won'?",
        ),
        ({"include": [tag("zzzzzz")]}, "include[0].tags[0]", "no tag named 'zzzzzz'"),
    ]
    for spec, path, message in cases:
        r = c.post("/v1/selections/count", json=spec)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["details"] == [{"path": path, "message": message}]
    r = c.post("/v1/segments", json={"name": "typo", "selection": {"include": [tag("VIPS")]}})
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["path"] == "selection.include[0].tags[0]"
    r = c.post(
        "/v1/jobs", json={"selection": {"include": [tag("VIPS")]}, "actions": [{"type": "delete"}]}
    )
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["path"] == "selection.include[0].tags[0]"
