"""Tenant isolation: account B reaches every route with account A's ids, names and
selections, and runs jobs whose selections would match A's data; nothing crosses.

The two accounts hold look-alike data (the same tag, group, funnel, stage, mailing,
segment, rule, detail and owner names, and the same contact e-mails), and A has things
of its own. Everything is built through the public API. Account A is built once per
database; each test has an account B of its own and ends by proving A's data unchanged,
byte for byte, as A sees it.

Each route (method and path) is a test of its own, and every route the app serves has
one (or is listed as public). Runs on SQLite, on PostgreSQL as the database's owner, and
on PostgreSQL connected as `audience_app`, so row-level security is active under the
code's own filters."""

import csv
import io
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from app.actions.schemas import ACTION_MODELS
from app.auth import create_account
from app.main import create_app
from tests.conftest import Scoped, app_role_engine, make_settings

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
    webhook: int = 0


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
        b.jobs["coupons"] = finish(
            b.client, submit(b.client, {"selection": {}, "actions": coupons})
        )["id"]
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

# SQLite; PostgreSQL with the app connected as the owner of the tables; PostgreSQL with
# the app connected as audience_app, the role row-level security holds.
ON_EACH_DATABASE = pytest.mark.parametrize(
    ("db_url", "role"),
    [
        pytest.param("sqlite", "owner", id="sqlite"),
        pytest.param("postgres", "owner", id="postgres-owner", marks=pytest.mark.postgres),
        pytest.param(
            "postgres", "audience_app", id="postgres-audience_app", marks=pytest.mark.postgres
        ),
    ],
    indirect=True,
    scope="session",
)


@pytest.fixture(scope="session")
def role(request) -> str:
    """The role the app under test connects as (ON_EACH_DATABASE)."""
    return request.param


@pytest.fixture(scope="module")
def world(request, role, db_url, engine, api) -> Iterator[World]:
    """Account A on an app of its own, connected as `role`, whose job runner is the only
    one on this database while this module runs (the session's is paused: two runners
    would race for jobs)."""
    api.app.state.runner.stop()
    try:
        with ExitStack() as stack:
            app_engine = engine
            if role == "audience_app":
                login_url = request.getfixturevalue("app_login_url")
                app_engine = stack.enter_context(app_role_engine(login_url, pool_size=4))
            app = create_app(make_settings(db_url), engine=app_engine)
            yield build_world(stack.enter_context(TestClient(app)), engine)
    finally:
        api.app.state.runner.start()


def build_world(app: TestClient, engine: Engine) -> World:
    """A's data, A's jobs (coupons and links for all, a soft delete, a queued job), and
    A's view of it all."""
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
    a.webhook = new_webhook(a.client, "https://93.184.215.14/a")
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
    urls += ["/v1/webhooks", f"/v1/webhooks/{a.webhook}/deliveries"]
    seen: dict = {}
    for url in urls:
        r = a.client.get(url)
        seen[url] = (r.status_code, r.content)
    for name, spec in a_selections(a).items():
        seen[f"count {name}"] = a.client.count(spec)
    return seen


def assert_a_unchanged(w: World) -> None:
    """A sees what it saw when it was built. A change fails the test that made it, and
    only that one: what A sees now is what the next test compares with."""
    after = view(w.a)
    changed = [k for k in w.a_before if after[k] != w.a_before[k]]
    before, w.a_before = w.a_before, after
    assert not changed, {k: (before[k], after[k]) for k in changed}


# --- walking one route --------------------------------------------------------------------


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
    """B's requests on one route; the first is also sent with no key and with a wrong key
    (401 both)."""

    def __init__(self, client: Scoped, app: TestClient, key: str):
        self.client = client
        self.method, self.path = key.split(" ", 1)
        self.sent = 0
        self.ghost_asked = False
        self.strangers = [Scoped(app, "aud_" + "0" * 43), Scoped(app, "")]
        self.strangers[1].headers = {}

    def __call__(self, status: int, *, args=None, code=None, path=None, **kw):
        url = self.path.format(**(args or {}))
        r = self.client.request(self.method, url, **kw)
        if status >= 400:
            assert_error(r, status, code, path)
        else:
            assert r.status_code == status, (self.method, url, r.text)
        if not self.sent:
            kw.pop("headers", None)
            for stranger in self.strangers:
                assert_error(stranger.request(self.method, url, **kw), 401, "unauthorized")
        self.sent += 1
        return r

    def missing(self, name: str, value: int | str, **kw) -> None:
        """404 for A's id; told apart from an id nobody has (asked once) by nothing but
        the id."""
        theirs = self(404, args={name: value}, code="not_found", **kw).json()
        if not self.ghost_asked:
            self.ghost_asked = True
            ghost = GHOST_TOKEN if isinstance(value, str) else GHOST_ID
            nobody = self(404, args={name: ghost}, code="not_found", **kw).json()
            said = theirs["error"]["message"].replace(str(value), "<id>")
            assert said == nobody["error"]["message"].replace(str(ghost), "<id>"), theirs


# --- every route: a case each -------------------------------------------------------------

# Routes that need no key and show no account's data.
PUBLIC = {
    "GET /healthz": "liveness",
    "GET /readyz": "readiness: the database and the queue answer",
    "GET /openapi.json": "the contract",
    "GET /docs": "the contract, as a page",
    "GET /docs/oauth2-redirect": "the contract page's OAuth redirect",
    "GET /console": "the console's page (it asks for a key, and keeps it in the tab)",
    "GET /console/assets/{name}": "the console's scripts and styles",
    "GET /console/catalog.json": "the fields, operators and actions of the service",
    "GET /metrics": "operations: counters and gauges, no account's data in them",
}

# "METHOD /path/{template}" -> the case walking it: case(world, b, walk).
ROUTES: dict[str, Callable[[World, Account, Walk], None]] = {}


def route(key: str):
    def register(case):
        assert key not in ROUTES, key
        ROUTES[key] = case
        return case

    return register


# A's segment names in a selection: a 422 at the name's path.
A_SEGMENT = {"type": "segment", "segments": ["A Only Segment"]}
A_SEGMENT_SPECS = [
    ({"include": [A_SEGMENT]}, "include[0].segments"),
    ({"filter": {"not": A_SEGMENT}}, "filter.not.segments"),
    ({"exclude": [A_SEGMENT]}, "exclude[0].segments"),
    (
        {"include": [{"type": "segment", "segments": ["Active", "a only SEGMENT"]}]},
        "include[0].segments",
    ),
]


def actions_naming_a(a: Account) -> list[tuple[dict, str]]:
    """A's rules, and A's funnels and stages (B's "Sales" has no "Negotiation"), in an
    action: a 422 at the name's path."""
    return [
        ({"type": "run_rule", "rule": a.rules["A Only Rule"]}, "rule"),
        ({"type": "set_funnel_stage", "funnel": "Sales", "stage": "Negotiation"}, "stage"),
        ({"type": "run_rule", "rule": a.rules["Welcome"], "check_condition": True}, "rule"),
        ({"type": "set_funnel_stage", "funnel": "A Pipeline", "stage": "A1"}, "funnel"),
        ({"type": "remove_from_funnel", "funnel": "A Pipeline"}, "funnel"),
    ]


# A's ids: 404, like ids nobody has. "Blacklist", "Active" and "Welcome" are B's names
# too: the 404 comes before any conflict with B's own things. B's own ids: B's things.


@route("GET /v1/contacts/{contact_id}")
def get_contact(w: World, b: Account, walk: Walk) -> None:
    for contact_id in w.a.contacts.values():
        walk.missing("contact_id", contact_id)
    walk(200, args={"contact_id": b.contacts["anna@example.com"]})


@route("GET /v1/funnels/{funnel_id}")
def get_funnel(w: World, b: Account, walk: Walk) -> None:
    for funnel_id in w.a.funnels.values():
        walk.missing("funnel_id", funnel_id)
    walk(200, args={"funnel_id": b.funnels["Sales"]})


@route("GET /v1/mailings/{mailing_id}")
def get_mailing(w: World, b: Account, walk: Walk) -> None:
    walk.missing("mailing_id", w.a.mailing)
    walk(200, args={"mailing_id": b.mailing})


@route("GET /v1/groups/{group_id}")
def get_group(w: World, b: Account, walk: Walk) -> None:
    for group_id in w.a.groups.values():
        walk.missing("group_id", group_id)
    walk(200, args={"group_id": b.groups["Blacklist"]})


@route("PUT /v1/groups/{group_id}")
def put_group(w: World, b: Account, walk: Walk) -> None:
    for group_id in w.a.groups.values():
        walk.missing("group_id", group_id, json={"name": "Blacklist"})


@route("DELETE /v1/groups/{group_id}")
def delete_group(w: World, b: Account, walk: Walk) -> None:
    for group_id in w.a.groups.values():
        walk.missing("group_id", group_id)
    walk(204, args={"group_id": b.groups["Blacklist"]})


@route("GET /v1/segments/{segment_id}")
def get_segment(w: World, b: Account, walk: Walk) -> None:
    for segment_id in w.a.segments.values():
        walk.missing("segment_id", segment_id)
    walk(200, args={"segment_id": b.segments["Active"]})


@route("PUT /v1/segments/{segment_id}")
def put_segment(w: World, b: Account, walk: Walk) -> None:
    for segment_id in w.a.segments.values():
        walk.missing("segment_id", segment_id, json={"name": "Active", "selection": {}})
    args = {"segment_id": b.segments["Active"]}
    for spec, where in A_SEGMENT_SPECS[:2]:
        body = {"name": "Uses A", "selection": spec}
        walk(422, args=args, json=body, path=f"selection.{where}")


@route("DELETE /v1/segments/{segment_id}")
def delete_segment(w: World, b: Account, walk: Walk) -> None:
    for segment_id in w.a.segments.values():
        walk.missing("segment_id", segment_id)
    walk(204, args={"segment_id": b.segments["Active"]})


@route("GET /v1/rules/{rule_id}")
def get_rule(w: World, b: Account, walk: Walk) -> None:
    for rule_id in w.a.rules.values():
        walk.missing("rule_id", rule_id)
    walk(200, args={"rule_id": b.rules["Welcome"]})


@route("PUT /v1/rules/{rule_id}")
def put_rule(w: World, b: Account, walk: Walk) -> None:
    for rule_id in w.a.rules.values():
        walk.missing("rule_id", rule_id, json={"name": "Welcome", "actions": DELETE})
    args = {"rule_id": b.rules["Welcome"]}
    for action, what in actions_naming_a(w.a)[:2]:
        body = {"name": "Uses A", "actions": [{"type": "add_tags", "tags": ["x"]}, action]}
        walk(422, args=args, json=body, path=f"actions[1].{what}")


@route("DELETE /v1/rules/{rule_id}")
def delete_rule(w: World, b: Account, walk: Walk) -> None:
    for rule_id in w.a.rules.values():
        walk.missing("rule_id", rule_id)
    walk(204, args={"rule_id": b.rules["Welcome"]})


@route("GET /v1/jobs/{job_id}")
def get_job(w: World, b: Account, walk: Walk) -> None:
    for job_id in w.a.jobs.values():
        walk.missing("job_id", job_id)
    walk(200, args={"job_id": b.jobs["coupons"]})


@route("POST /v1/jobs/{job_id}/cancel")
def cancel_job(w: World, b: Account, walk: Walk) -> None:
    for job_id in w.a.jobs.values():
        walk.missing("job_id", job_id)
    r = walk(200, args={"job_id": submit(b.client, NIGHTLY)})
    assert r.json()["status"] == "cancelled"


@route("GET /v1/jobs/{job_id}/output")
def get_job_output(w: World, b: Account, walk: Walk) -> None:
    for job_id in w.a.jobs.values():
        walk.missing("job_id", job_id)
    walk(200, args={"job_id": b.jobs["coupons"]})


@route("POST /v1/jobs/{job_id}/revert")
def revert_job(w: World, b: Account, walk: Walk) -> None:
    for job_id in w.a.jobs.values():
        walk.missing("job_id", job_id)
    walk(409, args={"job_id": submit(b.client, NIGHTLY)}, code="conflict")  # not finished
    done = b.client.run(
        {"include": [{"type": "tag", "tags": ["VIP"]}]}, [{"type": "add_tags", "tags": ["b-undo"]}]
    )
    r = walk(202, args={"job_id": done["id"]})
    assert b.client.wait(r.json()["id"])["actions"][0]["affected"] == done["actions"][0]["affected"]


@route("POST /v1/jobs/{job_id}/revert/dry-run")
def dry_run_revert(w: World, b: Account, walk: Walk) -> None:
    for job_id in w.a.jobs.values():
        walk.missing("job_id", job_id)
    r = walk(200, args={"job_id": b.jobs["coupons"]})
    assert r.json()["total"] == b.client.get(f"/v1/jobs/{b.jobs['coupons']}").json()["total"]


@route("GET /v1/contacts/{contact_id}/history")
def contact_history(w: World, b: Account, walk: Walk) -> None:
    for contact_id in w.a.contacts.values():
        walk.missing("contact_id", contact_id)
    r = walk(200, args={"contact_id": b.contacts["anna@example.com"]})
    assert all(c["job_id"] in b.jobs.values() or c["kind"] == "revert" for c in r.json()["changes"])


@route("POST /v1/jobs/dry-run")
def dry_run_job(w: World, b: Account, walk: Walk) -> None:
    for spec, where in A_SEGMENT_SPECS[:2]:
        walk(422, json={"selection": spec, "actions": DELETE}, path=f"selection.{where}")
    for action, what in actions_naming_a(w.a)[:2]:
        walk(422, json={"selection": {}, "actions": [action]}, path=f"actions[0].{what}")
    r = walk(200, json={"selection": {}, "actions": DELETE})
    assert r.json()["total"] == B_LIVE


@route("GET /v1/keys")
def list_keys(w: World, b: Account, walk: Walk) -> None:
    keys = walk(200).json()["keys"]
    assert keys and b.client.key[:8] in {k["prefix"] for k in keys}
    assert w.a.client.key[:8] not in {k["prefix"] for k in keys}


@route("GET /console/me")
def console_me(w: World, b: Account, walk: Walk) -> None:
    mine = next(
        k for k in b.client.get("/v1/keys").json()["keys"] if k["prefix"] == b.client.key[:8]
    )
    assert walk(200).json() == {"label": mine["label"], "scope": mine["scope"]}


@route("POST /v1/keys")
def create_key(w: World, b: Account, walk: Walk) -> None:
    made = walk(201, json={"label": "b's reader", "scope": "read"}).json()
    assert b.client.get("/v1/keys").json()["keys"][-1]["id"] == made["id"]


@route("DELETE /v1/keys/{key_id}")
def revoke_key(w: World, b: Account, walk: Walk) -> None:
    for key in w.a.client.get("/v1/keys").json()["keys"]:
        walk.missing("key_id", key["id"])
    assert w.a.client.get("/v1/keys").status_code == 200  # A's keys all still work
    spare = b.client.post("/v1/keys", json={"label": "spare"}).json()
    walk(204, args={"key_id": spare["id"]})


def new_webhook(client: Scoped, url: str) -> int:
    """A webhook on a public address (nothing listens there: only job.failed, which the
    world's jobs never are)."""
    r = client.post("/v1/webhooks", json={"url": url, "events": ["job.failed"]})
    assert r.status_code == 201, r.text
    return r.json()["id"]


@route("GET /v1/webhooks")
def list_webhooks(w: World, b: Account, walk: Walk) -> None:
    assert walk(200).json() == {"webhooks": []}
    mine = new_webhook(b.client, "https://93.184.215.14/b")
    assert [h["id"] for h in walk(200).json()["webhooks"]] == [mine]


@route("POST /v1/webhooks")
def create_webhook(w: World, b: Account, walk: Walk) -> None:
    made = walk(201, json={"url": "https://93.184.215.14/b", "events": ["job.failed"]}).json()
    assert [h["id"] for h in b.client.get("/v1/webhooks").json()["webhooks"]] == [made["id"]]


@route("GET /v1/webhooks/{webhook_id}")
def get_webhook(w: World, b: Account, walk: Walk) -> None:
    walk.missing("webhook_id", w.a.webhook)
    mine = new_webhook(b.client, "https://93.184.215.14/b")
    assert "secret" not in walk(200, args={"webhook_id": mine}).json()


@route("DELETE /v1/webhooks/{webhook_id}")
def delete_webhook(w: World, b: Account, walk: Walk) -> None:
    walk.missing("webhook_id", w.a.webhook)
    walk(204, args={"webhook_id": new_webhook(b.client, "https://93.184.215.14/b")})


@route("GET /v1/webhooks/{webhook_id}/deliveries")
def webhook_deliveries(w: World, b: Account, walk: Walk) -> None:
    walk.missing("webhook_id", w.a.webhook)
    mine = new_webhook(b.client, "https://93.184.215.14/b")
    assert walk(200, args={"webhook_id": mine}).json()["deliveries"] == []


@route("GET /v1/jobs/{job_id}/events")
def job_events(w: World, b: Account, walk: Walk) -> None:
    for job_id in w.a.jobs.values():
        walk.missing("job_id", job_id)
    r = walk(200, args={"job_id": b.jobs["coupons"]})
    data = [line for line in r.text.splitlines() if line.startswith("data: ")]
    assert len(data) == 1 and json.loads(data[0][6:])["id"] == b.jobs["coupons"]


def _upload(text: str, options: dict) -> dict:
    return {
        "files": {"file": ("contacts.csv", text.encode(), "text/csv")},
        "data": {"options": json.dumps(options)},
    }


@route("POST /v1/imports")
def submit_import(w: World, b: Account, walk: Walk) -> None:
    # A's funnel is unknown to B; a stage only A's "Sales" has is a bad row; the contact
    # both have by e-mail is B's own
    a_only = _upload("email,Stage\nanna@example.com,A1\n", {"columns": {"Stage": "funnel:A Pipeline"}})  # fmt: skip
    walk(422, path="options.columns.Stage", code="validation_error", **a_only)
    text = "email,first_name,Stage\nanna@example.com,Annie,Lead\nbob@b.example,Bob,Negotiation\n"
    r = walk(202, **_upload(text, {"columns": {"Stage": "funnel:Sales"}}))
    job = finish(b.client, r.json()["id"])
    assert (job["created"], job["updated"], job["rejected"]) == (0, 1, 1), job
    b.jobs["import"] = job["id"]
    (anna,) = b.client.ids("anna@example.com")
    assert b.client.get(f"/v1/contacts/{anna}").json()["first_name"] == "Annie"


@route("GET /v1/jobs/{job_id}/errors")
def get_import_errors(w: World, b: Account, walk: Walk) -> None:
    for job_id in w.a.jobs.values():
        walk.missing("job_id", job_id)
    text = "email,Stage\nnobody,A1\n"
    job = finish(b.client, b.client.post("/v1/imports", **_upload(text, {})).json()["id"])
    r = walk(200, args={"job_id": job["id"]})
    assert r.text.splitlines()[1].startswith("2,email,")


@route("GET /v1/links/{token}")
def get_link(w: World, b: Account, walk: Walk) -> None:
    walk.missing("token", w.a.token)


# Lists: B's own things only.


def assert_lists_b_only(walk: Walk, mine: dict[str, int]) -> list[dict]:
    listed = walk(200).json()
    assert {x["id"]: x["name"] for x in listed} == {v: k for k, v in mine.items()}
    return listed


@route("GET /v1/funnels")
def list_funnels(w: World, b: Account, walk: Walk) -> None:
    assert_lists_b_only(walk, b.funnels)


@route("GET /v1/groups")
def list_groups(w: World, b: Account, walk: Walk) -> None:
    groups = assert_lists_b_only(walk, b.groups)
    assert {g["name"]: g["members"] for g in groups} == {"Blacklist": 2, "B Team": 3}


@route("GET /v1/segments")
def list_segments(w: World, b: Account, walk: Walk) -> None:
    assert_lists_b_only(walk, b.segments)


@route("GET /v1/rules")
def list_rules(w: World, b: Account, walk: Walk) -> None:
    assert_lists_b_only(walk, b.rules)


@route("GET /v1/mailings")
def list_mailings(w: World, b: Account, walk: Walk) -> None:
    mailings = assert_lists_b_only(walk, {"November": b.mailing})
    assert [m["recipients"] for m in mailings] == [2]


@route("GET /v1/jobs")
def list_jobs(w: World, b: Account, walk: Walk) -> None:
    newest = max(*w.a.jobs.values(), *b.jobs.values())
    for params in ({}, {"before": newest + 1, "limit": 500}):
        page = walk(200, params=params).json()
        assert {j["id"] for j in page["jobs"]} == set(b.jobs.values()), params


@route("GET /v1/contacts")
def list_contacts(w: World, b: Account, walk: Walk) -> None:
    listed = walk(200, params={"limit": 1000}).json()["contacts"]
    assert {c["id"] for c in listed} == set(b.contacts.values())
    for email in A_ONLY:
        assert walk(200, params={"email": email}).json()["contacts"] == []
    shared = walk(200, params={"email": SHARED[0]}).json()["contacts"]
    assert [c["id"] for c in shared] == [b.contacts[SHARED[0]]]


def _names(walk: Walk, key: str, field: str) -> set[str]:
    return {x[field] for x in walk(200, params={"limit": 1000}).json()[key]}


@route("GET /v1/tags")
def list_tags(w: World, b: Account, walk: Walk) -> None:
    assert "a-secret" not in {n.lower() for n in _names(walk, "tags", "name")}


@route("GET /v1/owners")
def list_owners(w: World, b: Account, walk: Walk) -> None:
    assert "a-owner@shop.com" not in _names(walk, "owners", "email")


@route("GET /v1/event-types")
def list_event_types(w: World, b: Account, walk: Walk) -> None:
    events = walk(200).json()["event_types"]
    assert sum(e["events"] for e in events) == sum(
        e["events"] for e in b.client.get("/v1/event-types").json()["event_types"]
    )


@route("GET /v1/details")
def list_details(w: World, b: Account, walk: Walk) -> None:
    assert "a_detail" not in _names(walk, "details", "name")


@route("POST /v1/tags")
def create_tag(w: World, b: Account, walk: Walk) -> None:
    made = walk(201, json={"name": "a-secret"}).json()  # A's tag name: B's own tag
    assert made["contacts"] == 0
    assert walk(200, json={"name": "A-SECRET"}).json()["id"] == made["id"]


# Selections: A's segment names are a 422 naming their path; what would select A's
# contacts selects B's.


@route("POST /v1/selections/count")
def count_selection(w: World, b: Account, walk: Walk) -> None:
    for spec, where in A_SEGMENT_SPECS:
        walk(422, json=spec, path=where)
    assert walk(200, json={}).json() == {"total": B_LIVE}


@route("POST /v1/selections/preview")
def preview_selection(w: World, b: Account, walk: Walk) -> None:
    for spec, where in A_SEGMENT_SPECS[:2]:
        # preview names the path inside the spec, without its body's `selection.`
        r = walk(422, json={"selection": spec})
        assert any(d["path"].endswith(where) for d in r.json()["error"]["details"]), r.text
    spec = {"filter": {"field": "email", "op": "in", "value": [*SHARED, *A_ONLY]}}
    found = walk(200, json={"selection": spec}).json()
    assert found["total"] == 3
    assert {c["id"] for c in found["contacts"]} == {b.contacts[e] for e in SHARED}


@route("POST /v1/selections/export")
def export_selection(w: World, b: Account, walk: Walk) -> None:
    for spec, where in A_SEGMENT_SPECS[:2]:
        walk(422, json={"selection": spec}, path=f"selection.{where}")
    spec = {"filter": {"field": "email", "op": "in", "value": [*SHARED, *A_ONLY]}}
    r = walk(200, json={"selection": spec, "fields": ["id"], "format": "ndjson"})
    assert {json.loads(line)["id"] for line in r.text.splitlines()} == {
        b.contacts[e] for e in SHARED
    }
    everyone = walk(200, json={"selection": {"deleted": "include"}, "fields": ["id"]})
    assert set(everyone.text.split()[1:]) == {str(i) for i in b.contacts.values()}


# A's names, created in B: B's own things, and B's alone. A's names B lacks: a 422.


@route("POST /v1/funnels")
def create_funnel(w: World, b: Account, walk: Walk) -> None:
    r = walk(201, json={"name": "A Pipeline", "stages": ["A1", "A2"]})
    assert r.json()["id"] not in w.a.funnels.values()


@route("POST /v1/groups")
def create_group(w: World, b: Account, walk: Walk) -> None:
    r = walk(201, json={"name": "A Friends"})
    assert r.json()["id"] not in w.a.groups.values() and r.json()["members"] == 0


@route("POST /v1/contacts")
def upsert_contacts(w: World, b: Account, walk: Walk) -> None:
    a = w.a
    for entry, where in [
        ({"email": "anna@example.com", "funnels": {"A Pipeline": "A1"}}, "funnels.A Pipeline"),
        ({"email": "anna@example.com", "funnels": {"Sales": "Negotiation"}}, "funnels.Sales"),
    ]:
        body = {"contacts": [{"email": "ben@example.com"}, entry]}
        walk(422, json=body, path=f"contacts[1].{where}")
    r = b.client.post("/v1/funnels", json={"name": "A Pipeline", "stages": ["A1", "A2"]})
    assert r.status_code == 201, r.text
    assert b.client.post("/v1/groups", json={"name": "A Friends"}).status_code == 201
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
    assert walk(200, json=body).json().items() >= {"created": 5, "updated": 3}.items()
    preview = {"selection": {"include": [{"type": "tag", "tags": ["a-secret"]}]}, "limit": 100}
    found = b.client.post("/v1/selections/preview", json=preview).json()
    ids = {c["id"] for c in found["contacts"]}
    assert found["total"] == len(found["contacts"]) == 8
    assert not ids & set(a.contacts.values())
    assert {c["details"]["a_detail"] for c in found["contacts"]} == {"b"}
    assert b.client.count({}) == B_LIVE + 5


@route("POST /v1/mailings")
def create_mailing(w: World, b: Account, walk: Walk) -> None:
    recipients = [{"email": "anna@example.com"}, {"email": "ada@a.example"}]
    body = {"name": "November", "sent_at": SENT, "recipients": recipients}
    walk(422, json=body, path="recipients[1].email")
    b.client.load({"email": "ada@a.example"})
    body = {"name": "November", "sent_at": SENT, "recipients": [{"email": "ada@a.example"}]}
    r = walk(201, json=body)
    assert r.json()["recipients"] == 1 and r.json()["id"] != w.a.mailing


@route("POST /v1/events")
def create_events(w: World, b: Account, walk: Walk) -> None:
    event = {"email": "ada@a.example", "type": "A_EVENT", "occurred_at": SENT}
    walk(422, json={"events": [event]}, path="events[0].email")
    b.client.load({"email": "ada@a.example"})
    assert walk(200, json={"events": [event]}).json() == {"created": 1}


@route("POST /v1/segments")
def create_segment(w: World, b: Account, walk: Walk) -> None:
    for spec, where in A_SEGMENT_SPECS[:2]:
        body = {"name": "Uses A", "selection": spec}
        walk(422, json=body, path=f"selection.{where}")
    # A's mailing is unknown in B: saved in B, a selection naming it is a 422 at its id
    mailing = {"type": "mailing", "mailings": [w.a.mailing]}
    body = {"name": "A Only Segment", "selection": {"include": [mailing]}}
    walk(422, json=body, path="selection.include[0].mailings[0]")
    body = {"name": "A Only Segment", "selection": {"include": [{"type": "tag", "tags": ["VIP"]}]}}
    assert walk(201, json=body).json()["id"] not in w.a.segments.values()
    assert b.client.count({"include": [A_SEGMENT]}) == 2


@route("POST /v1/rules")
def create_rule(w: World, b: Account, walk: Walk) -> None:
    for action, what in actions_naming_a(w.a)[:2]:
        body = {"name": "Uses A", "actions": [{"type": "add_tags", "tags": ["x"]}, action]}
        walk(422, json=body, path=f"actions[1].{what}")
    body = {"name": "A Only Rule", "actions": [{"type": "set_score", "value": 5}]}
    assert walk(201, json=body).json()["id"] not in w.a.rules.values()


@route("POST /v1/jobs")
def submit_job(w: World, b: Account, walk: Walk) -> None:
    a = w.a
    for spec, where in A_SEGMENT_SPECS[:2]:
        for params in ({}, DRY):
            body = {"selection": spec, "actions": DELETE}
            walk(422, json=body, params=params, path=f"selection.{where}")
    for i, (action, what) in enumerate(actions_naming_a(a)):
        actions = [{"type": "add_tags", "tags": ["x"]}, action]
        where = f"actions[1].{what}"
        walk(422, json={"selection": {}, "actions": actions}, path=where)
        if i < 2:
            walk(422, json={"selection": {}, "actions": actions}, params=DRY, path=where)
    # expected_total counts B's contacts, never A's.
    body = {"selection": {}, "actions": DELETE, "expected_total": A_LIVE}
    error = walk(409, json=body, code="conflict").json()["error"]
    assert error["total"] == B_LIVE, error
    # A's names are unknown in B: a 422 at the name, never a count of A's contacts
    spec = {"include": [{"type": "tag", "tags": ["a-secret"]}]}
    body = {"selection": spec, "actions": DELETE, "expected_total": 2}
    walk(422, json=body, path="selection.include[0].tags[0]")
    # A's Idempotency-Key and body make a new job of B's, never A's.
    r = walk(202, json=NIGHTLY, headers={"Idempotency-Key": NIGHTLY_KEY})
    assert r.json()["id"] not in a.jobs.values() and r.json()["status"] == "queued"


def served_routes(app) -> set[str]:
    """Every route the app serves, as "METHOD /path": its routes (into included routers,
    which recent FastAPI keeps as branches) and its OpenAPI paths."""
    found: set[str] = set()

    def walk(routes, prefix: str) -> None:
        for r in routes:
            branch = getattr(r, "original_router", None)
            if branch is not None:
                context = getattr(r, "include_context", None)
                walk(branch.routes, prefix + getattr(context, "prefix", ""))
            else:
                methods = getattr(r, "methods", None) or set()
                found.update(f"{m} {prefix}{r.path}" for m in methods - {"HEAD"})

    walk(app.routes, "")
    for path, operations in app.openapi()["paths"].items():
        found.update(f"{method.upper()} {path}" for method in operations)
    return found


@pytest.fixture(scope="module")
def app_routes() -> Iterator[set[str]]:
    app = create_app(make_settings("sqlite://"))
    try:
        yield served_routes(app)
    finally:
        app.state.engine.dispose()


def test_every_route_has_an_isolation_case(app_routes):
    """A new route fails here until it has a case below (or is public); a case for a
    route that is gone fails too."""
    uncovered = app_routes - set(ROUTES) - set(PUBLIC)
    assert not uncovered, f"routes without an isolation case: {sorted(uncovered)}"
    stale = (set(ROUTES) | set(PUBLIC)) - app_routes
    assert not stale, f"isolation cases of routes the app does not serve: {sorted(stale)}"


@pytest.mark.parametrize("key", sorted(PUBLIC))
def test_public_routes_need_no_key(api, key):
    method, path = key.split(" ", 1)
    path = path.replace("{name}", "main.js")  # the console's assets
    assert api.request(method, path).status_code == 200


@pytest.mark.parametrize("key", sorted(ROUTES, key=lambda key: key.split(" ")[::-1]))
@ON_EACH_DATABASE
def test_route_keeps_accounts_apart(world, key):
    """A new account B sends `key` A's ids and names: 404s like ids nobody has, 422s
    where A's names mean nothing to B, B's own things otherwise; A is unchanged."""
    b = world.new_b()
    walk = Walk(b.client, world.app, key)
    ROUTES[key](world, b, walk)
    assert walk.sent, f"the case of {key} never sent it"
    assert_a_unchanged(world)


# --- selections ---------------------------------------------------------------------------


@ON_EACH_DATABASE
def test_selections_that_would_match_a_select_only_b(world, subtests):
    """Counted, previewed and dry-run by B (each case a subtest): B's contacts only."""
    a, b = world.a, world.new_b()
    tag = {"type": "tag", "tags": ["a-secret"]}
    cases = [
        ({}, B_LIVE),
        ({"deleted": "include"}, B_LIVE),
        ({"deleted": "only"}, 0),
        ({"include": [{"type": "tag", "tags": ["VIP"]}]}, 2),
        # A's names are unknown in B: a 422 at the name, never a count of A's contacts
        (
            {"include": [{"type": "tag", "tags": ["vip", "a-secret"], "match": "all"}]},
            "include[0].tags[1]",
        ),
        ({"include": [tag], "deleted": "include"}, "include[0].tags[0]"),
        ({"exclude": [tag]}, "exclude[0].tags[0]"),
        ({"filter": {"not": tag}}, "filter.not.tags[0]"),
        ({"include": [{"type": "group", "groups": ["Blacklist"]}]}, 2),
        ({"include": [{"type": "group", "groups": ["A Friends"]}]}, "include[0].groups[0]"),
        ({"include": [{"type": "funnel", "funnel": "Sales"}]}, 2),
        (
            {"include": [{"type": "funnel", "funnel": "Sales", "stages": ["Negotiation"]}]},
            "include[0].stages[0]",
        ),
        ({"include": [{"type": "funnel", "funnel": "A Pipeline"}]}, "include[0].funnel"),
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
        ({"include": mailings}, "include[0].mailings[0]"),
        ({"filter": {"or": mailings}}, "filter.or[0].mailings[0]"),
        ({"filter": {"not": {"or": mailings}}}, "filter.not.or[0].mailings[0]"),
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
        ({"include": a_only[:5], "deleted": "include"}, "include[0].tags[0]"),
        ({"filter": {"or": a_only}, "deleted": "include"}, "filter.or[0].tags[0]"),
        ({"filter": {"not": {"or": a_only[5:]}}}, B_LIVE),
    ]
    a_ids = set(a.contacts.values())
    for i, (spec, expected) in enumerate(cases):
        # a dry run (the same compiled selection) for some, and the last ones
        dry_run = i % 4 == 0 or i >= len(cases) - 3
        with subtests.test(msg=json.dumps(spec)):
            assert_b_selects(b, spec, expected, dry_run=dry_run)

    with subtests.test(msg="the look-alike contacts are B's, with B's data"):
        assert_look_alikes_are_b(b, a_ids)
    assert_a_unchanged(world)


def assert_b_selects(b: Account, spec: dict, expected: int | str, *, dry_run: bool) -> None:
    """B selects `expected` contacts, or (a path) the spec names what B lacks: a 422 there."""
    if isinstance(expected, str):
        add = [{"type": "add_tags", "tags": ["t"]}]
        for url, body in [
            ("/v1/selections/count", spec),
            ("/v1/selections/preview", {"selection": spec}),
            ("/v1/jobs?dry_run=true", {"selection": spec, "actions": add}),
        ]:
            r = b.client.post(url, json=body)
            assert r.status_code == 422, r.text
            where = expected if url.endswith("count") else f"selection.{expected}"
            assert r.json()["error"]["details"][0]["path"] == where, r.text
        return
    assert b.client.count(spec) == expected
    r = b.client.post("/v1/selections/preview", json={"selection": spec, "limit": 1000})
    assert r.status_code == 200, r.text
    found = r.json()
    assert found["total"] == len(found["contacts"]) == expected
    assert {c["id"] for c in found["contacts"]} <= set(b.contacts.values())
    if dry_run:
        add = [{"type": "add_tags", "tags": ["t"]}]
        r = b.client.post("/v1/jobs", json={"selection": spec, "actions": add}, params=DRY)
        assert r.status_code == 200, r.text
        assert r.json() == {
            "total": expected,
            "actions": [{"type": "add_tags", "affected": expected}],
        }


def assert_look_alikes_are_b(b: Account, a_ids: set[int]) -> None:
    spec = {"filter": {"field": "email", "op": "in", "value": SHARED}}
    found = b.client.post("/v1/selections/preview", json={"selection": spec}).json()
    anna = next(c for c in found["contacts"] if c["email"] == "anna@example.com")
    assert anna["id"] == b.contacts["anna@example.com"] not in a_ids
    assert anna["score"] == 1 and anna["details"] == {"plan": "silver"}
    assert anna["owners"] == ["owner@shop.com"] and anna["funnels"] == {"Sales": "Lead"}
    assert anna["tags"] == ["VIP"] and anna["groups"] == ["Blacklist"] and anna["city"] is None


# --- jobs ---------------------------------------------------------------------------------


@ON_EACH_DATABASE
def test_jobs_change_only_b(world):
    """B's jobs, with selections that would match A's data and every kind of action:
    they change B's contacts, all of them, and nothing of A's."""
    a, b = world.a, world.new_b()
    b_ids = set(b.contacts.values())
    b_emails = set(b.contacts)

    # selections that would match A's data (each counted alone by the selections
    # phase): nothing of B's, nothing at all of A's. A's names are unknown in B (a 422,
    # the selections phase shows it); these are the tests a selection may make freely.
    a_only = [
        {"field": "owner", "op": "eq", "value": "a-owner@shop.com"},
        {"detail": "a_detail", "op": "is_not_empty"},
        {"event": {"type": "A_EVENT"}, "agg": "count", "op": "gte", "value": 1},
        {"field": "email", "op": "in", "value": A_ONLY},
    ]
    destructive = [{"type": "set_score", "value": -1}, {"type": "delete"}]
    would_match_a = [
        {"filter": {"and": a_only[:2]}, "deleted": "include"},
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
    assert job["actions"] == [{"type": "set_score", "mode": "set", "value": 42, "affected": 3}]
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
        assert_affected(dry, expected)
    job = finish(b.client, submit(b.client, {**body, "expected_total": B_LIVE}))
    assert job["total"] == B_LIVE and job["processed"] == B_LIVE, job
    for (action, expected), done in zip(everything, job["actions"], strict=True):
        assert done["type"] == action["type"]
        assert_affected(done, expected)
    rows = output(b.client, job["id"])
    assert len(rows) == 2 * B_LIVE
    assert {int(row["contact_id"]) for row in rows} == b_ids
    assert {row["email"] for row in rows} == b_emails
    links = [row["value"] for row in rows if row["value"].startswith("https://")]
    assert len(links) == B_LIVE
    for link in links:
        token = link.rsplit("/", 1)[1]
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
    assert_a_unchanged(world)


def assert_affected(outcome: dict, expected: int | None) -> None:
    """`expected` contacts affected; None: any number of B's (identify_sex guesses from
    first names)."""
    if expected is None:
        assert 0 <= outcome["affected"] <= B_LIVE, outcome
    else:
        assert outcome["affected"] == expected, outcome
