"""Listing and pickers: contacts paged, found by e-mail, searched by prefix; tags, owners,
event types and detail names with their counts, by name, prefix-filtered and paged;
POST /v1/tags; funnels count the contacts at each stage."""

from app.auth import create_account
from tests.conftest import Scoped


def world(client):
    client.load(
        {
            "email": "anna@x.pl",
            "first_name": "Anna",
            "last_name": "Nowak",
            "tags": ["VIP", "b"],
            "owners": ["rep@x.com"],
            "details": {"plan": "gold"},
        },
        {
            "email": "Jan@X.pl",
            "first_name": "Jan",
            "tags": ["VIP"],
            "details": {"plan": "x", "ltv": "5"},
        },
        {"email": "kim@y.pl", "last_name": "Annan", "owners": ["rep@x.com", "boss@x.com"]},
        {"email": "a_b%@z.pl"},
    )
    client.post(
        "/v1/events",
        json={
            "events": [
                {"email": "anna@x.pl", "type": "PURCHASE", "occurred_at": "2026-11-01T10:00:00Z"},
                {"email": "jan@x.pl", "type": "PURCHASE", "occurred_at": "2026-11-02T10:00:00Z"},
                {"email": "jan@x.pl", "type": "VISIT", "occurred_at": "2026-10-02T10:00:00Z"},
            ]
        },
    )
    return client.ids("anna@x.pl", "jan@x.pl", "kim@y.pl", "a_b%@z.pl")


def test_contacts_are_listed_found_and_searched(client):
    anna, jan, kim, odd = world(client)
    page = client.get("/v1/contacts?limit=3").json()
    assert [c["id"] for c in page["contacts"]] == [anna, jan, kim] and page["next_after"] == kim
    rest = client.get(f"/v1/contacts?after={kim}").json()
    assert [c["id"] for c in rest["contacts"]] == [odd] and rest["next_after"] is None
    assert client.get("/v1/contacts?email=JAN@x.pl").json()["contacts"][0]["tags"] == ["VIP"]
    assert client.get("/v1/contacts?email=nobody@x.pl").json()["contacts"] == []
    found = client.get("/v1/contacts?q=ann").json()["contacts"]
    assert [c["id"] for c in found] == [anna, kim]  # e-mail/first name, and a last name
    assert [c["id"] for c in client.get("/v1/contacts?q=a_b%25").json()["contacts"]] == [odd]
    assert client.get("/v1/contacts?q=a%25").json()["contacts"] == []  # % is no wildcard
    assert client.get("/v1/contacts?limit=0").status_code == 422
    assert client.get("/v1/contacts?limit=1001").status_code == 422


def test_pickers(client):
    world(client)
    tags = client.get("/v1/tags").json()
    assert tags == {
        "tags": [{"name": "VIP", "contacts": 2}, {"name": "b", "contacts": 1}],
        "next_after": None,
    }
    first = client.get("/v1/tags?limit=1").json()
    assert first["tags"] == [{"name": "VIP", "contacts": 2}] and first["next_after"] == "VIP"
    assert client.get("/v1/tags?limit=1&after=VIP").json()["tags"] == [{"name": "b", "contacts": 1}]
    assert client.get("/v1/tags?prefix=V").json()["tags"] == [{"name": "VIP", "contacts": 2}]
    owners = client.get("/v1/owners").json()["owners"]
    assert owners == [{"email": "boss@x.com", "contacts": 1}, {"email": "rep@x.com", "contacts": 2}]
    types = client.get("/v1/event-types").json()["event_types"]
    assert [(e["type"], e["events"]) for e in types] == [("PURCHASE", 2), ("VISIT", 1)]
    assert types[0]["last_at"] == "2026-11-02T10:00:00Z"
    details = client.get("/v1/details?prefix=p").json()
    assert details == {"details": [{"name": "plan", "contacts": 2}], "next_after": None}


def test_create_tag(client):
    r = client.post("/v1/tags", json={"name": "Black Friday"})
    assert r.status_code == 201 and r.json()["name"] == "Black Friday" and r.json()["contacts"] == 0
    again = client.post("/v1/tags", json={"name": "black friday"})
    assert again.status_code == 200 and again.json()["id"] == r.json()["id"]
    # a segment may name it now
    r = client.post(
        "/v1/selections/count", json={"include": [{"type": "tag", "tags": ["BLACK FRIDAY"]}]}
    )
    assert r.status_code == 200 and r.json() == {"total": 0}
    assert client.post("/v1/tags", json={"name": ""}).status_code == 422


def test_preview_pages_and_picks_fields(client):
    anna, jan, kim, odd = world(client)
    first = client.post("/v1/selections/preview", json={"selection": {}, "limit": 2}).json()
    assert first["total"] == 4 and [c["id"] for c in first["contacts"]] == [anna, jan]
    assert first["next_after"] == jan and "tags" in first["contacts"][0]
    body = {"selection": {}, "limit": 2, "after": jan, "fields": ["email", "detail:plan"]}
    rest = client.post("/v1/selections/preview", json=body).json()
    assert rest == {
        "total": 4,
        "contacts": [
            {"email": "kim@y.pl", "detail:plan": None},
            {"email": "a_b%@z.pl", "detail:plan": None},
        ],
        "next_after": None,
    }
    none = client.post("/v1/selections/preview", json={"selection": {}, "limit": 0}).json()
    assert none == {"total": 4, "contacts": [], "next_after": None}
    r = client.post("/v1/selections/preview", json={"selection": {}, "fields": ["nope"]})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["path"] == "fields[0]"


def test_funnels_and_groups_count_their_contacts(client, api, engine):
    with engine.begin() as conn:
        other_client = Scoped(api, create_account(conn, "other")[1])
    made = client.post("/v1/funnels", json={"name": "Sales", "stages": ["Lead", "Won"]}).json()
    assert made["contacts"] == {"Lead": 0, "Won": 0}
    client.load(
        {"email": "a@x.pl", "funnels": {"Sales": "Lead"}},
        {"email": "b@x.pl", "funnels": {"Sales": "lead"}},
        {"email": "c@x.pl", "funnels": {"Sales": "Won"}},
        {"email": "d@x.pl"},
    )
    # another account's contacts at a stage of its own funnel of the same name count not
    other_client.post("/v1/funnels", json={"name": "Sales", "stages": ["Lead", "Won"]})
    other_client.load({"email": "z@x.pl", "funnels": {"Sales": "Lead"}})
    (funnel,) = client.get("/v1/funnels").json()
    assert funnel["stages"] == ["Lead", "Won"] and funnel["contacts"] == {"Lead": 2, "Won": 1}
    one = client.get(f"/v1/funnels/{funnel['id']}").json()
    assert one["contacts"] == {"Lead": 2, "Won": 1}
    group = client.post("/v1/groups", json={"name": "Partners"}).json()
    assert group["members"] == 0
