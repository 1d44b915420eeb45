"""Loading data: contacts, funnels, mailings, events, groups; auth and isolation."""

import pytest

from tests.conftest import Scoped


def test_upsert_creates_then_updates_only_given_fields(client):
    assert (
        client.load(
            {
                "email": "Anna.Nowak@Example.com",
                "first_name": "Anna",
                "city": "Łódź",
                "country": "pl",
                "birth_date": "1990-02-28",
                "score": 5,
                "state": "customer",
                "email_opt_in": True,
                "tags": ["VIP", "news"],
                "details": {"plan": "gold"},
                "owners": ["Sales@Shop.com"],
                "groups": ["Webinar"],
            }
        ).items()
        >= {"created": 1, "updated": 0}.items()
    )
    (cid,) = client.ids("anna.nowak@example.com")
    again = client.load(
        {
            "email": "Anna.Nowak@example.com",
            "last_name": "Nowak",
            "tags": ["vip", "new"],
            "details": {"size": "M"},
        },
        {"email": "jan@example.com"},
    )
    (jan,) = client.ids("jan@example.com")
    assert again == {
        "created": 1,
        "updated": 1,
        "ids": {"anna.nowak@example.com": cid, "jan@example.com": jan},
    }
    c = client.get(f"/v1/contacts/{cid}").json()
    assert c["email"] == "anna.nowak@example.com"
    assert (c["first_name"], c["last_name"], c["city"], c["country"]) == (
        "Anna",
        "Nowak",
        "Łódź",
        "PL",
    )
    assert c["birth_date"] == "1990-02-28"
    assert (c["score"], c["state"], c["email_opt_in"], c["sex"]) == (5, "CUSTOMER", True, "unknown")
    assert sorted(c["tags"]) == ["VIP", "new", "news"]  # 'vip' is the same tag as 'VIP'
    assert c["details"] == {"plan": "gold", "size": "M"}
    assert c["owners"] == ["sales@shop.com"]
    assert c["groups"] == ["Webinar"]
    assert c["deleted"] is False and c["email_valid"] is True
    assert c["updated_at"] >= c["created_at"]


def test_defaults_and_created_at_import(client):
    client.load({"email": "x@y.com", "created_at": "2020-01-02T03:04:05Z"})
    (cid,) = client.ids("x@y.com")
    c = client.get(f"/v1/contacts/{cid}").json()
    assert (c["sex"], c["state"], c["score"], c["email_opt_in"], c["phone_opt_in"]) == (
        "unknown",
        "PROSPECT",
        0,
        False,
        False,
    )
    assert c["created_at"].startswith("2020-01-02T03:04:05")
    assert c["tags"] == [] and c["details"] == {} and c["funnels"] == {}


def test_funnels_set_stage_and_must_exist(client):
    r = client.post("/v1/funnels", json={"name": "Sales", "stages": ["Lead", "Won"]})
    assert r.status_code == 201 and r.json()["id"] > 0
    client.load({"email": "a@b.co", "funnels": {"sales": "lead"}})
    client.load({"email": "a@b.co", "funnels": {"SALES": "Won"}})
    (cid,) = client.ids("a@b.co")
    assert client.get(f"/v1/contacts/{cid}").json()["funnels"] == {"Sales": "Won"}
    r = client.post(
        "/v1/contacts",
        json={"contacts": [{"email": "n@b.co"}, {"email": "m@b.co", "funnels": {"Sales": "Nope"}}]},
    )
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["path"] == "contacts[1].funnels.Sales"
    r = client.post(
        "/v1/contacts", json={"contacts": [{"email": "m@b.co", "funnels": {"Other": "Lead"}}]}
    )
    assert r.status_code == 422
    assert client.count({"filter": {"field": "email", "op": "eq", "value": "n@b.co"}}) == 0
    assert client.post("/v1/funnels", json={"name": "sales", "stages": ["x"]}).status_code == 409


BAD_ENTRIES = {
    "e-mail without @": ({"email": "no-at-sign"}, "contacts[1].email"),
    "e-mail with @@": ({"email": "two@@x.com"}, "contacts[1].email"),
    "e-mail with a space": ({"email": "sp ace@x.com"}, "contacts[1].email"),
    "e-mail too long": ({"email": "a" * 250 + "@x.com"}, "contacts[1].email"),
    "February 30th": ({"email": "a@x.com", "birth_date": "1990-02-30"}, "contacts[1].birth_date"),
    "unknown sex": ({"email": "a@x.com", "sex": "robot"}, "contacts[1].sex"),
    "unknown state": ({"email": "a@x.com", "state": "LOST"}, "contacts[1].state"),
    "score not a number": ({"email": "a@x.com", "score": "many"}, "contacts[1].score"),
    "score past 64 bits": ({"email": "a@x.com", "score": 2**64}, "contacts[1].score"),
    "three-letter country": ({"email": "a@x.com", "country": "POL"}, "contacts[1].country"),
    "empty tag": ({"email": "a@x.com", "tags": [""]}, "contacts[1].tags[0]"),
    "id given": ({"email": "a@x.com", "id": 5}, "contacts[1].id"),
    "deleted given": ({"email": "a@x.com", "deleted": True}, "contacts[1].deleted"),
    "opt-in not a boolean": (
        {"email": "a@x.com", "email_opt_in": "maybe"},
        "contacts[1].email_opt_in",
    ),
    "no e-mail": ({"first_name": "NoEmail"}, "contacts[1].email"),
    "owner not an e-mail": (
        {"email": "a@x.com", "owners": ["not-an-email"]},
        "contacts[1].owners[0]",
    ),
}


@pytest.mark.parametrize(("entry", "path"), BAD_ENTRIES.values(), ids=BAD_ENTRIES.keys())
def test_bad_entry_rejects_whole_batch_naming_it(client, entry, path):
    r = client.post("/v1/contacts", json={"contacts": [{"email": "good@x.com"}, entry]})
    assert r.status_code == 422, r.text
    body = r.json()["error"]
    assert body["code"] == "validation_error"
    assert path in [d["path"] for d in body["details"]], body
    assert client.count({}) == 0  # nothing stored


def test_batch_limits(client):
    assert client.post("/v1/contacts", json={"contacts": []}).status_code == 422
    r = client.post(
        "/v1/contacts", json={"contacts": [{"email": f"u{i}@x.com"} for i in range(10_001)]}
    )
    assert r.status_code == 422
    assert (
        client.post(
            "/v1/contacts", content=b"{not json", headers={"Content-Type": "application/json"}
        ).status_code
        == 422
    )


def test_big_batch_is_one_request(client):
    batch = [
        {
            "email": f"user{i}@example.com",
            "tags": [f"t{i % 7}"],
            "score": i,
            "details": {"n": str(i)},
        }
        for i in range(3000)
    ]
    assert client.load(*batch).items() >= {"created": 3000, "updated": 0}.items()
    assert client.load(*batch).items() >= {"created": 0, "updated": 3000}.items()
    assert client.count({"include": [{"type": "tag", "tags": ["T3"]}]}) == 429


def test_duplicate_emails_in_one_request_merge(client):
    assert (
        client.load(
            {"email": "d@x.com", "city": "A", "tags": ["a"]},
            {"email": "D@x.com", "city": "B", "tags": ["b"]},
        ).items()
        >= {"created": 1, "updated": 0}.items()
    )
    (cid,) = client.ids("d@x.com")
    c = client.get(f"/v1/contacts/{cid}").json()
    assert c["city"] == "B" and sorted(c["tags"]) == ["a", "b"]


def test_mailings_and_events_need_known_contacts(client):
    client.load({"email": "a@x.com"}, {"email": "b@x.com"})
    r = client.post(
        "/v1/mailings",
        json={
            "name": "Nov",
            "sent_at": "2026-11-01T10:00:00Z",
            "recipients": [{"email": "a@x.com"}, {"email": "zzz@x.com"}],
        },
    )
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["path"] == "recipients[1].email"
    r = client.post(
        "/v1/mailings",
        json={
            "name": "Nov",
            "sent_at": "2026-11-01T10:00:00Z",
            "recipients": [
                {"email": "a@x.com", "opened_at": "2026-11-01T11:00:00Z"},
                {"email": "B@x.com", "bounced": True},
            ],
        },
    )
    assert r.status_code == 201
    mailing = r.json()
    assert mailing["id"] > 0 and mailing["recipients"] == 2
    assert client.get(f"/v1/mailings/{mailing['id']}").json()["name"] == "Nov"
    r = client.post(
        "/v1/events",
        json={
            "events": [
                {
                    "email": "a@x.com",
                    "type": "PURCHASE",
                    "occurred_at": "2026-11-20T10:00:00Z",
                    "value": 10.5,
                    "products": "Shoes",
                    "details": {"k": "v"},
                },
                {"email": "nobody@x.com", "type": "VISIT", "occurred_at": "2026-11-20T10:00:00Z"},
            ]
        },
    )
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["path"] == "events[1].email"
    r = client.post(
        "/v1/events",
        json={
            "events": [
                {
                    "email": "a@x.com",
                    "type": "PURCHASE",
                    "occurred_at": "2026-11-20T10:00:00Z",
                    "value": 10.5,
                }
            ]
        },
    )
    assert r.status_code == 200 and r.json() == {"created": 1}
    r = client.post(
        "/v1/events",
        json={
            "events": [
                {"email": "a@x.com", "type": "X" * 65, "occurred_at": "2026-11-20T10:00:00Z"}
            ]
        },
    )
    assert r.status_code == 422 and r.json()["error"]["details"][0]["path"] == "events[0].type"


def test_groups_crud(client):
    r = client.post("/v1/groups", json={"name": "Blacklist"})
    assert r.status_code == 201
    gid = r.json()["id"]
    assert client.post("/v1/groups", json={"name": "blacklist"}).status_code == 409
    client.load({"email": "a@x.com", "groups": ["BLACKLIST"]})
    assert client.get(f"/v1/groups/{gid}").json()["members"] == 1
    assert client.put(f"/v1/groups/{gid}", json={"name": "Blocked"}).json()["name"] == "Blocked"
    assert [g["name"] for g in client.get("/v1/groups").json()] == ["Blocked"]
    assert client.delete(f"/v1/groups/{gid}").status_code == 204
    assert client.get(f"/v1/groups/{gid}").status_code == 404


def test_auth(api, client):
    client.load({"email": "a@x.com"})
    assert api.post("/v1/selections/count", json={}).status_code == 401
    r = api.post("/v1/selections/count", json={}, headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    assert api.get("/healthz").status_code == 200


def test_other_accounts_see_nothing(api, engine, client):
    from app.auth import create_account

    client.load({"email": "secret@a.com", "tags": ["VIP"]})
    (cid,) = client.ids("secret@a.com")
    gid = client.post("/v1/groups", json={"name": "G"}).json()["id"]
    with engine.begin() as conn:
        _, key = create_account(conn, "other")
    other = Scoped(api, key)
    assert other.get(f"/v1/contacts/{cid}").status_code == 404
    assert other.get(f"/v1/groups/{gid}").status_code == 404
    assert other.count({}) == 0
    # A's tag is unknown in B: a 422 at the name, offering nothing of A's
    r = other.post("/v1/selections/count", json={"include": [{"type": "tag", "tags": ["VIP"]}]})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"] == [
        {"path": "include[0].tags[0]", "message": "no tag named 'VIP'"}
    ]
    # the same e-mail is a different contact in another account
    assert other.load({"email": "secret@a.com"}).items() >= {"created": 1, "updated": 0}.items()
    assert client.count({}) == 1


def test_error_shape_for_unknown_route_and_method(client):
    r = client.get("/v1/nothing-here")
    assert r.status_code == 404 and set(r.json()["error"]) >= {"code", "message", "details"}
    r = client.request("DELETE", "/v1/selections/count")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
