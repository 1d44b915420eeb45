"""Tenant isolation: account B walks every route under /v1 with account A's ids, names
and selections, and runs jobs whose selections would match A's data; nothing crosses.

The two accounts hold look-alike data (the same tag, group, funnel, stage, mailing,
segment, rule, detail and owner names, and the same contact e-mails), and A has things
of its own. Everything is built through the public API. Each phase (a subtest, with an
account B of its own) ends by proving A's data unchanged, byte for byte, as A sees it.

Runs once on the app's own engine and, on PostgreSQL, once more on an engine connected
as `audience_app`, so row-level security is active under the code's own filters."""

import csv
import io
import uuid
from dataclasses import dataclass, field

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from app.actions.schemas import ACTION_MODELS
from app.auth import create_account
from tests.conftest import Scoped, app_role_engine

SHARED = ["anna@example.com", "ben@example.com", "cleo@example.com"]
A_ONLY = ["ada@a.example", "abe@a.example", "amy@a.example", "art@a.example", "ava@a.example"]
B_ONLY = [f"b{i}@b.example" for i in range(1, 7)]
A_DELETED = "ava@a.example"
A_LIVE = len(SHARED) + len(A_ONLY) - 1  # 7
B_LIVE = len(SHARED) + len(B_ONLY)  # 9
SENT = "2026-11-02T09:00:00Z"
LINK = "https://shop.example/l/{token}"
GHOST_ID = 2**53  # an id no account has
GHOST_TOKEN = "x" * 32
DELETE = [{"type": "delete"}]
DRY = {"dry_run": "true"}

# A's queued job, submitted with an Idempotency-Key that B then reuses.
NIGHTLY = {
    "selection": {"include": [{"type": "tag", "tags": ["VIP"]}]},
    "actions": [{"type": "add_tags", "tags": ["nightly"]}],
    "run_at": "2099-01-01T00:00:00Z",
}
NIGHTLY_KEY = "nightly-run"

A_DATA = {
    "funnels": {"Sales": ["Lead", "Offer", "Negotiation", "Won"], "A Pipeline": ["A1", "A2"]},
    "groups": ["Blacklist", "A Friends"],
    "contacts": [
        {
            "email": "anna@example.com",
            "first_name": "Anna",
            "city": "Łódź",
            "score": 100,
            "tags": ["VIP", "a-secret"],
            "groups": ["Blacklist", "A Friends"],
            "details": {"plan": "gold", "a_detail": "x"},
            "owners": ["owner@shop.com", "a-owner@shop.com"],
            "funnels": {"Sales": "Negotiation", "A Pipeline": "A1"},
        },
        {
            "email": "ben@example.com",
            "first_name": "Ben",
            "score": 100,
            "tags": ["VIP", "Newsletter"],
            "groups": ["Blacklist"],
            "details": {"plan": "gold"},
            "owners": ["owner@shop.com"],
            "funnels": {"Sales": "Lead"},
        },
        {"email": "cleo@example.com", "first_name": "Cleo", "tags": ["Newsletter"]},
        {
            "email": "ada@a.example",
            "first_name": "Ada",
            "tags": ["VIP", "a-secret"],
            "groups": ["A Friends"],
            "details": {"a_detail": "y"},
            "owners": ["a-owner@shop.com"],
            "funnels": {"A Pipeline": "A2"},
        },
        {"email": "abe@a.example", "tags": ["Newsletter"]},
        {"email": "amy@a.example", "tags": ["Newsletter"], "state": "CUSTOMER"},
        {"email": "art@a.example", "sex": "male"},
        {"email": "ava@a.example", "tags": ["a-secret"]},
    ],
    "recipients": [
        {"email": "anna@example.com", "opened_at": SENT, "clicked_at": SENT},
        {"email": "ben@example.com", "bounced": True},
        {"email": "ada@a.example"},
    ],
    "events": [
        {"email": "anna@example.com", "type": "PURCHASE", "occurred_at": SENT, "value": 500},
        {"email": "ada@a.example", "type": "A_EVENT", "occurred_at": SENT, "value": 1},
    ],
    "segments": {
        "Active": {"include": [{"type": "tag", "tags": ["VIP"]}]},
        "A Only Segment": {"include": [{"type": "tag", "tags": ["a-secret"]}]},
    },
    "rules": {
        "Welcome": {
            "condition": {"type": "tag", "tags": ["VIP"]},
            "actions": [{"type": "add_tags", "tags": ["welcomed-a"]}],
        },
        "A Only Rule": {"actions": [{"type": "set_score", "mode": "set", "value": 999}]},
    },
}

B_DATA = {
    "funnels": {"Sales": ["Lead", "Offer", "Won"]},
    "groups": ["Blacklist", "B Team"],
    "contacts": [
        {
            "email": "anna@example.com",
            "first_name": "Anna",
            "score": 1,
            "tags": ["VIP"],
            "groups": ["Blacklist"],
            "details": {"plan": "silver"},
            "owners": ["owner@shop.com"],
            "funnels": {"Sales": "Lead"},
        },
        {
            "email": "ben@example.com",
            "first_name": "Ben",
            "score": 1,
            "tags": ["Newsletter"],
            "funnels": {"Sales": "Offer"},
        },
        {
            "email": "cleo@example.com",
            "tags": ["VIP", "Newsletter"],
            "groups": ["Blacklist"],
            "details": {"plan": "gold"},
        },
        *({"email": e, "tags": ["Newsletter"]} for e in B_ONLY[:3]),
        *({"email": e, "groups": ["B Team"]} for e in B_ONLY[3:]),
    ],
    "recipients": [
        {"email": "anna@example.com"},
        {"email": "cleo@example.com", "opened_at": SENT},
    ],
    "events": [
        {"email": "anna@example.com", "type": "PURCHASE", "occurred_at": SENT, "value": 5},
        {"email": "cleo@example.com", "type": "VISIT", "occurred_at": SENT},
    ],
    "segments": {"Active": {"include": [{"type": "tag", "tags": ["Newsletter"]}]}},
    "rules": {
        "Welcome": {
            "condition": {"type": "tag", "tags": ["VIP"]},
            "actions": [
                {"type": "add_tags", "tags": ["welcomed"]},
                {"type": "set_score", "mode": "add", "value": 1},
            ],
        }
    },
}


@dataclass
class Account:
    """One account's client and the ids of what it built."""

    client: Scoped
    contacts: dict[str, int] = field(default_factory=dict)
    funnels: dict[str, int] = field(default_factory=dict)
    groups: dict[str, int] = field(default_factory=dict)
    mailing: int = 0
    segments: dict[str, int] = field(default_factory=dict)
    rules: dict[str, int] = field(default_factory=dict)
    jobs: dict[str, int] = field(default_factory=dict)
    token: str = ""


@dataclass
class World:
    """Account A, built once; a new account B a phase (`new_b`)."""

    app: TestClient
    engine: Engine  # a superuser's, to create accounts
    a: Account
    a_before: dict = field(default_factory=dict)

    def new_b(self) -> Account:
        b = build(Scoped(self.app, new_key(self.engine, "B")), B_DATA)
        coupons = [{"type": "generate_coupons", "name": "XMAS", "length": 8}]
        b.jobs["coupons"] = finish(b.client, submit(b.client, {"actions": coupons}))["id"]
        assert b.client.count({}) == B_LIVE
        return b


def new_key(engine: Engine, name: str) -> str:
    with engine.begin() as conn:
        return create_account(conn, f"iso-{name}-{uuid.uuid4().hex[:6]}")[1]


def build(client: Scoped, data: dict) -> Account:
    acc = Account(client)
    for name, stages in data["funnels"].items():
        r = client.post("/v1/funnels", json={"name": name, "stages": stages})
        assert r.status_code == 201, r.text
        acc.funnels[name] = r.json()["id"]
    for name in data["groups"]:
        r = client.post("/v1/groups", json={"name": name})
        assert r.status_code == 201, r.text
        acc.groups[name] = r.json()["id"]
    client.load(*data["contacts"])
    emails = [c["email"] for c in data["contacts"]]
    acc.contacts = dict(zip(emails, client.ids(*emails), strict=True))
    body = {"name": "November", "sent_at": SENT, "recipients": data["recipients"]}
    r = client.post("/v1/mailings", json=body)
    assert r.status_code == 201, r.text
    acc.mailing = r.json()["id"]
    r = client.post("/v1/events", json={"events": data["events"]})
    assert r.status_code == 200, r.text
    for name, selection in data["segments"].items():
        r = client.post("/v1/segments", json={"name": name, "selection": selection})
        assert r.status_code == 201, r.text
        acc.segments[name] = r.json()["id"]
    for name, rule in data["rules"].items():
        r = client.post("/v1/rules", json={"name": name, **rule})
        assert r.status_code == 201, r.text
        acc.rules[name] = r.json()["id"]
    return acc


def submit(client: Scoped, body: dict, **kw) -> int:
    r = client.post("/v1/jobs", json=body, **kw)
    assert r.status_code == 202, r.text
    return r.json()["id"]


def finish(client: Scoped, job_id: int) -> dict:
    job = client.wait(job_id)
    assert job["status"] == "succeeded", job
    return job


def output(client: Scoped, job_id: int) -> list[dict]:
    r = client.get(f"/v1/jobs/{job_id}/output")
    assert r.status_code == 200, r.text
    return list(csv.DictReader(io.StringIO(r.text)))


# --- account A, and what it sees -----------------------------------------------------------


@pytest.fixture(params=["app", pytest.param("audience_app", marks=pytest.mark.postgres)])
def app_engine(request, db_url):
    """None: the app's own engine. An engine connected as audience_app: row-level
    security on."""
    if request.param == "app":
        yield None
        return
    with app_role_engine(db_url, pool_size=4) as engine:
        yield engine


@pytest.fixture
def world(app_engine, engine, solo_app) -> World:
    """Account A on an app whose job runner uses `app_engine`: A's data, A's jobs
    (coupons and links for all, a soft delete, a queued job), and A's view of it all."""
    app = solo_app(app_engine=app_engine)
    a = build(Scoped(app, new_key(engine, "A")), A_DATA)
    output_job = {  # the soft-deleted contact included, whichever job runs first
        "selection": {"deleted": "include"},
        "actions": [
            {"type": "generate_coupons", "name": "XMAS", "length": 8},
            {"type": "generate_links", "url": LINK},
        ],
    }
    deleted = {"filter": {"field": "email", "op": "eq", "value": A_DELETED}}
    a.jobs = {
        "output": submit(a.client, output_job),
        "delete": submit(a.client, {"selection": deleted, "actions": DELETE}),
        "queued": submit(a.client, NIGHTLY, headers={"Idempotency-Key": NIGHTLY_KEY}),
    }
    finish(a.client, a.jobs["output"])
    finish(a.client, a.jobs["delete"])
    rows = output(a.client, a.jobs["output"])
    links = [row["value"] for row in rows if row["value"].startswith("https://")]
    assert len(links) == A_LIVE + 1
    a.token = links[0].rsplit("/", 1)[1]
    assert a.client.get(f"/v1/links/{a.token}").status_code == 200
    w = World(app=app, engine=engine, a=a)
    w.a_before = view(a)
    assert w.a_before["count all"] == A_LIVE and w.a_before["count names"] == 2
    return w


def a_selections(a: Account) -> dict[str, dict]:
    """Selections naming A's things, counted by A before and after: A's names still
    resolve to A's data, and what only a selection shows (mailing opens, events) stays."""
    return {
        "all": {},
        "deleted": {"deleted": "only"},
        "opened": {"include": [{"type": "mailing", "mailings": [a.mailing], "event": "opened"}]},
        "segments": {"include": [{"type": "segment", "segments": ["A Only Segment", "Active"]}]},
        "events": {
            "filter": {"event": {"type": "A_EVENT"}, "agg": "count", "op": "gte", "value": 1}
        },
        "names": {
            "filter": {
                "and": [
                    {"type": "tag", "tags": ["vip"]},
                    {"type": "group", "groups": ["A Friends"]},
                    {"type": "funnel", "funnel": "A Pipeline"},
                    {"field": "owner", "op": "eq", "value": "a-owner@shop.com"},
                    {"detail": "a_detail", "op": "is_not_empty"},
                ]
            }
        },
    }


def view(a: Account) -> dict:
    """Everything A can see of its own data: response bodies, byte for byte, and counts.
    (Each list carries every field of its objects; each contact, all of its own.)"""
    urls = [f"/v1/contacts/{i}" for i in a.contacts.values()]
    urls += ["/v1/funnels", "/v1/groups", "/v1/mailings", "/v1/segments", "/v1/rules"]
    urls += ["/v1/jobs", f"/v1/jobs/{a.jobs['output']}/output", f"/v1/links/{a.token}"]
    seen: dict = {}
    for url in urls:
        r = a.client.get(url)
        seen[url] = (r.status_code, r.content)
    for name, spec in a_selections(a).items():
        seen[f"count {name}"] = a.client.count(spec)
    return seen


def assert_a_unchanged(w: World) -> None:
    after = view(w.a)
    changed = [k for k in w.a_before if after[k] != w.a_before[k]]
    assert not changed, {k: (w.a_before[k], after[k]) for k in changed}


# --- the suite ----------------------------------------------------------------------------


def test_nothing_crosses_accounts(world, subtests):
    """Each phase with a new account B; after each, A's data is as it was."""
    for phase in (
        b_walks_every_route_with_a_ids_and_names,
        b_selections_that_would_match_a_select_only_b,
        b_jobs_change_only_b,
    ):
        with subtests.test(msg=phase.__name__):
            phase(world, world.new_b())
        with subtests.test(msg=f"{phase.__name__}: A unchanged"):
            assert_a_unchanged(world)


# --- walking the routes -------------------------------------------------------------------


def api_routes(app) -> set[tuple[str, str]]:
    """(method, path template) of every route under /v1: the app's routes (into included
    routers, which recent FastAPI keeps as branches) and its OpenAPI paths."""
    found: set[tuple[str, str]] = set()

    def walk(routes, prefix: str) -> None:
        for route in routes:
            branch = getattr(route, "original_router", None)
            if branch is not None:
                context = getattr(route, "include_context", None)
                walk(branch.routes, prefix + getattr(context, "prefix", ""))
            elif isinstance(route, APIRoute):
                found.update((m, prefix + route.path) for m in route.methods - {"HEAD"})

    walk(app.routes, "")
    for path, operations in app.openapi()["paths"].items():
        found.update((method.upper(), path) for method in operations)
    return {(m, p) for m, p in found if p.startswith("/v1/")}


def assert_error(r, status: int, code: str | None = None, path: str | None = None) -> dict:
    """The status, and a body in the contract's error shape."""
    assert r.status_code == status, (r.request.method, str(r.request.url), r.text)
    body = r.json()
    assert list(body) == ["error"], body
    error = body["error"]
    assert isinstance(error["code"], str) and error["code"], body
    assert isinstance(error["message"], str) and error["message"], body
    assert isinstance(error["details"], list), body
    for detail in error["details"]:
        assert set(detail) == {"path", "message"}, body
        assert isinstance(detail["path"], str) and isinstance(detail["message"], str), body
    if code is not None:
        assert error["code"] == code, body
    if path is not None:
        assert path in [d["path"] for d in error["details"]], body
    return error


class Walk:
    """B's requests, each with its route template recorded; the first request on a route
    is also sent with no key and with a wrong key (401 both)."""

    def __init__(self, client: Scoped, app: TestClient):
        self.client = client
        self.walked: set[tuple[str, str]] = set()
        self.strangers = [Scoped(app, "aud_" + "0" * 43), Scoped(app, "")]
        self.strangers[1].headers = {}

    def __call__(self, method, route, status, *, args=None, code=None, path=None, **kw):
        url = route.format(**(args or {}))
        r = self.client.request(method, url, **kw)
        if status >= 400:
            assert_error(r, status, code, path)
        else:
            assert r.status_code == status, (method, url, r.text)
        if (method, route) not in self.walked:
            self.walked.add((method, route))
            kw.pop("headers", None)
            for stranger in self.strangers:
                assert_error(stranger.request(method, url, **kw), 401, "unauthorized")
        return r

    def missing(self, method, route, **args):
        """404 for A's id; told apart from an id nobody has (asked once a route) by
        nothing but the id."""
        name, value = next(iter(args.items()))
        kw = {"json": args.pop("json")} if "json" in args else {}
        first = (method, route) not in self.walked
        theirs = self(method, route, 404, args={name: value}, code="not_found", **kw).json()
        if first:
            ghost = GHOST_TOKEN if isinstance(value, str) else GHOST_ID
            nobody = self(method, route, 404, args={name: ghost}, code="not_found", **kw).json()
            said = theirs["error"]["message"].replace(str(value), "<id>")
            assert said == nobody["error"]["message"].replace(str(ghost), "<id>"), theirs


def b_walks_every_route_with_a_ids_and_names(w: World, b: Account) -> None:
    a = w.a
    walk = Walk(b.client, w.app)

    # A's ids: 404, like ids nobody has. "Blacklist", "Active" and "Welcome" are B's
    # names too: the 404 comes before any conflict with B's own things.
    for contact_id in a.contacts.values():
        walk.missing("GET", "/v1/contacts/{contact_id}", contact_id=contact_id)
    for funnel_id in a.funnels.values():
        walk.missing("GET", "/v1/funnels/{funnel_id}", funnel_id=funnel_id)
    walk.missing("GET", "/v1/mailings/{mailing_id}", mailing_id=a.mailing)
    for group_id in a.groups.values():
        walk.missing("GET", "/v1/groups/{group_id}", group_id=group_id)
        body = {"name": "Blacklist"}
        walk.missing("PUT", "/v1/groups/{group_id}", group_id=group_id, json=body)
        walk.missing("DELETE", "/v1/groups/{group_id}", group_id=group_id)
    for segment_id in a.segments.values():
        walk.missing("GET", "/v1/segments/{segment_id}", segment_id=segment_id)
        body = {"name": "Active", "selection": {}}
        walk.missing("PUT", "/v1/segments/{segment_id}", segment_id=segment_id, json=body)
        walk.missing("DELETE", "/v1/segments/{segment_id}", segment_id=segment_id)
    for rule_id in a.rules.values():
        walk.missing("GET", "/v1/rules/{rule_id}", rule_id=rule_id)
        body = {"name": "Welcome", "actions": DELETE}
        walk.missing("PUT", "/v1/rules/{rule_id}", rule_id=rule_id, json=body)
        walk.missing("DELETE", "/v1/rules/{rule_id}", rule_id=rule_id)
    for job_id in a.jobs.values():
        walk.missing("GET", "/v1/jobs/{job_id}", job_id=job_id)
        walk.missing("POST", "/v1/jobs/{job_id}/cancel", job_id=job_id)
        walk.missing("GET", "/v1/jobs/{job_id}/output", job_id=job_id)
    walk.missing("GET", "/v1/links/{token}", token=a.token)

    # Lists: B's own things only.
    for route, mine in [
        ("/v1/funnels", b.funnels),
        ("/v1/groups", b.groups),
        ("/v1/segments", b.segments),
        ("/v1/rules", b.rules),
        ("/v1/mailings", {"November": b.mailing}),
    ]:
        listed = walk("GET", route, 200).json()
        assert {x["id"]: x["name"] for x in listed} == {v: k for k, v in mine.items()}, route
    groups = {g["name"]: g["members"] for g in walk("GET", "/v1/groups", 200).json()}
    assert groups == {"Blacklist": 2, "B Team": 3}
    assert [m["recipients"] for m in walk("GET", "/v1/mailings", 200).json()] == [2]
    newest = max(*a.jobs.values(), *b.jobs.values())
    for params in ({}, {"before": newest + 1, "limit": 500}):
        page = walk("GET", "/v1/jobs", 200, params=params).json()
        assert {j["id"] for j in page["jobs"]} == set(b.jobs.values()), params

    # A's names: an unknown segment is a 422 naming its path; a rule, funnel or stage
    # that does not exist is a 422 at submit.
    segment = {"type": "segment", "segments": ["A Only Segment"]}
    specs = [
        ({"include": [segment]}, "include[0].segments"),
        ({"filter": {"not": segment}}, "filter.not.segments"),
        ({"exclude": [segment]}, "exclude[0].segments"),
        (
            {"include": [{"type": "segment", "segments": ["Active", "a only SEGMENT"]}]},
            "include[0].segments",
        ),
    ]
    for spec, where in specs:
        walk("POST", "/v1/selections/count", 422, json=spec, path=where)
    for spec, where in specs[:2]:
        # preview names the path inside the spec, without its body's `selection.`
        r = walk("POST", "/v1/selections/preview", 422, json={"selection": spec})
        assert any(d["path"].endswith(where) for d in r.json()["error"]["details"]), r.text
        body = {"name": "Uses A", "selection": spec}
        walk("POST", "/v1/segments", 422, json=body, path=f"selection.{where}")
        args = {"segment_id": b.segments["Active"]}
        walk(
            "PUT", "/v1/segments/{segment_id}", 422, args=args, json=body, path=f"selection.{where}"
        )
        for params in ({}, DRY):
            body = {"selection": spec, "actions": DELETE}
            walk("POST", "/v1/jobs", 422, json=body, params=params, path=f"selection.{where}")
    unknown = [
        ({"type": "run_rule", "rule": a.rules["A Only Rule"]}, "rule"),
        ({"type": "set_funnel_stage", "funnel": "Sales", "stage": "Negotiation"}, "stage"),
        ({"type": "run_rule", "rule": a.rules["Welcome"], "check_condition": True}, "rule"),
        ({"type": "set_funnel_stage", "funnel": "A Pipeline", "stage": "A1"}, "funnel"),
        ({"type": "remove_from_funnel", "funnel": "A Pipeline"}, "funnel"),
    ]
    for i, (action, what) in enumerate(unknown):
        actions = [{"type": "add_tags", "tags": ["x"]}, action]
        where = f"actions[1].{what}"
        walk("POST", "/v1/jobs", 422, json={"selection": {}, "actions": actions}, path=where)
        if i >= 2:
            continue
        walk("POST", "/v1/jobs", 422, json={"actions": actions}, params=DRY, path=where)
        body = {"name": "Uses A", "actions": actions}
        walk("POST", "/v1/rules", 422, json=body, path=where)
        args = {"rule_id": b.rules["Welcome"]}
        walk("PUT", "/v1/rules/{rule_id}", 422, args=args, json=body, path=where)
    for entry, where in [
        ({"email": "anna@example.com", "funnels": {"A Pipeline": "A1"}}, "funnels.A Pipeline"),
        ({"email": "anna@example.com", "funnels": {"Sales": "Negotiation"}}, "funnels.Sales"),
    ]:
        body = {"contacts": [{"email": "ben@example.com"}, entry]}
        walk("POST", "/v1/contacts", 422, json=body, path=f"contacts[1].{where}")
    recipients = [{"email": "anna@example.com"}, {"email": "ada@a.example"}]
    body = {"name": "November", "sent_at": SENT, "recipients": recipients}
    walk("POST", "/v1/mailings", 422, json=body, path="recipients[1].email")
    event = {"email": "ada@a.example", "type": "A_EVENT", "occurred_at": SENT}
    walk("POST", "/v1/events", 422, json={"events": [event]}, path="events[0].email")

    # expected_total counts B's contacts, never A's.
    for spec, theirs, mine in [
        ({}, A_LIVE, B_LIVE),
        ({"include": [{"type": "tag", "tags": ["a-secret"]}]}, 2, 0),
    ]:
        body = {"selection": spec, "actions": DELETE, "expected_total": theirs}
        error = walk("POST", "/v1/jobs", 409, json=body, code="conflict").json()["error"]
        assert error["total"] == mine, error

    # A's Idempotency-Key and body make a new job of B's, never A's.
    r = walk("POST", "/v1/jobs", 202, json=NIGHTLY, headers={"Idempotency-Key": NIGHTLY_KEY})
    b.jobs["nightly"] = r.json()["id"]
    assert b.jobs["nightly"] not in a.jobs.values() and r.json()["status"] == "queued"
    r = walk("POST", "/v1/jobs/{job_id}/cancel", 200, args={"job_id": b.jobs["nightly"]})
    assert r.json()["status"] == "cancelled"

    # A's names, created in B: B's own things, and B's alone.
    r = walk("POST", "/v1/funnels", 201, json={"name": "A Pipeline", "stages": ["A1", "A2"]})
    assert r.json()["id"] not in a.funnels.values()
    r = walk("POST", "/v1/groups", 201, json={"name": "A Friends"})
    assert r.json()["id"] not in a.groups.values() and r.json()["members"] == 0
    body = {
        "contacts": [
            {
                "email": email,
                "tags": ["a-secret"],
                "groups": ["A Friends"],
                "funnels": {"A Pipeline": "A2"},
                "owners": ["a-owner@shop.com"],
                "details": {"a_detail": "b"},
            }
            for email in [*A_ONLY, *SHARED]
        ]
    }
    assert walk("POST", "/v1/contacts", 200, json=body).json() == {"created": 5, "updated": 3}
    body = {"name": "November", "sent_at": SENT, "recipients": [{"email": "ada@a.example"}]}
    assert walk("POST", "/v1/mailings", 201, json=body).json()["recipients"] == 1
    assert walk("POST", "/v1/events", 200, json={"events": [event]}).json() == {"created": 1}
    # a selection that would match A's data, saved in B, selects nothing of B's
    mailing = {"type": "mailing", "mailings": [a.mailing]}
    body = {"name": "A Only Segment", "selection": {"include": [mailing]}}
    assert walk("POST", "/v1/segments", 201, json=body).json()["id"] not in a.segments.values()
    body = {"name": "A Only Rule", "actions": [{"type": "set_score", "value": 5}]}
    assert walk("POST", "/v1/rules", 201, json=body).json()["id"] not in a.rules.values()
    assert b.client.count({"include": [segment]}) == 0
    preview = {"selection": {"include": [{"type": "tag", "tags": ["a-secret"]}]}, "limit": 100}
    found = walk("POST", "/v1/selections/preview", 200, json=preview).json()
    ids = [c["id"] for c in found["contacts"]]
    assert found["total"] == 8 and not set(ids) & set(a.contacts.values())
    assert all(c["details"]["a_detail"] == "b" for c in found["contacts"])
    assert walk("POST", "/v1/selections/count", 200, json={}).json() == {"total": B_LIVE + 5}
    walk("GET", "/v1/contacts/{contact_id}", 200, args={"contact_id": ids[0]})
    for route, mine in [
        ("/v1/funnels/{funnel_id}", b.funnels["Sales"]),
        ("/v1/mailings/{mailing_id}", b.mailing),
        ("/v1/groups/{group_id}", b.groups["Blacklist"]),
        ("/v1/segments/{segment_id}", b.segments["Active"]),
        ("/v1/rules/{rule_id}", b.rules["Welcome"]),
        ("/v1/jobs/{job_id}", b.jobs["coupons"]),
        ("/v1/jobs/{job_id}/output", b.jobs["coupons"]),
    ]:
        name = route.split("{")[1].split("}")[0]
        walk("GET", route, 200, args={name: mine})
    walk("DELETE", "/v1/segments/{segment_id}", 204, args={"segment_id": b.segments["Active"]})
    walk("DELETE", "/v1/rules/{rule_id}", 204, args={"rule_id": b.rules["Welcome"]})
    walk("DELETE", "/v1/groups/{group_id}", 204, args={"group_id": b.groups["Blacklist"]})

    missed = api_routes(w.app.app) - walk.walked
    assert not missed, f"routes the isolation walk does not cover: {sorted(missed)}"


# --- selections ---------------------------------------------------------------------------


def b_selections_that_would_match_a_select_only_b(w: World, b: Account) -> None:
    a = w.a
    tag = {"type": "tag", "tags": ["a-secret"]}
    cases = [
        ({}, B_LIVE),
        ({"deleted": "include"}, B_LIVE),
        ({"deleted": "only"}, 0),
        ({"include": [{"type": "tag", "tags": ["VIP"]}]}, 2),
        ({"include": [{"type": "tag", "tags": ["vip", "a-secret"], "match": "all"}]}, 0),
        ({"include": [tag], "deleted": "include"}, 0),
        ({"exclude": [tag]}, B_LIVE),
        ({"filter": {"not": tag}}, B_LIVE),
        ({"include": [{"type": "group", "groups": ["Blacklist"]}]}, 2),
        ({"include": [{"type": "group", "groups": ["A Friends"]}]}, 0),
        ({"include": [{"type": "funnel", "funnel": "Sales"}]}, 2),
        ({"include": [{"type": "funnel", "funnel": "Sales", "stages": ["Negotiation"]}]}, 0),
        ({"include": [{"type": "funnel", "funnel": "A Pipeline"}]}, 0),
        ({"include": [{"type": "mailing", "mailings": [b.mailing]}]}, 2),
        ({"include": [{"type": "segment", "segments": ["Active"]}]}, 5),  # B's: Newsletter
        ({"filter": {"field": "owner", "op": "eq", "value": "owner@shop.com"}}, 1),
        ({"filter": {"field": "owner", "op": "eq", "value": "a-owner@shop.com"}}, 0),
        ({"filter": {"field": "owner", "op": "is_not_empty"}}, 1),
        ({"filter": {"detail": "plan", "op": "eq", "value": "gold"}}, 1),
        ({"filter": {"detail": "a_detail", "op": "is_not_empty"}}, 0),
        ({"filter": {"detail": "a_detail", "op": "is_empty"}}, B_LIVE),
        ({"filter": {"field": "score", "op": "eq", "value": 100}}, 0),
        ({"filter": {"field": "tag_count", "op": "gte", "value": 2}}, 1),
        ({"filter": {"field": "city", "op": "eq", "value": "łódź"}}, 0),
        ({"filter": {"field": "email", "op": "in", "value": [*SHARED, *A_ONLY]}}, 3),
        (
            {
                "filter": {"field": "email", "op": "in", "value": A_ONLY},
                "deleted": "include",
            },
            0,
        ),
        (
            {"filter": {"event": {"type": "PURCHASE"}, "agg": "sum", "op": "gte", "value": 100}},
            0,
        ),
        ({"filter": {"event": {"type": "PURCHASE"}, "agg": "count", "op": "eq", "value": 1}}, 1),
        ({"filter": {"event": {}, "agg": "count", "op": "eq", "value": 0}}, B_LIVE - 2),
        ({"filter": {"event": {"type": "A_EVENT"}, "agg": "count", "op": "gte", "value": 1}}, 0),
    ]
    mailings = [
        {"type": "mailing", "mailings": [a.mailing], "event": event}
        for event in ("sent", "opened", "not_opened", "clicked", "bounced")
    ]
    cases += [
        ({"include": mailings}, 0),
        ({"filter": {"or": mailings}}, 0),
        ({"filter": {"not": {"or": mailings}}}, B_LIVE),
    ]
    # everything of A's at once, as include and as an OR filter
    a_only = [
        tag,
        {"type": "group", "groups": ["A Friends"]},
        {"type": "funnel", "funnel": "A Pipeline"},
        {"type": "funnel", "funnel": "Sales", "stages": ["Negotiation"]},
        {"type": "mailing", "mailings": [a.mailing], "event": "opened"},
        {"field": "owner", "op": "eq", "value": "a-owner@shop.com"},
        {"detail": "a_detail", "op": "eq", "value": "x"},
        {"field": "email", "op": "in", "value": A_ONLY},
        {"event": {"type": "A_EVENT"}, "agg": "count", "op": "gte", "value": 1},
        {"event": {"type": "PURCHASE"}, "agg": "max", "op": "gte", "value": 500},
    ]
    cases += [
        ({"include": a_only[:5], "deleted": "include"}, 0),
        ({"filter": {"or": a_only}, "deleted": "include"}, 0),
        ({"filter": {"not": {"or": a_only}}}, B_LIVE),
    ]
    a_ids = set(a.contacts.values())
    b_ids = set(b.contacts.values())
    for i, (spec, expected) in enumerate(cases):
        assert b.client.count(spec) == expected, spec
        body = {"selection": spec, "limit": 1000}
        r = b.client.post("/v1/selections/preview", json=body)
        assert r.status_code == 200, r.text
        found = r.json()
        assert found["total"] == expected, spec
        assert {c["id"] for c in found["contacts"]} <= b_ids, spec
        if i % 4 and i < len(cases) - 3:
            continue  # a dry run (the same compiled selection) for some, and the last ones
        add = [{"type": "add_tags", "tags": ["t"]}]
        r = b.client.post("/v1/jobs", json={"selection": spec, "actions": add}, params=DRY)
        assert r.status_code == 200, r.text
        assert r.json() == {
            "total": expected,
            "actions": [{"type": "add_tags", "affected": expected}],
        }

    # the look-alike contacts are B's, with B's data
    spec = {"filter": {"field": "email", "op": "in", "value": SHARED}}
    found = b.client.post("/v1/selections/preview", json={"selection": spec}).json()
    anna = next(c for c in found["contacts"] if c["email"] == "anna@example.com")
    assert anna["id"] == b.contacts["anna@example.com"] not in a_ids
    assert anna["score"] == 1 and anna["details"] == {"plan": "silver"}
    assert anna["owners"] == ["owner@shop.com"] and anna["funnels"] == {"Sales": "Lead"}
    assert anna["tags"] == ["VIP"] and anna["groups"] == ["Blacklist"] and anna["city"] is None


# --- jobs ---------------------------------------------------------------------------------


def b_jobs_change_only_b(w: World, b: Account) -> None:
    a = w.a
    b_ids = set(b.contacts.values())
    b_emails = set(b.contacts)

    # selections that would match A's data (each counted alone by the selections
    # phase): nothing of B's, nothing at all of A's
    a_only = [
        {"type": "tag", "tags": ["a-secret"]},
        {"type": "group", "groups": ["A Friends"]},
        {"type": "funnel", "funnel": "A Pipeline"},
        {"type": "funnel", "funnel": "Sales", "stages": ["Negotiation"]},
        {"type": "mailing", "mailings": [a.mailing]},
        {"field": "owner", "op": "eq", "value": "a-owner@shop.com"},
        {"detail": "a_detail", "op": "is_not_empty"},
        {"event": {"type": "A_EVENT"}, "agg": "count", "op": "gte", "value": 1},
        {"field": "email", "op": "in", "value": A_ONLY},
    ]
    destructive = [{"type": "set_score", "value": -1}, {"type": "delete"}]
    would_match_a = [
        {"include": a_only[:5], "deleted": "include"},
        {"filter": {"or": a_only}, "deleted": "include"},
    ]
    jobs = [submit(b.client, {"selection": s, "actions": destructive}) for s in would_match_a]
    for job_id in jobs:
        job = finish(b.client, job_id)
        assert job["total"] == 0 and job["processed"] == 0, job
        assert [x["affected"] for x in job["actions"]] == [0, 0], job
    # A's e-mails select B's look-alikes only
    spec = {"filter": {"field": "email", "op": "in", "value": [*SHARED, *A_ONLY]}}
    job = b.client.run(spec, [{"type": "set_score", "value": 42}])
    assert job["status"] == "succeeded" and job["total"] == 3, job
    assert job["actions"] == [{"type": "set_score", "affected": 3}]
    assert b.client.count({"filter": {"field": "score", "op": "eq", "value": 42}}) == 3

    # every kind of action on all of B's contacts: B's count, B's contacts
    everything = [
        ({"type": "set_email_opt_in", "value": True}, B_LIVE),
        ({"type": "set_phone_opt_in", "value": True}, B_LIVE),
        ({"type": "set_email_valid", "value": False}, B_LIVE),
        ({"type": "add_owner", "owner": "owner@shop.com"}, B_LIVE - 1),
        ({"type": "remove_owner", "owner": "a-owner@shop.com"}, 0),
        ({"type": "run_rule", "rule": b.rules["Welcome"], "check_condition": True}, 2),
        ({"type": "remove_from_funnel", "funnel": "Sales"}, 2),
        ({"type": "set_funnel_stage", "funnel": "Sales", "stage": "Won"}, B_LIVE),
        ({"type": "delete"}, B_LIVE),
        ({"type": "undelete"}, B_LIVE),
        ({"type": "add_tags", "tags": ["VIP", "a-secret"]}, B_LIVE),
        ({"type": "remove_tags", "tags": ["Newsletter"]}, 5),
        ({"type": "generate_coupons", "name": "XMAS", "length": 8}, B_LIVE),
        ({"type": "identify_sex", "overwrite": True}, None),
        ({"type": "set_state", "state": "CUSTOMER"}, B_LIVE),
        ({"type": "invalidate_bad_emails"}, 0),
        ({"type": "set_detail", "name": "plan", "value": "platinum"}, B_LIVE),
        ({"type": "delete_detail", "name": "a_detail"}, 0),
        ({"type": "generate_links", "url": LINK}, B_LIVE),
        ({"type": "add_to_group", "group": "A Friends"}, B_LIVE),
        ({"type": "remove_from_group", "group": "Blacklist"}, 2),
        ({"type": "set_score", "mode": "set", "value": 777}, B_LIVE),
    ]
    kinds = {action["type"] for action, _ in everything}
    assert kinds == set(ACTION_MODELS), f"add to the isolation job: {set(ACTION_MODELS) - kinds}"
    actions = [action for action, _ in everything]
    body = {"selection": {}, "actions": actions}
    # the dry run: each action alone on today's data (nothing is deleted yet)
    r = b.client.post("/v1/jobs", json=body, params=DRY)
    assert r.status_code == 200 and r.json()["total"] == B_LIVE, r.text
    for (action, expected), dry in zip(everything, r.json()["actions"], strict=True):
        if action["type"] == "undelete":
            expected = 0
        assert dry["affected"] == expected or expected is None, (action, dry)
    job = finish(b.client, submit(b.client, {**body, "expected_total": B_LIVE}))
    assert job["total"] == B_LIVE and job["processed"] == B_LIVE, job
    for (action, expected), done in zip(everything, job["actions"], strict=True):
        assert done["type"] == action["type"]
        if expected is None:
            assert 0 <= done["affected"] <= B_LIVE, done
        else:
            assert done["affected"] == expected, (action, done)
    rows = output(b.client, job["id"])
    assert len(rows) == 2 * B_LIVE
    assert {int(row["contact_id"]) for row in rows} == b_ids
    assert {row["email"] for row in rows} == b_emails
    for row in rows:
        if row["value"].startswith("https://"):
            token = row["value"].rsplit("/", 1)[1]
            assert a.client.get(f"/v1/links/{token}").status_code == 404
            assert b.client.get(f"/v1/links/{token}").json()["contact_id"] in b_ids
    assert b.client.count({"filter": {"field": "score", "op": "eq", "value": 777}}) == B_LIVE
    assert b.client.count({"include": [{"type": "group", "groups": ["A Friends"]}]}) == B_LIVE
    assert b.client.count({"include": [{"type": "tag", "tags": ["welcomed"]}]}) == 2

    # deleted and undeleted, all of B's; a cancelled job of B's
    job = b.client.run({}, [{"type": "delete"}])
    assert job["total"] == B_LIVE and job["actions"][0]["affected"] == B_LIVE, job
    assert b.client.count({}) == 0 and a.client.count({}) == A_LIVE
    job = b.client.run({"deleted": "only"}, [{"type": "undelete"}])
    assert job["total"] == B_LIVE and job["actions"][0]["affected"] == B_LIVE, job
    job_id = submit(b.client, {**NIGHTLY, "selection": {}})
    r = b.client.post(f"/v1/jobs/{job_id}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text

    listed = {j["id"] for j in b.client.get("/v1/jobs", params={"limit": 500}).json()["jobs"]}
    assert not listed & set(a.jobs.values())
