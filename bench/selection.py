"""The count endpoint on `audience seed` data: against hand-written SQL on PostgreSQL,
against the clock on SQLite.

    python -m bench.selection [--url postgresql://…/audience_bench] [--contacts 1000000]
                              [--others N] [--runs 7]
    python -m bench.selection --url sqlite:////tmp/audience_bench.db --contacts 200000

PostgreSQL: `--contacts` in the measured account and `--others` (default a fifth) in a
second one, so every table holds rows the account filter must skip. Each spec of the
suite has 2–4 hand-written twins (EXISTS, IN, joins, set operations, probing from the
selective side); the fastest twin in the same run is the reference. Two sides run
interleaved, run by run: as `audience_app` under row-level security (what production
runs; an `audience serve` logged in that way, and a connection that names the account
once for the hand-written SQL) and as the tables' owner (a superuser, no policies). For
each side: the median wall time of POST /v1/selections/count (a real `audience serve`
process, over HTTP: parsing, the key and name lookups, compiling, the count) and of each
twin (psycopg, the ids of the names looked up beforehand, for free); every total must
agree. Prints a table a side with the ratios, then what row-level security costs the
full-scan count and whether the typical spec is under 150 ms.

SQLite (the embedded default): whether each is under a second, then how much a slow
count delays other requests (a count, a read, a write), each probe's latency alone and
while a slow count runs.
"""

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import httpx
import sqlalchemy as sa

from app.db import make_engine
from bench.common import (
    DEFAULT_URL,
    Server,
    database,
    is_sqlite,
    median,
    seeded_account,
    table,
    timed,
    verdict,
)

AS_OF = datetime.now(UTC).replace(microsecond=0)
TODAY = AS_OF.date()


def years_before(n: int) -> date:
    try:
        return TODAY.replace(year=TODAY.year - n)
    except ValueError:  # 29 February
        return TODAY.replace(year=TODAY.year - n, day=28)


LIVE = "c.account_id = :a AND NOT c.deleted"
ENGAGED = {  # the saved segment the suite names
    "include": [{"type": "tag", "tags": ["newsletter", "webinar"]}],
    "filter": {"field": "email_opt_in", "op": "eq", "value": True},
}
# The names the suite uses; the hand-written SQL gets their ids for free (looked up once,
# before timing), the endpoint looks them up in every request.
TAGS = {"A": "webinar", "B": "VIP", "X": "churn-risk", "N": "newsletter"}
FUNNEL, STAGES = "Sales", ("Offer", "Negotiation")


@dataclass(frozen=True)
class Case:
    """A spec of the suite and its hand-written twins (style → SQL count): on
    PostgreSQL, the fastest twin in the same run is the reference."""

    name: str
    spec: dict
    hand: dict[str, str]


def live(where: str) -> str:
    return f"SELECT count(*) FROM contacts c WHERE {LIVE} AND {where}"


def joined(rows: str) -> str:
    """Count the live contacts among the distinct contact ids `rows` selects."""
    return f"SELECT count(*) FROM ({rows}) AS x JOIN contacts c ON c.id = x.contact_id AND {LIVE}"


def probed(rows: str) -> str:
    """Drive from the (small) set of ids `rows` selects, probing contacts by key."""
    return (
        f"SELECT count(*) FROM ({rows}) AS x WHERE EXISTS (SELECT 1 FROM contacts c "
        f"WHERE c.id = x.contact_id AND {LIVE})"
    )


def tag_rows(tag: str) -> str:
    return f"SELECT contact_id FROM contact_tags WHERE account_id = :a AND tag_id = :{tag}"


def has_tag(tag: str) -> str:
    return f"EXISTS (SELECT 1 FROM contact_tags t WHERE t.contact_id = c.id AND t.tag_id = :{tag})"


def suite(mailings: list[int]) -> list[Case]:
    """The specs, at least one of each kind of the counts issue's table. Names as in
    TAGS; mailing M is the first of `mailings` (bound as :m)."""
    m = mailings[0]
    purchases = (
        "SELECT contact_id FROM events WHERE account_id = :a AND type = 'PURCHASE' "
        "AND occurred_at >= :d{days} AND occurred_at <= :now"
    )
    p30, p90 = purchases.format(days=30), purchases.format(days=90)
    age = "c.birth_date > :born41 AND c.birth_date <= :born25"
    received = "SELECT contact_id FROM mailing_recipients WHERE account_id = :a AND mailing_id = :m"
    md = "(EXTRACT(MONTH FROM c.birth_date)::int * 100 + EXTRACT(DAY FROM c.birth_date)::int)"
    plan_pro = (
        "SELECT contact_id FROM contact_details WHERE account_id = :a AND name = 'plan' "
        "AND lower(value) = 'pro'"
    )
    nested_where = (
        "((lower(c.country) = 'pl' AND {pro}) OR (lower(c.country) IN ('de', 'gb') "
        "AND (c.city IS NULL OR lower(c.city) <> 'berlin') AND c.created_at >= :d365 "
        "AND c.created_at <= :now))"
    )
    return [
        Case(
            "all live contacts (full scan)",
            {},
            {
                "NOT deleted": f"SELECT count(*) FROM contacts c WHERE {LIVE}",
                "= false": "SELECT count(*) FROM contacts c WHERE c.account_id = :a "
                "AND c.deleted = false",
                "all minus deleted": "SELECT count(*) - count(*) FILTER (WHERE deleted) "
                "FROM contacts WHERE account_id = :a",
            },
        ),
        Case(
            "tag A or tag B",
            {"include": [{"type": "tag", "tags": [TAGS["A"], TAGS["B"]]}]},
            {
                "EXISTS": live(
                    "EXISTS (SELECT 1 FROM contact_tags t WHERE t.contact_id = c.id "
                    "AND t.tag_id IN (:A, :B))"
                ),
                "IN": live(
                    "c.id IN (SELECT contact_id FROM contact_tags WHERE account_id = :a "
                    "AND tag_id IN (:A, :B))"
                ),
                "UNION": joined(f"{tag_rows('A')} UNION {tag_rows('B')}"),
                "count DISTINCT": "SELECT count(DISTINCT t.contact_id) FROM contact_tags t "
                f"JOIN contacts c ON c.id = t.contact_id AND {LIVE} "
                "WHERE t.account_id = :a AND t.tag_id IN (:A, :B)",
            },
        ),
        Case(
            "tag A and tag B",
            {"include": [{"type": "tag", "tags": [TAGS["A"], TAGS["B"]], "match": "all"}]},
            {
                "EXISTS ×2": live(f"{has_tag('A')} AND {has_tag('B')}"),
                "IN ×2": live(f"c.id IN ({tag_rows('A')}) AND c.id IN ({tag_rows('B')})"),
                "join": "SELECT count(*) FROM contact_tags a JOIN contact_tags b ON "
                "b.contact_id = a.contact_id AND b.account_id = :a AND b.tag_id = :B "
                f"JOIN contacts c ON c.id = a.contact_id AND {LIVE} "
                "WHERE a.account_id = :a AND a.tag_id = :A",
                "INTERSECT": joined(f"{tag_rows('A')} INTERSECT {tag_rows('B')}"),
            },
        ),
        Case(
            "funnel F at stage S1 or S2",
            {"include": [{"type": "funnel", "funnel": FUNNEL, "stages": list(STAGES)}]},
            {
                "EXISTS": live(
                    "EXISTS (SELECT 1 FROM contact_funnels f WHERE f.contact_id = c.id "
                    "AND f.funnel_id = :F AND f.stage_id IN (:S1, :S2))"
                ),
                "IN": live(
                    "c.id IN (SELECT contact_id FROM contact_funnels WHERE account_id = :a "
                    "AND funnel_id = :F AND stage_id IN (:S1, :S2))"
                ),
                "join": joined(
                    "SELECT contact_id FROM contact_funnels WHERE account_id = :a "
                    "AND funnel_id = :F AND stage_id IN (:S1, :S2)"
                ),
            },
        ),
        Case(
            "opened mailing M",
            {"include": [{"type": "mailing", "mailings": [m], "event": "opened"}]},
            {
                "EXISTS": live(
                    "EXISTS (SELECT 1 FROM mailing_recipients r WHERE r.contact_id = c.id "
                    "AND r.mailing_id = :m AND r.opened_at IS NOT NULL)"
                ),
                "IN": live(f"c.id IN ({received} AND opened_at IS NOT NULL)"),
                "join": joined(f"{received} AND opened_at IS NOT NULL"),
            },
        ),
        Case(
            "received M, did not open",
            {
                "include": [{"type": "mailing", "mailings": [m], "event": "sent"}],
                "exclude": [{"type": "mailing", "mailings": [m], "event": "opened"}],
            },
            {
                "EXISTS, NOT EXISTS": live(
                    "EXISTS (SELECT 1 FROM mailing_recipients r WHERE r.contact_id = c.id "
                    "AND r.mailing_id = :m) AND NOT EXISTS (SELECT 1 FROM mailing_recipients r "
                    "WHERE r.contact_id = c.id AND r.mailing_id = :m AND r.opened_at IS NOT NULL)"
                ),
                "one row: opened_at IS NULL": joined(f"{received} AND opened_at IS NULL"),
                "EXCEPT": joined(f"{received} EXCEPT {received} AND opened_at IS NOT NULL"),
            },
        ),
        Case(
            "tag A, not tag X",
            {
                "include": [{"type": "tag", "tags": [TAGS["A"]]}],
                "exclude": [{"type": "tag", "tags": [TAGS["X"]]}],
            },
            {
                "EXISTS, NOT EXISTS": live(f"{has_tag('A')} AND NOT {has_tag('X')}"),
                "IN, NOT EXISTS": live(f"c.id IN ({tag_rows('A')}) AND NOT {has_tag('X')}"),
                "EXCEPT": joined(f"{tag_rows('A')} EXCEPT {tag_rows('X')}"),
                "LEFT JOIN … IS NULL": "SELECT count(*) FROM contact_tags a LEFT JOIN "
                "contact_tags x ON x.contact_id = a.contact_id AND x.tag_id = :X "
                f"JOIN contacts c ON c.id = a.contact_id AND {LIVE} "
                "WHERE a.account_id = :a AND a.tag_id = :A AND x.contact_id IS NULL",
            },
        ),
        Case(
            "age 25–40 and score ≥ 50",
            {
                "filter": {
                    "and": [
                        {"field": "age", "op": "between", "value": [25, 40]},
                        {"field": "score", "op": "gte", "value": 50},
                    ]
                }
            },
            {
                "birth date range": live(f"{age} AND c.score >= 50"),
                "age()": live(
                    "date_part('year', age(:today, c.birth_date)) BETWEEN 25 AND 40 "
                    "AND c.score >= 50"
                ),
            },
        ),
        Case(
            "≥ 2 purchases in 30 days",
            {
                "filter": {
                    "event": {"type": "PURCHASE", "within_days": 30},
                    "agg": "count",
                    "op": "gte",
                    "value": 2,
                }
            },
            {
                "IN (GROUP BY)": live(f"c.id IN ({p30} GROUP BY contact_id HAVING count(*) >= 2)"),
                "join (GROUP BY)": joined(f"{p30} GROUP BY contact_id HAVING count(*) >= 2"),
                "probe contacts": probed(f"{p30} GROUP BY contact_id HAVING count(*) >= 2"),
            },
        ),
        Case(
            "purchase sum 90 days > 500",
            {
                "filter": {
                    "event": {"type": "PURCHASE", "within_days": 90},
                    "agg": "sum",
                    "op": "gt",
                    "value": 500,
                }
            },
            {
                "IN (GROUP BY)": live(
                    f"c.id IN ({p90} GROUP BY contact_id HAVING sum(value) > 500)"
                ),
                "join (GROUP BY)": joined(f"{p90} GROUP BY contact_id HAVING sum(value) > 500"),
                "probe contacts": probed(f"{p90} GROUP BY contact_id HAVING sum(value) > 500"),
            },
        ),
        Case(
            "birthday in the next 7 days",
            {"filter": {"field": "birth_date", "op": "birthday_within_days", "value": 7}},
            {
                "to_char IN": live(
                    "to_char(c.birth_date, 'MMDD') IN ("
                    + ", ".join(
                        f"'{(TODAY + timedelta(days=k)).strftime('%m%d')}'" for k in range(8)
                    )
                    + ")"
                ),
                "month*100+day IN": live(
                    f"{md} IN ("
                    + ", ".join(
                        str(
                            (TODAY + timedelta(days=k)).month * 100
                            + (TODAY + timedelta(days=k)).day
                        )
                        for k in range(8)
                    )
                    + ")"
                ),
            },
        ),
        Case(
            "typical: (A or B) ∧ ¬X ∧ age 25–40 ∧ a purchase in 30 days",
            {
                "include": [
                    {"type": "tag", "tags": [TAGS["A"]]},
                    {"type": "tag", "tags": [TAGS["B"]]},
                ],
                "exclude": [{"type": "tag", "tags": [TAGS["X"]]}],
                "filter": {
                    "and": [
                        {"field": "age", "op": "between", "value": [25, 40]},
                        {
                            "event": {"type": "PURCHASE", "within_days": 30},
                            "agg": "count",
                            "op": "gte",
                            "value": 1,
                        },
                    ]
                },
            },
            {
                "EXISTS": live(
                    "EXISTS (SELECT 1 FROM contact_tags t WHERE t.contact_id = c.id AND "
                    f"t.tag_id IN (:A, :B)) AND NOT {has_tag('X')} AND {age} AND EXISTS "
                    "(SELECT 1 FROM events e WHERE e.contact_id = c.id AND e.type = 'PURCHASE' "
                    "AND e.occurred_at >= :d30 AND e.occurred_at <= :now)"
                ),
                "IN": live(
                    "c.id IN (SELECT contact_id FROM contact_tags WHERE account_id = :a AND "
                    f"tag_id IN (:A, :B)) AND NOT {has_tag('X')} AND {age} AND c.id IN ({p30})"
                ),
                "from purchases": "SELECT count(*) FROM contacts c WHERE c.id IN (" + p30 + ") "
                f"AND {LIVE} AND {age} AND EXISTS (SELECT 1 FROM contact_tags t WHERE "
                f"t.contact_id = c.id AND t.tag_id IN (:A, :B)) AND NOT {has_tag('X')}",
            },
        ),
        Case(
            "nested OR/AND/NOT over details, country, city, created",
            {
                "filter": {
                    "or": [
                        {
                            "and": [
                                {"field": "country", "op": "eq", "value": "PL"},
                                {"detail": "plan", "op": "eq", "value": "pro"},
                            ]
                        },
                        {
                            "and": [
                                {"field": "country", "op": "in", "value": ["DE", "GB"]},
                                {"not": {"field": "city", "op": "eq", "value": "Berlin"}},
                                {"field": "created_at", "op": "within_last_days", "value": 365},
                            ]
                        },
                    ]
                }
            },
            {
                "EXISTS": live(
                    nested_where.format(
                        pro="EXISTS (SELECT 1 FROM contact_details d WHERE d.contact_id = c.id "
                        "AND d.name = 'plan' AND lower(d.value) = 'pro')"
                    )
                ),
                "IN": live(nested_where.format(pro=f"c.id IN ({plan_pro})")),
            },
        ),
        Case(
            "no visit in 90 days, opted in",
            {
                "filter": {
                    "and": [
                        {
                            "event": {"type": "VISIT", "within_days": 90},
                            "agg": "count",
                            "op": "eq",
                            "value": 0,
                        },
                        {"field": "email_opt_in", "op": "eq", "value": True},
                    ]
                }
            },
            {
                "NOT EXISTS": live(
                    "c.email_opt_in AND NOT EXISTS (SELECT 1 FROM events e WHERE "
                    "e.contact_id = c.id AND e.type = 'VISIT' AND e.occurred_at >= :d90 "
                    "AND e.occurred_at <= :now)"
                ),
                "EXCEPT": "SELECT count(*) FROM (SELECT id FROM contacts c WHERE "
                f"{LIVE} AND c.email_opt_in EXCEPT SELECT contact_id FROM events WHERE "
                "account_id = :a AND type = 'VISIT' AND occurred_at >= :d90 "
                "AND occurred_at <= :now) AS x",
            },
        ),
        Case(
            "saved segment (2 tags, opted in), minus a tag",
            {
                "include": [{"type": "segment", "segments": ["Engaged"]}],
                "exclude": [{"type": "tag", "tags": [TAGS["X"]]}],
            },
            {
                "EXISTS": live(
                    "EXISTS (SELECT 1 FROM contact_tags t WHERE t.contact_id = c.id AND "
                    f"t.tag_id IN (:N, :A)) AND c.email_opt_in AND NOT {has_tag('X')}"
                ),
                "IN": live(
                    "c.id IN (SELECT contact_id FROM contact_tags WHERE account_id = :a AND "
                    f"tag_id IN (:N, :A)) AND c.email_opt_in AND NOT {has_tag('X')}"
                ),
            },
        ),
    ]


# What a request costs beyond its query: a count the unique (account, e-mail) index
# answers at once.
FLOOR = Case(
    "one e-mail",
    {"filter": {"field": "email", "op": "eq", "value": "nobody@bench.example"}},
    {"=": live("c.email = 'nobody@bench.example'")},
)


def first_mailings(conn, account_id: int) -> list[int]:
    """The account's first three mailings: the ones the suite's mailing specs name."""
    query = sa.text("SELECT id FROM mailings WHERE account_id = :a ORDER BY id LIMIT 3")
    return list(conn.execute(query, {"a": account_id}).scalars())


def bindings(conn, account_id: int, mailings: list[int]) -> dict:
    """The values the hand-written SQL binds: the account, the moments, and the ids of
    the names the suite uses."""

    def one(sql: str, **params) -> int:
        return conn.execute(sa.text(sql), {"a": account_id, **params}).scalar_one()

    tag = "SELECT id FROM tags WHERE account_id = :a AND name_key = :k"
    funnel = one("SELECT id FROM funnels WHERE account_id = :a AND name_key = :k", k="sales")
    stage = "SELECT id FROM stages WHERE account_id = :a AND funnel_id = :f AND name_key = :k"
    return {
        "a": account_id,
        "now": AS_OF,
        "today": TODAY,
        "m": mailings[0],
        **{key: one(tag, k=name.lower()) for key, name in TAGS.items()},
        "F": funnel,
        **{f"S{i + 1}": one(stage, f=funnel, k=s.lower()) for i, s in enumerate(STAGES)},
        **{f"d{n}": AS_OF - timedelta(days=n) for n in (30, 90, 365)},
        "born41": years_before(41),
        "born25": years_before(25),
    }


# Counts that run for seconds at 200,000 contacts: one bound by SQL, one by the Python
# functions SQLite calls for PostgreSQL's (lower() for every name, for every test).
SLOW = {
    "10 event sums": {
        "filter": {
            "or": [
                {"event": {"type": "PURCHASE"}, "agg": "sum", "op": "gt", "value": 100 + i}
                for i in range(10)
            ]
        }
    },
    "20 name searches": {
        "filter": {
            "or": [{"field": "first_name", "op": "contains", "value": f"q{i}"} for i in range(20)]
        }
    },
}
# (method, path, body) of the requests timed while a slow count runs; the first three are
# cheap (a few ms alone), the tag count is not (it reads ~2,000 of 370,000 tag links).
PROBES = {
    "count (one e-mail)": (
        "POST",
        "/v1/selections/count",
        {"filter": {"field": "email", "op": "eq", "value": "nobody@bench.example"}},
    ),
    "read (GET /v1/jobs)": ("GET", "/v1/jobs?limit=1", None),
    "write (upsert a contact)": (
        "POST",
        "/v1/contacts",
        {"contacts": [{"email": "probe@bench.example", "tags": ["probe"]}]},
    ),
    "count (a rare tag)": (
        "POST",
        "/v1/selections/count",
        {"include": [{"type": "tag", "tags": ["influencer"]}]},
    ),
}
CHEAP = list(PROBES)[:3]
BUSY_CPU = [sys.executable, "-c", "while True: pass"]


def count(http: httpx.Client, spec: dict) -> int:
    r = http.post(
        "/v1/selections/count",
        content=json.dumps(spec),
        headers={"Content-Type": "application/json"},
    )
    r.raise_for_status()
    return r.json()["total"]


@dataclass
class Measured:
    case: Case
    total: int
    endpoint: float  # median seconds
    hand: dict[str, float]  # style → median seconds

    @property
    def best(self) -> tuple[str, float]:
        return min(self.hand.items(), key=lambda item: item[1])

    @property
    def ratio(self) -> float:
        return self.endpoint / self.best[1]


@dataclass(frozen=True)
class Side:
    """Who runs the counts: an API process and a connection for the hand-written SQL,
    both logged in the same way."""

    label: str
    http: httpx.Client
    conn: sa.Connection


def against_hand_sql(
    sides: list[Side], bound: dict, cases: list[Case], runs: int
) -> dict[str, list[Measured]]:
    """Each spec's endpoint time and each of its hand-written twins', on every side,
    interleaved run by run (the same database, the same run); every total must agree."""
    measured: dict[str, list[Measured]] = {side.label: [] for side in sides}
    for case in cases:
        spec = {**case.spec, "as_of": AS_OF.isoformat()}
        times: dict[tuple[str, str], list[float]] = {}
        steps = []
        for side in sides:
            steps.append((side.label, "", lambda spec=spec, side=side: count(side.http, spec)))
            for style, sql in case.hand.items():
                run = lambda sql=sql, side=side: side.conn.execute(sa.text(sql), bound).scalar_one()  # noqa: E731
                steps.append((side.label, style, run))
        totals = {(label, style): step() for label, style, step in steps}  # warm every one
        total = totals[(sides[0].label, "")]
        assert set(totals.values()) == {total}, (case.name, totals)
        for _ in range(runs):
            for label, style, step in steps:
                times.setdefault((label, style), []).append(timed(step)[0])
        for side in sides:
            hand = {style: median(times[(side.label, style)]) for style in case.hand}
            endpoint = median(times[(side.label, "")])
            measured[side.label].append(Measured(case, total, endpoint, hand))
    return measured


def print_ratios(title: str, measured: list[Measured]) -> None:
    rows = [
        [
            m.case.name,
            f"{m.total:,}",
            f"{m.endpoint * 1000:.1f}",
            f"{m.best[1] * 1000:.1f}",
            m.best[0],
            f"{m.ratio:.2f}",
            ", ".join(f"{s} {t * 1000:.0f}" for s, t in m.hand.items()),
        ]
        for m in measured
    ]
    ratios = [m.ratio for m in measured]
    print(f"\n{title}\n")
    headers = [
        "spec",
        "total",
        "endpoint ms",
        "best hand ms",
        "best style",
        "ratio",
        "all twins ms",
    ]
    print(table(headers, rows))
    print(
        f"\nmedian ratio {median(ratios):.2f} ({verdict(median(ratios) <= 1.1)}: ≤ 1.1), "
        f"worst {max(ratios):.2f} ({verdict(max(ratios) <= 1.5)}: ≤ 1.5)"
    )


def endpoint_times(http, mailings: list[int], runs: int) -> list[float]:
    """Each spec's endpoint time against the target (SQLite: under a second); prints the
    table, returns the medians."""
    rows, medians = [], []
    for case in suite(mailings):
        name, spec = case.name, {**case.spec, "as_of": AS_OF.isoformat()}
        count(http, spec)  # warm
        times = []
        for _ in range(runs):
            dt, total = timed(lambda spec=spec: count(http, spec))
            times.append(dt)
        medians.append(median(times))
        ms = median(times) * 1000
        rows.append(
            [name, f"{total:,}", f"{ms:.1f}", f"{max(times) * 1000:.1f}", verdict(ms < 1000)]
        )
    print(table(["spec", "total", "endpoint ms", "worst ms", "< 1,000 ms"], rows))
    return medians


def probe(http: httpx.Client, name: str) -> float:
    method, path, body = PROBES[name]
    dt, r = timed(lambda: http.request(method, path, json=body))
    r.raise_for_status()
    return dt


def probe_rounds(http: httpx.Client, rounds: int, until=None) -> dict[str, list[float]]:
    """Every probe in turn, `rounds` times, or until `until()` holds."""
    times: dict[str, list[float]] = {name: [] for name in PROBES}
    for _ in range(rounds) if until is None else iter(lambda: until(), True):
        for name in PROBES:
            times[name].append(probe(http, name))
    return times


def interference(base: str, headers: dict, rounds: int) -> None:
    """How much a slow count delays other requests: each probe's latency alone, beside a
    process that only burns a CPU (what sharing 2 cores costs, no database involved), and
    while a slow count runs (sent by another client); prints the table and the worst
    delay a cheap request saw."""
    seen: dict[str, dict[str, list[float]]] = {}
    with httpx.Client(base_url=base, headers=headers, timeout=300) as http:
        probe_rounds(http, 1)  # warm: a connection's first request opens and reads the schema
        seen["nothing else"] = probe_rounds(http, rounds)
        busy = subprocess.Popen(BUSY_CPU)
        try:
            seen["a busy CPU, no database"] = probe_rounds(http, rounds)
        finally:
            busy.kill()
            busy.wait()
        for slow_name, spec in SLOW.items():
            with (
                httpx.Client(base_url=base, headers=headers, timeout=300) as other,
                ThreadPoolExecutor(1) as pool,
            ):
                slow = pool.submit(timed, lambda spec=spec, other=other: count(other, spec))
                time.sleep(0.3)
                during = probe_rounds(http, rounds, until=slow.done)
                slow_s, _total = slow.result()
            seen[f"{slow_name} ({slow_s:.1f} s)"] = during
    rows = [
        [label, *(" / ".join(f"{q * 1000:.0f}" for q in spread(ts)) for ts in times.values())]
        for label, times in seen.items()
    ]
    print(table(["while", *(f"{name} ms" for name in PROBES)], rows))
    alone = seen["nothing else"]
    during_slow = [times for label, times in seen.items() if label.startswith(tuple(SLOW))]
    p99, worst = (
        max(pick(times[name]) - median(alone[name]) for times in during_slow for name in CHEAP)
        for pick in (lambda ts: spread(ts)[1], max)
    )
    print(
        f"\n(median / 99th percentile / worst of each probe.) Added delay of a cheap request "
        f"while a slow count runs: {p99 * 1000:.0f} ms at the 99th percentile, "
        f"{worst * 1000:.0f} ms at worst ({verdict(worst < 0.1)}: < 100 ms)"
    )


def spread(times: list[float]) -> tuple[float, float, float]:
    """(median, 99th percentile, worst)."""
    ordered = sorted(times)
    return median(ordered), ordered[int(0.99 * (len(ordered) - 1))], ordered[-1]


APP_ROLE = "?options=-c%20role%3Daudience_app"  # as the API and workers log in


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument(
        "--others", type=int, default=None, help="contacts of a second account (default: a fifth)"
    )
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    engine = database(args.url)
    sqlite = is_sqlite(args.url)
    others = args.contacts // 5 if args.others is None else args.others
    if others and not sqlite:
        seeded_account(engine, others)  # rows of another account in every table
    account_id, key = seeded_account(engine, args.contacts)
    with engine.begin() as conn:
        mailings = first_mailings(conn, account_id)
        bound = None if sqlite else bindings(conn, account_id, mailings)
    headers = {"Authorization": f"Bearer {key}"}
    if sqlite:
        with (
            Server(args.url, demo="false", rate_limit_per_s=0) as server,
            httpx.Client(base_url=server.base, headers=headers, timeout=300) as http,
        ):
            http.post("/v1/segments", json={"name": "Engaged", "selection": ENGAGED})
            print(f"\n{args.contacts:,} contacts, SQLite, median of {args.runs} runs\n")
            medians = endpoint_times(http, mailings, args.runs)
            print(f"\nslowest {max(medians) * 1000:.0f} ms\n")
            interference(server.base, headers, rounds=max(50, args.runs))
        return
    logins = {
        "as audience_app, under row-level security (production)": args.url + APP_ROLE,
        "as the tables' owner (a superuser: no row-level security)": args.url,
    }
    with ExitStack() as stack:
        sides = []
        for label, url in logins.items():
            server = stack.enter_context(Server(url, demo="false", rate_limit_per_s=0))
            http = stack.enter_context(
                httpx.Client(base_url=server.base, headers=headers, timeout=300)
            )
            conn = stack.enter_context(
                make_engine(url).connect().execution_options(isolation_level="AUTOCOMMIT")
            )
            # the account for the whole session: the hand-written side sets it once
            conn.exec_driver_sql(f"SELECT set_config('audience.account_id', '{account_id}', false)")
            sides.append(Side(label, http, conn))
        sides[0].http.post("/v1/segments", json={"name": "Engaged", "selection": ENGAGED})
        print(
            f"\n{args.contacts:,} contacts (and {others:,} in another account), PostgreSQL, "
            f"median of {args.runs} interleaved runs"
        )
        measured = against_hand_sql(sides, bound, suite(mailings), args.runs)
        floor = against_hand_sql(sides, bound, [FLOOR], max(args.runs, 15))
    for label, rows in measured.items():
        print_ratios(label, rows)
    app, owner = (measured[side.label] for side in sides)
    full = [(a, o) for a, o in zip(app, owner, strict=True) if not a.case.spec]
    for a, o in full:
        endpoint = a.endpoint / o.endpoint - 1
        hand = a.best[1] / o.best[1] - 1
        print(
            f"\nrow-level security on the full-scan count: endpoint {endpoint:+.0%}, "
            f"best hand SQL {hand:+.0%} ({verdict(endpoint <= 0.1)}: ≤ 10 %)"
        )
    for label, (m,) in floor.items():
        print(
            f"\nthe floor {label.split(',')[0]}: a count of one e-mail takes "
            f"{m.endpoint * 1000:.1f} ms through the endpoint, {m.best[1] * 1000:.1f} ms by hand"
        )
    typical = next(m for m in app if m.case.name.startswith("typical"))
    print(
        f"typical spec as audience_app: {typical.endpoint * 1000:.0f} ms "
        f"({verdict(typical.endpoint < 0.15)}: < 150 ms)"
    )


if __name__ == "__main__":
    main()
