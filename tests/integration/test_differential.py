"""Differential test of the selection compiler: the SQL answer (POST /v1/selections/preview
and /count) against tests/oracle/evaluator.py, a plain-Python pass over the same checked tree.

- A seeded random dataset of 240 contacts (one account, built once per database through
  the public API: contacts, funnels, mailings, events, saved segments, one delete job) plus
  a look-alike second account whose contacts must never be selected.
- Hypothesis specs: include/exclude selectors of every kind, and/or/not trees of field,
  detail and event tests with every operator, `deleted` modes, several as_of (a leap day,
  the year end, offsets whose date differs from UTC's).
- Two-valued logic: count(p) + count(not p) == count(all); `not not p` selects what p does.
- Fixed boundary specs, each saved segment, and, at the end, cases the random data leaves
  out: each a disagreement found here, xfail(strict) on the database where it happens.

`pytest --hypothesis-show-statistics` shows what the random specs covered."""

import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, Phase, event, given, note, settings
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy
from structlog.testing import capture_logs

from app.auth import create_account
from app.db import parse_date, parse_number
from app.errors import Invalid
from app.names import name_key
from tests.conftest import Scoped
from tests.oracle.evaluator import Contact, Event, Recipient, World, age_at, parse_time

SEED = 20260301
N_CONTACTS = 240
AS_OFS = [
    datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
    datetime(2024, 2, 29, 6, 0, tzinfo=UTC),  # a leap day
    datetime(2025, 12, 30, 23, 30, tzinfo=UTC),  # birthday windows wrap the year end
]
# The same instants, spelt several ways.
AS_OF_FORMS = [
    "2026-03-01T12:00:00Z",
    "2026-03-01T13:00:00+01:00",
    "2024-02-29T06:00:00Z",
    "2025-12-30T23:30:00Z",
    "2025-12-31T01:30:00+02:00",  # the 31st where it is said, the 30th in UTC
    "2024-02-28T23:00:00-07:00",  # 2024-02-29T06:00Z, said on the 28th
]
# "The date of as_of" is its date where it was said.
AS_OF_DATES = sorted({datetime.fromisoformat(f).date() for f in AS_OF_FORMS})

TAGS = ["VIP", "vip", "Vip", "newsletter", "NEWSLETTER", "ŁÓDŹ", "łódź", "Straße", "b2b", "B2B"]
TAGS += ["100%", "a_b"]
GROUPS = ["Blacklist", "blacklist", "Partners", "Łódź Group", "ŁÓDŹ GROUP"]
FUNNELS = {
    "Sales": ["Lead", "Offer", "Won", "Lost"],
    "Onboarding": ["Start", "Łódź Stage", "Done"],
    "Empty Funnel": ["Only"],
}
OWNERS = ["Alice@Example.com", "bob@example.com", "carol@sales.example.org", "łukasz@firma.pl"]
DOMAINS = ["example.com", "Example.COM", "gmail.com", "poczta.pl", "łódź.pl", "sub.example.com"]
DOMAINS += ["a_b.org", "per%cent.net", "x.co"]
FIRST_NAMES = ["Anna", "ANNA", "anna", "Łukasz", "ŁUKASZ", "Zoë", "Jürgen", "José", "O'Brien"]
FIRST_NAMES += ["Ann_a", "50%", "a/b", "", "  "]
LAST_NAMES = ["Nowak", "NOWAK", "Straße", "STRASSE", "Kowalska", "Müller", "MÜLLER", "Иванов"]
LAST_NAMES += ["ИВАНОВ", "van der Berg"]
PHONES = ["+48 600 100 200", "600100200", "+49-30-1234", "", "(0) 12_34"]
COMPANIES = ["ACME", "Acme Sp. z o.o.", "acme", "Ünternehmen GmbH", "Zażółć Gęślą", ""]
COMPANIES += ["100% Pure", "under_score", "back\\slash"]
CITIES = ["Łódź", "ŁÓDŹ", "łódź", "Lodz", "Kraków", "KRAKÓW", "München", "Straße", "Berlin", ""]
COUNTRIES = ["PL", "pl", "DE", "US", "gb"]
SEXES = ["female", "MALE", "Female", "unknown", "male"]
STATES = ["UNKNOWN", "PROSPECT", "CUSTOMER", "partner", "OTHER"]
EVENT_TYPES = ["PURCHASE", "purchase", "CART", "VISIT", "CANCELLATION", "OTHER"]
PRODUCTS = [None, "", "Running Shoes", "shoes; SOCKS", "Książka", "100% cotton", "a_b/c"]
PRODUCTS += ["ŁÓDŹ souvenir"]
DETAILS = {
    "plan": ["Gold", "GOLD", "silver", "", "Złoty", "100%", "a_b", "Straße"],
    "Plan": ["Premium", "basic"],
    "ltv": ["12", " 3.5 ", "-7", "1e3", ".5", "5.", "+3", "0", "abc", "", "12abc", "1,5"],
    "signup": ["2024-02-29", "2023-02-30", "2025-12-31T10:00:00", "2026-03-01", "not a date"],
    "mixed": ["42", "2026-01-15", "text", "7.5", "2026-02-29", "2024-02-29 junk"],
}
# (Values past the double range, like 1e400, are left to a test of their own:
# test_detail_parsing_follows_parse_number_and_parse_date.)
DETAILS["ltv"] += ["-0.25", "NaN", "1e308", "1e1000", "1_000", "007", "12.0", " 2e-3", "0x10"]
DETAILS["signup"] += ["", "2025-13-01", "20240101", "2026-02-01", "2024-02-28", "2025-12-30"]
SEGMENTS = {  # created in this order; names are matched ignoring case
    "VIP Buyers": {
        "include": [{"type": "tag", "tags": ["vip"]}],
        "filter": {"event": {"type": "PURCHASE"}, "agg": "count", "op": "gte", "value": 1},
    },
    "Łódź People": {  # a stored deleted/as_of is ignored: the outer spec's apply
        "filter": {"field": "city", "op": "eq", "value": "ŁÓDŹ"},
        "deleted": "only",
        "as_of": "2020-01-01T00:00:00Z",
    },
    "Birthday Soon": {
        "filter": {"field": "birth_date", "op": "birthday_within_days", "value": 14},
        "as_of": "2020-06-01T00:00:00Z",
    },
    "Nested": {
        "include": [
            {"type": "segment", "segments": ["vip BUYERS"]},
            {"type": "group", "groups": ["partners"]},
        ],
        "exclude": [{"type": "segment", "segments": ["łódź people"]}],
        "filter": {"not": {"field": "age", "op": "lt", "value": 18}},
    },
    "Recent Activity": {
        "filter": {
            "or": [
                {"event": {"within_days": 30}, "agg": "count", "op": "gte", "value": 2},
                {"field": "created_at", "op": "within_last_days", "value": 10},
            ]
        }
    },
    "Only Excludes": {"exclude": [{"type": "tag", "tags": ["newsletter"]}]},
    "Deep": {
        "include": [{"type": "segment", "segments": ["NESTED", "only excludes"]}],
        "filter": {"detail": "ltv", "as": "number", "op": "gt", "value": 5},
    },
}

# --- the dataset ------------------------------------------------------------------------


def _years_back(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def _birth_date(rng: random.Random) -> date | None:
    kind = rng.randrange(9)
    as_of = rng.choice(AS_OF_DATES)
    if kind == 0:
        return None
    if kind == 1:
        return date(rng.choice([1980, 1988, 1996, 2000, 2004]), 2, 29)
    if kind == 2:
        return date(rng.randint(1950, 2010), rng.choice([2, 3]), 1) - timedelta(
            days=rng.choice([0, 1, 2])
        )
    if kind == 3:  # near as_of's day of the year
        return _years_back(as_of, rng.randint(1, 70)) + timedelta(days=rng.randint(-5, 20))
    if kind == 4:  # around the year end
        return date(rng.randint(1950, 2010), 12, 20) + timedelta(days=rng.randint(0, 22))
    if kind == 5:  # an age boundary
        return _years_back(as_of, rng.choice([18, 30, 65])) + timedelta(days=rng.choice([-1, 0, 1]))
    if kind == 6:
        return rng.choice([date(2027, 6, 1), date(1900, 1, 1), date(2026, 3, 2), date(2024, 3, 1)])
    return date(1930, 1, 1) + timedelta(days=rng.randint(0, 30_000))


def _moment(rng: random.Random) -> datetime:
    """A time near one of the as_ofs, often exactly on a window boundary."""
    as_of = rng.choice(AS_OFS)
    kind = rng.randrange(6)
    if kind == 0:
        return as_of - timedelta(days=rng.choice([0, 1, 7, 10, 30, 31, 90]))
    if kind == 1:
        return as_of - timedelta(days=rng.choice([1, 7, 30]), microseconds=rng.choice([-1, 1]))
    if kind == 2:
        return datetime(2015, 6, 1, tzinfo=UTC) + timedelta(seconds=rng.randint(0, 10**8))
    if kind == 3:
        return as_of + timedelta(days=rng.randint(1, 30), seconds=rng.randint(0, 86_399))
    return as_of - timedelta(
        seconds=rng.randint(0, 120 * 86_400), microseconds=rng.randrange(10**6)
    )


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def _contact(rng: random.Random, i: int) -> dict:
    first = rng.choice(FIRST_NAMES + [None] * 3)
    local = (first or "user").strip().replace(" ", "") or "x"
    c: dict = {"email": f"{local}.{i}@{rng.choice(DOMAINS)}"}
    for name, pool, absent in (
        ("first_name", FIRST_NAMES, 3),
        ("last_name", LAST_NAMES, 3),
        ("phone", PHONES, 4),
        ("company", COMPANIES, 4),
        ("city", CITIES, 3),
        ("country", COUNTRIES, 3),
        ("sex", SEXES, 4),
        ("state", STATES, 4),
    ):
        value = rng.choice(pool + [None] * absent)
        if value is not None:
            c[name] = value
    if (birth := _birth_date(rng)) is not None:
        c["birth_date"] = birth.isoformat()
    if rng.random() < 0.8:
        c["score"] = rng.choice([rng.randint(-100, 100), 0, -1, 1, 2**40, -(2**40)])
    for flag in ("email_opt_in", "phone_opt_in", "email_valid"):
        if rng.random() < 0.6:
            c[flag] = rng.random() < 0.5
    if rng.random() < 0.8:
        c["created_at"] = _iso(_moment(rng))
    c["tags"] = rng.sample(TAGS, rng.choice([0, 0, 1, 1, 2, 3]))
    c["groups"] = rng.sample(GROUPS, rng.choice([0, 0, 0, 1, 2]))
    c["owners"] = rng.sample(OWNERS, rng.choice([0, 0, 1, 1, 2]))
    c["details"] = {
        name: rng.choice(values) for name, values in DETAILS.items() if rng.random() < 0.5
    }
    funnels = {}
    for funnel, stages in FUNNELS.items():
        if funnel != "Empty Funnel" and rng.random() < 0.4:
            f = rng.choice([funnel, funnel.lower(), funnel.upper()])
            funnels[f] = rng.choice([s for s in stages] + [stages[0].upper()])
    c["funnels"] = funnels
    return c


def _event(rng: random.Random, email: str) -> dict:
    e = {"email": email, "type": rng.choice(EVENT_TYPES), "occurred_at": _iso(_moment(rng))}
    if rng.random() < 0.75:
        e["value"] = rng.randint(-160, 1600) / 4  # quarters: sums are exact in floating point
    products = rng.choice(PRODUCTS)
    if products is not None:
        e["products"] = products
    return e


@dataclass
class Dataset:
    client: Scoped
    world: World
    mailing_ids: list[int]
    other_mailing_id: int
    other_ids: set[int]
    strategies: dict = field(default_factory=dict)

    def preview(self, spec: dict) -> list[int]:
        r = self.client.post("/v1/selections/preview", json={"selection": spec, "limit": 1000})
        assert r.status_code == 200, r.text
        body = r.json()
        ids = [c["id"] for c in body["contacts"]]
        assert body["total"] == len(ids), body["total"]
        assert ids == sorted(ids)
        return ids

    def count(self, spec: dict) -> int:
        return self.client.count(spec)


def _build(api, engine) -> Dataset:
    rng = random.Random(SEED)
    with engine.begin() as conn:
        _, key = create_account(conn, f"differential-{uuid.uuid4().hex[:8]}")
        _, other_key = create_account(conn, f"differential-other-{uuid.uuid4().hex[:8]}")
    client, other = Scoped(api, key), Scoped(api, other_key)

    for name, stages in FUNNELS.items():
        assert client.post("/v1/funnels", json={"name": name, "stages": stages}).status_code == 201
    contacts = [_contact(rng, i) for i in range(N_CONTACTS)]
    assert client.load(*contacts)["created"] == N_CONTACTS
    emails = [c["email"].lower() for c in contacts]

    mailing_ids, sent = [], []
    for name, sent_at, share in (
        ("February", "2026-02-01T09:00:00Z", 0.35),
        ("December", "2025-12-01T09:00:00Z", 0.25),
        ("Nobody", "2026-01-01T09:00:00Z", 0.0),
    ):
        recipients = []
        for email in emails:
            if rng.random() < share:
                r: dict = {"email": email}
                if rng.random() < 0.5:
                    r["opened_at"] = "2026-02-02T10:00:00Z"
                if rng.random() < 0.3:
                    r["clicked_at"] = "2026-02-02T10:05:00Z"
                if rng.random() < 0.2:
                    r["bounced"] = True
                recipients.append(r)
        body = {"name": name, "sent_at": sent_at, "recipients": recipients}
        r = client.post("/v1/mailings", json=body)
        assert r.status_code == 201, r.text
        mailing_ids.append(r.json()["id"])
        sent.append(recipients)

    events = [_event(rng, rng.choice(emails)) for _ in range(700)]
    r = client.post("/v1/events", json={"events": events})
    assert r.status_code == 200, r.text

    for name, spec in SEGMENTS.items():
        r = client.post("/v1/segments", json={"name": name, "selection": spec})
        assert r.status_code == 201, r.text

    doomed = rng.sample(emails, 25)
    job = client.run(
        {"filter": {"field": "email", "op": "in", "value": doomed}}, [{"type": "delete"}]
    )
    assert job["status"] == "succeeded", job

    # Another account with look-alike data: none of it may ever be selected.
    other.post("/v1/funnels", json={"name": "Sales", "stages": ["Lead"]})
    other.load(
        *(
            {"email": e, "tags": ["VIP"], "groups": ["Partners"], "funnels": {"Sales": "Lead"}}
            for e in emails[:10]
        )
    )
    r = other.post(
        "/v1/mailings",
        json={
            "name": "Other",
            "sent_at": "2026-02-01T09:00:00Z",
            "recipients": [{"email": e, "opened_at": "2026-02-02T10:00:00Z"} for e in emails[:10]],
        },
    )
    other_mailing_id = r.json()["id"]
    other.post(
        "/v1/events",
        json={
            "events": [
                {"email": e, "type": "PURCHASE", "occurred_at": "2026-02-27T00:00:00Z", "value": 1}
                for e in emails[:10]
            ]
        },
    )
    other.post("/v1/segments", json={"name": "VIP Buyers", "selection": {}})
    other_ids = set(
        Dataset(other, World([]), [], 0, set()).preview(
            {"deleted": "include", "as_of": "2026-01-01"}
        )
    )

    # The stored contacts, as the API shows them, plus what only this test knows.
    r = client.post(
        "/v1/selections/preview", json={"selection": {"deleted": "include"}, "limit": 1000}
    )
    stored = {c["email"]: Contact.from_api(c) for c in r.json()["contacts"]}
    assert len(stored) == N_CONTACTS
    for e in events:
        stored[e["email"].lower()].events.append(
            Event(e["type"], parse_time(e["occurred_at"]), e.get("value"), e.get("products"))
        )
    for mailing_id, recipients in zip(mailing_ids, sent, strict=True):
        for r in recipients:
            stored[r["email"]].mailings[mailing_id] = Recipient(
                opened="opened_at" in r, clicked="clicked_at" in r, bounced=r.get("bounced", False)
            )
    # Planner statistics, as autovacuum (PostgreSQL) and the app (SQLite) keep them: on
    # tables never analysed the planner takes every probe for one row and nests loops in
    # loops (a saved segment's count took 15 s on these 571 contacts).
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    catalog = {
        "tag": {t for c in stored.values() for t in c.tags},
        "group": {g for c in stored.values() for g in c.groups},
        "funnel": set(FUNNELS),
        "stage": {(f, s) for f, stages in FUNNELS.items() for s in stages},
        "mailing": set(mailing_ids),
    }
    world = World(list(stored.values()), SEGMENTS, catalog)
    ds = Dataset(client, world, mailing_ids, other_mailing_id, other_ids)
    ds.strategies = make_strategies(ds)
    return ds


# --- strategies -------------------------------------------------------------------------

ANY_OPS = ["eq", "ne", "in", "not_in", "is_empty", "is_not_empty"]
TEXT_OPS = ANY_OPS + ["contains", "not_contains", "starts_with", "ends_with"]
ORDERED_OPS = ANY_OPS + ["lt", "lte", "gt", "gte", "between"]
DATE_OPS = ORDERED_OPS + ["within_last_days", "older_than_days"]
FIELD_KINDS = {
    "email": "text",
    "email_domain": "text",
    "first_name": "text",
    "last_name": "text",
    "phone": "text",
    "company": "text",
    "city": "text",
    "country": "text",
    "owner": "text",
    "sex": "enum",
    "state": "enum",
    "score": "number",
    "age": "number",
    "tag_count": "number",
    "birth_date": "date",
    "created_at": "datetime",
    "updated_at": "datetime",
    "email_opt_in": "bool",
    "phone_opt_in": "bool",
    "email_valid": "bool",
}
OPS = {"text": TEXT_OPS, "enum": TEXT_OPS, "number": ORDERED_OPS, "date": DATE_OPS}
OPS |= {"datetime": DATE_OPS, "bool": ANY_OPS}
CHOICES = {"sex": ["female", "male", "unknown"], "state": [s.upper() for s in STATES]}
VARIANTS = (str, str.lower, str.upper, str.swapcase, str.title)
OFFSETS = [0, 0, 0, 1, -1, 0.5, -0.5, 0.25]
TIME_DELTAS = [timedelta(0)] * 4 + [
    timedelta(microseconds=1),
    timedelta(microseconds=-1),
    timedelta(seconds=1),
    timedelta(seconds=-1),
    timedelta(days=1),
    timedelta(days=-1),
    timedelta(days=-30),
]
PLUS2 = timezone(timedelta(hours=2))


def variant(text: str) -> SearchStrategy[str]:
    return st.sampled_from(VARIANTS).map(lambda f: f(text))


def names(pool: list[str]) -> SearchStrategy[str]:
    """A name from the pool, spelt another way that still names it ('Straße' upper-cased
    is 'STRASSE', another name: unknown, a 422)."""
    return st.sampled_from(pool).flatmap(
        lambda name: variant(name).filter(lambda v: name_key(v) == name_key(name))
    )


@st.composite
def text_operand(draw, pool: list[str]) -> str:
    base = draw(st.sampled_from(pool))
    how = draw(st.integers(0, 3))
    if how == 1:  # a piece of a value
        i = draw(st.integers(0, len(base)))
        base = base[i : draw(st.integers(i, len(base)))]
    elif how == 2:
        return draw(st.text(alphabet="aAeEłŁöÖß%_/\\.@ -1", max_size=3))
    return draw(variant(base)) if how != 3 else base


def number_operand(pool: list[float]) -> SearchStrategy:
    return st.one_of(
        st.tuples(st.sampled_from(pool), st.sampled_from(OFFSETS)).map(lambda t: t[0] + t[1]),
        st.integers(-3, 3),
    )


def date_operand(pool: list[date]) -> SearchStrategy[str]:
    return st.tuples(st.sampled_from(pool), st.integers(-2, 2)).map(
        lambda t: (t[0] + timedelta(days=t[1])).isoformat()
    )


def format_time(t: datetime, style: int) -> str:
    if style == 1:
        return t.astimezone(PLUS2).isoformat()
    if style == 2:  # no offset: UTC
        return t.replace(tzinfo=None).isoformat()
    if style == 3:  # a bare date: its midnight UTC
        return t.date().isoformat()
    return _iso(t)


def time_operand(pool: list[datetime], styles=(0, 0, 1, 2, 3)) -> SearchStrategy[str]:
    return st.builds(
        lambda t, d, s: format_time(t + d, s),
        st.sampled_from(pool),
        st.sampled_from(TIME_DELTAS),
        st.sampled_from(styles),
    )


def day_counts(pool: list[int]) -> SearchStrategy[int]:
    return st.one_of(st.integers(0, 40), st.sampled_from(sorted(set(pool))))


def make_strategies(ds: Dataset) -> dict:
    contacts = ds.world.contacts
    text_pools: dict[str, list[str]] = {}
    for name in FIELD_KINDS:
        if FIELD_KINDS[name] == "text":
            if name == "owner":
                values = [o for c in contacts for o in c.owners]
            elif name == "email_domain":
                values = [c.email.split("@", 1)[1] for c in contacts]
            else:
                values = [getattr(c, name) for c in contacts]
            text_pools[name] = sorted({v for v in values if v}) + ["", "a", "%", "_", "ß", "x"]
    for name in CHOICES:
        text_pools[name] = CHOICES[name] + ["mal", "al", "CUST", "", "%"]
    dates = sorted({c.birth_date for c in contacts if c.birth_date} | set(AS_OF_DATES))
    times = sorted(
        {c.created_at for c in contacts}
        | {c.updated_at for c in contacts}
        | {e.occurred_at for c in contacts for e in c.events}
        | set(AS_OFS)
    )
    event_values = sorted({e.value for c in contacts for e in c.events if e.value is not None})
    ages = [age_at(c.birth_date, a) for c in contacts if c.birth_date for a in AS_OF_DATES]
    date_days = [(a - d).days + k for a in AS_OF_DATES for d in dates for k in (0, 1) if a >= d]
    time_days = [(a - t).days + k for a in AS_OFS for t in times for k in (0, 1) if a >= t]
    date_days += [365, 366, 10_000, 40_000, 1_000_000]
    time_days += [365, 10_000, 1_000_000]
    birthday_days = st.one_of(
        st.integers(0, 70), st.sampled_from([59, 60, 61, 300, 364, 365, 366, 1000, 1_000_000])
    )
    numbers = {
        "score": sorted({c.score for c in contacts} | {0}),
        "age": sorted(set(ages) | {-1, 0, 200}),
        "tag_count": [0, 1, 2, 3, 4],
    }
    detail_texts = sorted({v for vs in DETAILS.values() for v in vs if v}) + ["", "g", "%"]
    parsed = [parse_number(v) for vs in DETAILS.values() for v in vs]
    # Operands stay within 64 bits: the API refuses larger ones with a 422.
    detail_numbers = sorted({x for x in parsed if x is not None and abs(x) < 2**62})
    detail_dates = sorted({x for x in map(parse_date, sum(DETAILS.values(), [])) if x is not None})
    products = [p for p in PRODUCTS if p] + ["", "SHOE", "ó", "%", "_", "/"]

    def scalar(kind: str, pool_name: str | None = None, **pools) -> SearchStrategy:
        if kind == "text":
            return text_operand(pools.get("texts") or text_pools[pool_name])
        if kind == "enum":
            return names(CHOICES[pool_name])
        if kind == "number":
            return number_operand(pools.get("numbers") or numbers[pool_name])
        if kind == "date":
            return date_operand(pools.get("dates") or dates)
        if kind == "datetime":
            return time_operand(times)
        return st.booleans()

    @st.composite
    def test_node(draw, head: dict, kind: str, ops: list[str], **pools) -> dict:
        op = draw(st.sampled_from(ops))
        node = {**head, "op": op}
        one = scalar(kind, **pools)
        if op in ("is_empty", "is_not_empty"):
            return node
        if op in ("in", "not_in"):
            values = draw(st.lists(one, max_size=4))
            node["value"] = values
        elif op == "between":
            node["value"] = draw(st.lists(one, min_size=2, max_size=2))
        elif op == "birthday_within_days":
            node["value"] = draw(birthday_days)
        elif op in ("within_last_days", "older_than_days"):
            node["value"] = draw(day_counts(date_days if kind == "date" else time_days))
        elif op in ("contains", "not_contains", "starts_with", "ends_with"):
            name = pools.get("pool_name")
            texts = pools.get("texts") or text_pools[name]
            node["value"] = draw(text_operand(texts))
        else:
            node["value"] = draw(one)
        return node

    @st.composite
    def field_test(draw, name: str | None = None) -> dict:
        name = name or draw(st.sampled_from(sorted(FIELD_KINDS)))
        kind = FIELD_KINDS[name]
        ops = OPS[kind] + (["birthday_within_days"] * 2 if name == "birth_date" else [])
        return draw(test_node({"field": name}, kind, ops, pool_name=name))

    @st.composite
    def detail_test(draw, as_: str | None = "?") -> dict:
        name = draw(st.sampled_from([*DETAILS, "nope"]))
        if as_ == "?":
            as_ = draw(st.sampled_from([None, "string", "number", "number", "date", "date"]))
        kind = {None: "text", "string": "text", "number": "number", "date": "date"}[as_]
        head = {"detail": name} | ({"as": as_} if as_ else {})
        pools = {"texts": detail_texts, "numbers": detail_numbers, "dates": detail_dates}
        return draw(test_node(head, kind, OPS[kind], **pools))

    aware_time = time_operand(times, styles=(0, 1))

    @st.composite
    def event_test(draw, agg: str = "?") -> dict:
        f = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "type": st.sampled_from([*EVENT_TYPES, "Purchase", "NOPE"]),
                    "within_days": st.sampled_from([0, 1, 7, 10, 30, 31, 90, 1000, 1_000_000]),
                    "from": aware_time,
                    "to": aware_time,
                    "products_contains": text_operand(products),
                    "value_gte": number_operand(event_values),
                    "value_lte": number_operand(event_values),
                },
            )
        )
        if "from" in f and "to" in f and parse_time(f["from"]) > parse_time(f["to"]):
            f["from"], f["to"] = f["to"], f["from"]
        if agg == "?":
            agg = draw(st.sampled_from(["bare", "count", "sum", "max", "last_at"]))
        if agg == "bare":
            return {"event": f, "agg": "count", "op": "gte", "value": 1}  # "has such an event"
        head = {"event": f, "agg": agg}
        if agg == "last_at":
            return draw(test_node(head, "datetime", DATE_OPS))
        pool = [0, 1, 2, 3] if agg == "count" else event_values + [0]
        return draw(test_node(head, "number", ORDERED_OPS, numbers=pool))

    # Only names that exist: an unknown one is a 422 (test_unknown_names_are_422).
    mailing_ids = st.sampled_from(ds.mailing_ids)
    selectors = dict(
        tag=st.builds(
            lambda tags, match: {"type": "tag", "tags": tags} | ({"match": match} if match else {}),
            st.lists(names(TAGS), min_size=1, max_size=3),
            st.sampled_from([None, "any", "all", "all"]),
        ),
        funnel=st.sampled_from(list(FUNNELS)).flatmap(
            lambda name: st.builds(
                lambda funnel, stages: (
                    {"type": "funnel", "funnel": funnel} | ({"stages": stages} if stages else {})
                ),
                variant(name),
                st.one_of(st.none(), st.lists(names(FUNNELS[name]), min_size=1, max_size=3)),
            )
        ),
        mailing=st.builds(
            lambda ids, event: (
                {"type": "mailing", "mailings": ids} | ({"event": event} if event else {})
            ),
            st.lists(mailing_ids, min_size=1, max_size=3),
            st.sampled_from([None, "sent", "opened", "not_opened", "clicked", "bounced"]),
        ),
        group=st.builds(
            lambda groups: {"type": "group", "groups": groups},
            st.lists(names(GROUPS), min_size=1, max_size=2),
        ),
        segment=st.builds(
            lambda segments: {"type": "segment", "segments": segments},
            st.lists(names(list(SEGMENTS)), min_size=1, max_size=2),
        ),
    )
    selector = st.one_of(*selectors.values())

    kinds = {
        "field": field_test(),
        "selector": selector,
        "detail": detail_test(),
        "event": event_test(),
    }

    @st.composite
    def leaf(draw) -> dict:
        kind = draw(st.sampled_from(["field", "field", "field", "selector", "detail", "event"]))
        return draw(kinds[kind])

    leaf = leaf()
    condition = st.recursive(
        leaf,
        lambda children: st.one_of(
            st.lists(children, max_size=3).map(lambda xs: {"and": xs}),
            st.lists(children, max_size=3).map(lambda xs: {"or": xs}),
            children.map(lambda x: {"not": x}),
        ),
        max_leaves=8,
    )

    @st.composite
    def spec(draw) -> dict:
        out: dict = {"as_of": draw(st.sampled_from(AS_OF_FORMS))}
        if draw(st.integers(0, 2)) == 0:
            out["include"] = draw(st.lists(selector, max_size=3))
        if draw(st.integers(0, 2)) == 0:
            out["exclude"] = draw(st.lists(selector, max_size=2))
        if draw(st.integers(0, 4)) > 0:
            out["filter"] = draw(condition)
        deleted = draw(st.sampled_from([None, None, "exclude", "only", "include"]))
        if deleted:
            out["deleted"] = deleted
        return out

    # One strategy per kind of test: every field, every detail type, every aggregate,
    # every selector kind.
    slots = {f"field {name}": field_test(name) for name in sorted(FIELD_KINDS)}
    slots |= {f"detail as {as_}": detail_test(as_) for as_ in (None, "number", "date")}
    slots |= {f"event {agg}": event_test(agg) for agg in ("bare", "count", "sum", "max", "last_at")}
    slots |= {f"selector {kind}": sel for kind, sel in selectors.items()}
    return {
        "slots": slots,
        "spec": spec(),
        "condition": condition,
        "leaf": leaf,
        "as_of": st.sampled_from(AS_OF_FORMS),
        "deleted": st.sampled_from(["exclude", "only", "include"]),
    }


# --- the tests --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ds(api, engine) -> Dataset:
    return _build(api, engine)


def _explain(ds: Dataset, spec: dict, got: set[int], expected: set[int]) -> str:
    by_id = {c.id: c for c in ds.world.contacts}
    lines = [
        f"spec: {json.dumps(spec, ensure_ascii=False)}",
        f"SQL only: {sorted(got - expected)}; evaluator only: {sorted(expected - got)}",
    ]
    for cid in sorted(got ^ expected)[:3]:
        c = by_id.get(cid)
        lines.append(f"  contact {cid}: {c if c else 'NOT IN THIS ACCOUNT'}")
    return "\n".join(lines)


def _check(ds: Dataset, spec: dict) -> set[int]:
    expected = ds.world.select(spec)
    got = set(ds.preview(spec))
    assert not got & ds.other_ids, "another account's contacts were selected"
    assert got == expected, _explain(ds, spec, got, expected)
    return got


def _bucket(n: int) -> str:
    return "0" if n == 0 else "1-9" if n < 10 else "10-99" if n < 100 else "100+"


FAST = dict(deadline=None, suppress_health_check=list(HealthCheck), database=None)


def test_dataset_is_varied(ds):
    contacts = ds.world.contacts
    assert sum(c.deleted for c in contacts) == 25
    assert any(c.birth_date and (c.birth_date.month, c.birth_date.day) == (2, 29) for c in contacts)
    assert any(c.city == "ŁÓDŹ" for c in contacts) and any(c.city == "łódź" for c in contacts)
    assert len({c.email.split("@")[1] for c in contacts}) > 5
    assert sum(len(c.events) for c in contacts) == 700
    recipients = [r for c in contacts for r in c.mailings.values()]
    assert any(c.mailings for c in contacts) and any(not c.mailings for c in contacts)
    for happened in ("opened", "clicked", "bounced"):
        assert any(getattr(r, happened) for r in recipients), happened
    assert any(not r.opened for r in recipients)


@settings(max_examples=300, **FAST)
@given(data=st.data())
def test_selection_agrees_with_the_contract(ds, data):
    got = _check(ds, data.draw(ds.strategies["spec"], label="spec"))
    event(f"selected {_bucket(len(got))}")


@settings(max_examples=80, **FAST)
@given(data=st.data())
def test_two_valued_logic(ds, data):
    """count(p) + count(not p) == count(all), and `not not p` selects what p selects."""
    p = data.draw(ds.strategies["condition"], label="p")
    base = {
        "as_of": data.draw(ds.strategies["as_of"]),
        "deleted": data.draw(ds.strategies["deleted"]),
    }
    note(json.dumps(p, ensure_ascii=False))
    total = ds.count(base)
    yes = ds.count({**base, "filter": p})
    no = ds.count({**base, "filter": {"not": p}})
    assert yes + no == total, (yes, no, total)
    assert set(ds.preview({**base, "filter": {"not": {"not": p}}})) == ds.world.select(
        {**base, "filter": p}
    )


# No shrinking: every draw is already one labelled test, and a request per test makes
# shrinking slow.
@settings(max_examples=40, phases=[Phase.explicit, Phase.reuse, Phase.generate], **FAST)
@given(data=st.data())
def test_every_kind_of_test_agrees_with_the_contract(ds, data):
    """One test of every kind (each field with its operators, each detail type, each event
    aggregate, each selector kind) alone, by count; ids when the counts differ."""
    base = {
        "as_of": data.draw(ds.strategies["as_of"]),
        "deleted": data.draw(ds.strategies["deleted"]),
    }
    for slot, strategy in ds.strategies["slots"].items():
        _agree(ds, {**base, "filter": data.draw(strategy, label=slot)})


def _fixed_specs() -> list[dict]:
    """Boundaries the random specs may miss, spelt out."""
    specs: list[dict] = []
    for as_of in ("2026-03-01T12:00:00Z", "2024-02-29T06:00:00Z", *AS_OF_FORMS[-2:]):
        filters: list[dict] = []
        for owner in OWNERS:
            for op in ("eq", "ne", "not_contains", "starts_with"):
                filters.append({"field": "owner", "op": op, "value": owner.upper()})
            filters.append({"field": "owner", "op": "not_in", "value": [owner, "x@y.z"]})
        filters += [{"field": "owner", "op": op} for op in ("is_empty", "is_not_empty")]
        for n in (0, 1, 2, 3, 14, 30, 59, 60, 61, 300, 364, 365, 366):
            filters.append({"field": "birth_date", "op": "birthday_within_days", "value": n})
        for age in (17, 18, 19, 29, 30, 31, 64, 65, 66):
            for op in ("eq", "lt", "gte", "gt", "lte"):
                filters.append({"field": "age", "op": op, "value": age})
            filters.append({"field": "age", "op": "between", "value": [age - 0.5, age + 0.5]})
        for days in (0, 1, 7, 10, 30, 31, 90):
            filters.append(
                {"event": {"within_days": days}, "agg": "count", "op": "gte", "value": 1}
            )
            for op in ("within_last_days", "older_than_days"):
                filters.append({"field": "created_at", "op": op, "value": days})
                filters.append({"event": {}, "agg": "last_at", "op": op, "value": days})
        for agg in ("sum", "max"):
            for op in ("is_empty", "ne", "lt", "eq"):
                filters.append({"event": {"type": "CART"}, "agg": agg, "op": op, "value": 0})
        for f in filters:
            if f.get("op") in ("is_empty", "is_not_empty"):
                f.pop("value", None)
            specs.append({"as_of": as_of, "filter": f})
    return specs


def _agree(ds: Dataset, spec: dict) -> None:
    """The SQL count equals the evaluator's; on a difference, the ids tell which contacts."""
    expected = ds.world.select(spec)
    if ds.count(spec) != len(expected):
        _check(ds, spec)
        raise AssertionError(f"the count differs, the ids agree: {json.dumps(spec)}")


def test_fixed_boundaries(ds):
    for spec in _fixed_specs():
        _agree(ds, {**spec, "deleted": "include"})
    for mailing_id in ds.mailing_ids:
        for kind in ("sent", "opened", "not_opened", "clicked", "bounced"):
            selector = {"type": "mailing", "mailings": [mailing_id], "event": kind}
            _check(ds, {"as_of": AS_OF_FORMS[0], "include": [selector]})


def test_saved_segments(ds):
    """Each saved segment on its own, under every as_of and deleted mode (a stored segment's
    own deleted and as_of are ignored)."""
    for name in SEGMENTS:
        for as_of in AS_OF_FORMS[::2]:
            for deleted in ("exclude", "only", "include"):
                base = {"as_of": as_of, "deleted": deleted}
                got = _check(ds, {**base, "include": [{"type": "segment", "segments": [name]}]})
                selector = {"type": "segment", "segments": [name.upper()]}
                assert ds.count({**base, "filter": selector}) == len(got)
                everyone = len(ds.world.select(base))
                assert ds.count({**base, "filter": {"not": selector}}) == everyone - len(got)


def test_unknown_names_are_422(ds):
    """An unknown name is a 422 at its path, in SQL's pipeline and in the oracle alike
    (another account's mailing is unknown here)."""
    funnel, stages = next(iter(FUNNELS.items()))
    cases = [
        ({"type": "segment", "segments": ["no such"]}, "include[0].segments"),
        ({"type": "tag", "tags": [TAGS[0], "unknown-tag"]}, "include[0].tags[1]"),
        ({"type": "group", "groups": ["no group"]}, "include[0].groups[0]"),
        ({"type": "funnel", "funnel": "Nope"}, "include[0].funnel"),
        (
            {"type": "funnel", "funnel": funnel, "stages": [stages[0], "Nope"]},
            "include[0].stages[1]",
        ),
        (
            {"type": "mailing", "mailings": [ds.mailing_ids[0], ds.other_mailing_id]},
            "include[0].mailings[1]",
        ),
        ({"type": "mailing", "mailings": [10**9]}, "include[0].mailings[0]"),
    ]
    for selector, path in cases:
        spec = {"as_of": AS_OF_FORMS[0], "include": [selector]}
        r = ds.client.post("/v1/selections/count", json=spec)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["details"][0]["path"] == path
        with pytest.raises(Invalid) as caught:
            ds.world.select(spec)
        assert caught.value.details[0]["path"] == path


# --- cases the random data leaves out -----------------------------------------------------
# Each is a disagreement between the SQL and the contract found by this file (see the
# reasons); marked xfail(strict) on the database where it happens, so a fix shows up.

PG_UNDERFLOW = (
    "PostgreSQL compares a detail as an exact numeric, so 1e-400 = 0 is false there, where "
    "parse_number's double (0.0) says true (and SQLite agrees with it); left as it is: "
    "exact is the better answer, and no marketer's detail is 1e-400"
)


def _known_bug(request, engine, **reasons: str) -> None:
    reason = reasons.get(engine.dialect.name)
    if reason:
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))


@pytest.mark.parametrize(
    "value,op,operand,bugs",
    [
        pytest.param("Łódź", "eq", "ŁÓDŹ", {}, id="polish-eq"),
        pytest.param("Straße", "contains", "STRA", {}, id="sharp-s-contains"),
        pytest.param("İstanbul", "eq", "İstanbul", {}, id="dotted-I-eq"),
        pytest.param("İstanbul", "contains", "İ", {}, id="dotted-I-contains"),
        pytest.param("ΟΔΟΣ", "eq", "ΟΔΟΣ", {}, id="sigma-eq-itself"),
        pytest.param("ΟΔΟΣ", "eq", "οδος", {}, id="sigma-eq-lower"),
        pytest.param("ΟΔΟΣ", "ends_with", "ος", {}, id="sigma-ends-with"),
        pytest.param("ΟΔΟΣ", "contains", "Σ", {}, id="sigma-contains"),
    ],
)
def test_text_matches_itself_ignoring_case(request, engine, client, value, op, operand, bugs):
    _known_bug(request, engine, **bugs)
    client.load({"email": "a@x.com", "city": value}, {"email": "b@x.com", "city": "other"})
    assert client.count({"filter": {"field": "city", "op": op, "value": operand}}) == 1
    if op == "eq":
        assert client.count({"filter": {"field": "city", "op": "ne", "value": operand}}) == 1


NUMBER_CHECKS = [("gt", 41.5), ("lte", 41.5), ("gt", 41), ("eq", 12), ("eq", 0), ("lt", 0.5)]


@pytest.mark.parametrize(
    "as_,value,bugs",
    [
        pytest.param("number", "12", {}, id="plain"),
        pytest.param("number", " +12.0e0 ", {}, id="spelt-out"),
        pytest.param("number", "12\n", {}, id="number-newline"),
        pytest.param("number", "１２", {}, id="full-width-digits"),
        pytest.param("number", " 12\u00a0", {}, id="no-break-space"),
        pytest.param("number", "1e-400", {"postgresql": PG_UNDERFLOW}, id="underflow"),
        pytest.param("number", "1e400", {}, id="overflow"),
        pytest.param("number", "9" * 400, {}, id="many-digits"),
        pytest.param("number", "1e1000", {}, id="long-exponent"),
        pytest.param("date", "2024-02-29", {}, id="leap-day"),
        pytest.param("date", "2024-01-01\n", {}, id="date-newline"),
        pytest.param("date", "2024-01-01T\nx", {}, id="date-T-newline"),
        pytest.param("date", "2023-02-29", {}, id="date-invalid"),
        pytest.param("date", "2024-04-31", {}, id="date-past-month-end"),
        pytest.param("date", "0000-01-01", {}, id="year-zero"),
        pytest.param("date", "2024-02-29 whatever", {}, id="date-junk"),
    ],
)
def test_detail_parsing_follows_parse_number_and_parse_date(
    request, engine, client, as_, value, bugs
):
    """A detail's value parses as app.db.parse_number / parse_date say (the rule), and
    compares as that value; one that does not parse is no value."""
    _known_bug(request, engine, **bugs)
    parsed = parse_number(value) if as_ == "number" else parse_date(value)
    client.load({"email": "a@x.com", "details": {"d": value}})

    def count(op: str, operand=None) -> int:
        test = {"detail": "d", "as": as_, "op": op}
        if operand is not None:
            test["value"] = operand
        with capture_logs():  # a 500's traceback, rendered with locals, takes seconds
            r = client.post("/v1/selections/count", json={"filter": test})
        assert r.status_code == 200, (op, operand, r.text)
        return r.json()["total"]

    assert count("is_empty") == (parsed is None)
    if as_ == "number":
        for op, operand in NUMBER_CHECKS:
            expected = (
                parsed is not None
                and {
                    "gt": parsed > operand,
                    "lte": parsed <= operand,
                    "eq": parsed == operand,
                    "lt": parsed < operand,
                }[op]
            )
            assert count(op, operand) == expected, (op, operand)
    elif parsed is not None:
        assert count("eq", parsed.isoformat()) == 1
        assert count("lt", "2024-03-01") == (parsed < date(2024, 3, 1))


def test_big_scores_compare_exactly(client):
    client.load({"email": "a@x.com", "score": 2**53 + 1})
    assert client.count({"filter": {"field": "score", "op": "gt", "value": 2**53}}) == 1
    assert client.count({"filter": {"field": "score", "op": "eq", "value": float(2**53)}}) == 0
    assert client.count({"filter": {"field": "score", "op": "gt", "value": float(2**53)}}) == 1


def test_event_window_mixing_offset_and_no_offset(client):
    """'from' without an offset is UTC, next to an aware 'to'."""
    client.load({"email": "a@x.com"})
    client.post(
        "/v1/events",
        json={
            "events": [{"email": "a@x.com", "type": "VISIT", "occurred_at": "2026-01-10T00:00Z"}]
        },
    )
    window = {"from": "2026-01-10T00:00:00", "to": "2026-02-01T00:00:00+01:00"}
    assert client.count({"filter": {"event": window, "agg": "count", "op": "gte", "value": 1}}) == 1
    window = {"from": "2026-01-10T00:00:01", "to": "2026-02-01T00:00:00+01:00"}
    assert client.count({"filter": {"event": window, "agg": "count", "op": "gte", "value": 1}}) == 0


FRACTIONS = [
    ({"field": "score", "op": "in", "value": [-54.5, 2.5]}, set()),
    ({"field": "score", "op": "in", "value": [2, 3, -54.5, -16]}, {"c", "d"}),
    ({"field": "score", "op": "not_in", "value": [-16, -54.5]}, {"a", "b", "c", "d"}),
    ({"field": "score", "op": "in", "value": [-54.5, 3]}, {"d"}),
    ({"field": "tag_count", "op": "in", "value": [0, 1.5]}, {"a"}),
    ({"event": {}, "agg": "count", "op": "in", "value": [0, 1.5]}, {"a", "b"}),
    ({"field": "score", "op": "not_in", "value": [-54.5, 2.5]}, {"a", "b", "c", "d"}),
    ({"field": "score", "op": "eq", "value": 2.5}, set()),
    ({"field": "score", "op": "ne", "value": 2.5}, {"a", "b", "c", "d"}),
    ({"field": "score", "op": "gt", "value": 2.5}, {"d"}),
    ({"field": "score", "op": "lt", "value": -54.5}, {"a"}),
    ({"field": "score", "op": "between", "value": [2.5, 3.5]}, {"d"}),
    ({"field": "tag_count", "op": "in", "value": [0.5, 1.5]}, set()),
    ({"field": "tag_count", "op": "gt", "value": 1.5}, {"d"}),
    ({"event": {}, "agg": "count", "op": "in", "value": [1.5]}, set()),
    ({"event": {}, "agg": "count", "op": "eq", "value": 1.5}, set()),
    ({"event": {}, "agg": "count", "op": "gte", "value": 1.5}, {"d"}),
]


@pytest.mark.parametrize("test,expected", FRACTIONS, ids=[json.dumps(f) for f, _ in FRACTIONS])
def test_fractional_operands_on_whole_numbers(client, test, expected):
    """score, tag_count and counts are whole numbers; an operand like 2.5 is compared as it
    is, never rounded to the column's type."""
    client.load(
        {"email": "a@x.com", "score": -55},
        {"email": "b@x.com", "score": -54, "tags": ["t1"]},
        {"email": "c@x.com", "score": 2, "tags": ["t1"]},
        {"email": "d@x.com", "score": 3, "tags": ["t1", "t2"]},
    )
    at = "2026-01-01T00:00:00Z"
    events = [{"email": e, "type": "X", "occurred_at": at} for e in ("c@x.com", "d@x.com")]
    client.post("/v1/events", json={"events": events + [events[-1]]})
    r = client.post("/v1/selections/preview", json={"selection": {"filter": test}, "limit": 1000})
    assert r.status_code == 200, r.text
    assert {c["email"].split("@")[0] for c in r.json()["contacts"]} == expected
