"""The count endpoint on `audience seed` data: against hand-written SQL on PostgreSQL,
against the clock on SQLite.

    python -m bench.selection [--url postgresql://…/audience_bench] [--contacts 1000000]
    python -m bench.selection --url sqlite:////tmp/audience_bench.db --contacts 200000

For each spec of the suite: the median wall time of POST /v1/selections/count (a real
`audience serve` process, over HTTP). PostgreSQL: and of a hand-written SQL count for the
same spec (psycopg, same database, same run), the two totals (they must agree), and the
ratio. SQLite (the embedded default): whether each is under a second, then how much a slow
count delays other requests (a count, a read, a write), each probe's latency alone and
while a slow count runs.
"""

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

import httpx
import sqlalchemy as sa

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


def tagged(*names: str) -> str:
    keys = ", ".join(f"'{n.lower()}'" for n in names)
    return (
        f"EXISTS (SELECT 1 FROM contact_tags ct JOIN tags t ON t.id = ct.tag_id "
        f"WHERE ct.contact_id = c.id AND t.account_id = :a AND t.name_key IN ({keys}))"
    )


def suite(mailings: list[int]) -> list[tuple[str, dict, str, dict]]:
    """(name, spec, hand-written SQL, SQL parameters)."""
    d30 = AS_OF - timedelta(days=30)
    m = ", ".join(str(i) for i in mailings)
    return [
        (
            "typical: 2 tags, 1 exclude, age, purchase 30d",
            {
                "include": [{"type": "tag", "tags": ["newsletter", "VIP"]}],
                "exclude": [{"type": "group", "groups": ["Blacklist"]}],
                "filter": {
                    "and": [
                        {"field": "age", "op": "between", "value": [25, 45]},
                        {
                            "event": {"type": "PURCHASE", "within_days": 30},
                            "agg": "count",
                            "op": "gte",
                            "value": 1,
                        },
                    ]
                },
            },
            f"SELECT count(*) FROM contacts c WHERE {LIVE} AND {tagged('newsletter', 'VIP')} "
            "AND NOT EXISTS (SELECT 1 FROM group_members gm JOIN groups g ON g.id = gm.group_id"
            " WHERE gm.contact_id = c.id AND g.account_id = :a AND g.name_key = 'blacklist') "
            "AND c.birth_date > :young AND c.birth_date <= :old "
            "AND c.id IN (SELECT e.contact_id FROM events e WHERE e.account_id = :a "
            "AND e.type = 'PURCHASE' AND e.occurred_at >= :d30 AND e.occurred_at <= :now)",
            {"young": years_before(46), "old": years_before(25), "d30": d30},
        ),
        ("all live contacts", {}, f"SELECT count(*) FROM contacts c WHERE {LIVE}", {}),
        (
            "tags, match all",
            {"include": [{"type": "tag", "tags": ["newsletter", "black-friday"], "match": "all"}]},
            f"SELECT count(*) FROM contacts c WHERE {LIVE} AND {tagged('newsletter')} "
            f"AND {tagged('black-friday')}",
            {},
        ),
        (
            "funnel stages",
            {
                "include": [
                    {"type": "funnel", "funnel": "Sales", "stages": ["Offer", "Negotiation"]}
                ]
            },
            f"SELECT count(*) FROM contacts c WHERE {LIVE} AND EXISTS (SELECT 1 FROM "
            "contact_funnels cf JOIN funnels f ON f.id = cf.funnel_id JOIN stages s ON "
            "s.id = cf.stage_id WHERE cf.contact_id = c.id AND f.account_id = :a AND "
            "f.name_key = 'sales' AND s.name_key IN ('offer', 'negotiation'))",
            {},
        ),
        (
            "mailing opened (3 mailings)",
            {"include": [{"type": "mailing", "mailings": mailings, "event": "opened"}]},
            f"SELECT count(*) FROM contacts c WHERE {LIVE} AND EXISTS (SELECT 1 FROM "
            f"mailing_recipients r WHERE r.contact_id = c.id AND r.mailing_id IN ({m}) "
            "AND r.opened_at IS NOT NULL)",
            {},
        ),
        (
            "group or tag",
            {
                "include": [
                    {"type": "group", "groups": ["Partners"]},
                    {"type": "tag", "tags": ["VIP"]},
                ]
            },
            f"SELECT count(*) FROM contacts c WHERE {LIVE} AND (EXISTS (SELECT 1 FROM "
            "group_members gm JOIN groups g ON g.id = gm.group_id WHERE gm.contact_id = c.id "
            f"AND g.account_id = :a AND g.name_key = 'partners') OR {tagged('VIP')})",
            {},
        ),
        (
            "e-mail domain",
            {"filter": {"field": "email_domain", "op": "eq", "value": "gmail.com"}},
            f"SELECT count(*) FROM contacts c WHERE {LIVE} AND split_part(c.email, '@', 2) "
            "= 'gmail.com'",
            {},
        ),
        (
            "text prefix and sex",
            {
                "filter": {
                    "and": [
                        {"field": "first_name", "op": "starts_with", "value": "an"},
                        {"field": "sex", "op": "eq", "value": "female"},
                    ]
                }
            },
            f"SELECT count(*) FROM contacts c WHERE {LIVE} AND lower(c.first_name) LIKE 'an%' "
            "AND c.sex = 'female'",
            {},
        ),
        (
            "details: string and number",
            {
                "filter": {
                    "and": [
                        {"detail": "plan", "op": "eq", "value": "pro"},
                        {"detail": "loyalty_points", "op": "gt", "value": 1000, "as": "number"},
                    ]
                }
            },
            f"SELECT count(*) FROM contacts c WHERE {LIVE} AND EXISTS (SELECT 1 FROM "
            "contact_details d WHERE d.contact_id = c.id AND d.name = 'plan' AND "
            "lower(d.value) = 'pro') AND EXISTS (SELECT 1 FROM contact_details d WHERE "
            "d.contact_id = c.id AND d.name = 'loyalty_points' AND d.value ~ "
            r"'^\s*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\s*$' AND "
            "d.value::float8 > 1000)",
            {},
        ),
        (
            "event sum",
            {"filter": {"event": {"type": "PURCHASE"}, "agg": "sum", "op": "gt", "value": 500}},
            f"SELECT count(*) FROM contacts c WHERE {LIVE} AND c.id IN (SELECT e.contact_id "
            "FROM events e WHERE e.account_id = :a AND e.type = 'PURCHASE' GROUP BY "
            "e.contact_id HAVING sum(e.value) > 500)",
            {},
        ),
        (
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
            f"SELECT count(*) FROM contacts c WHERE {LIVE} AND c.email_opt_in AND NOT EXISTS "
            "(SELECT 1 FROM events e WHERE e.contact_id = c.id AND e.type = 'VISIT' AND "
            "e.occurred_at >= :d90 AND e.occurred_at <= :now)",
            {"d90": AS_OF - timedelta(days=90)},
        ),
        (
            "last purchase older than 180 days",
            {
                "filter": {
                    "event": {"type": "PURCHASE"},
                    "agg": "last_at",
                    "op": "older_than_days",
                    "value": 180,
                }
            },
            f"SELECT count(*) FROM contacts c WHERE {LIVE} AND c.id IN (SELECT e.contact_id "
            "FROM events e WHERE e.account_id = :a AND e.type = 'PURCHASE' GROUP BY "
            "e.contact_id HAVING max(e.occurred_at) < :d180)",
            {"d180": AS_OF - timedelta(days=180)},
        ),
        (
            "birthday within 7 days",
            {"filter": {"field": "birth_date", "op": "birthday_within_days", "value": 7}},
            f"SELECT count(*) FROM contacts c WHERE {LIVE} AND to_char(c.birth_date, 'MMDD') "
            "IN ("
            + ", ".join(f"'{(TODAY + timedelta(days=k)).strftime('%m%d')}'" for k in range(8))
            + ")",
            {},
        ),
        (
            "no owner, high score",
            {
                "filter": {
                    "and": [
                        {"field": "owner", "op": "is_empty"},
                        {"field": "score", "op": "gt", "value": 500},
                    ]
                }
            },
            f"SELECT count(*) FROM contacts c WHERE {LIVE} AND c.score > 500 AND NOT EXISTS "
            "(SELECT 1 FROM contact_owners o WHERE o.contact_id = c.id)",
            {},
        ),
        (
            "saved segment, minus a tag",
            {
                "include": [{"type": "segment", "segments": ["Engaged"]}],
                "exclude": [{"type": "tag", "tags": ["churn-risk"]}],
            },
            f"SELECT count(*) FROM contacts c WHERE {LIVE} AND "
            f"{tagged('newsletter', 'webinar')} AND c.email_opt_in "
            f"AND NOT {tagged('churn-risk')}",
            {},
        ),
        (
            "not (customer or 3+ tags)",
            {
                "filter": {
                    "not": {
                        "or": [
                            {"field": "state", "op": "eq", "value": "CUSTOMER"},
                            {"field": "tag_count", "op": "gte", "value": 3},
                        ]
                    }
                }
            },
            f"SELECT count(*) FROM contacts c WHERE {LIVE} AND c.state <> 'CUSTOMER' AND "
            "(SELECT count(*) FROM contact_tags ct WHERE ct.contact_id = c.id) < 3",
            {},
        ),
    ]


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


def against_hand_sql(http, engine, account_id: int, mailings: list[int], runs: int) -> list[float]:
    """Each spec's endpoint time vs its hand-written SQL (PostgreSQL); prints the table,
    returns the ratios."""
    rows, ratios = [], []
    for name, spec, sql, params in suite(mailings):
        spec = {**spec, "as_of": AS_OF.isoformat()}
        bound = {"a": account_id, "now": AS_OF, **params}

        def hand(sql=sql, bound=bound):
            with engine.connect() as conn:
                return conn.execute(sa.text(sql), bound).scalar_one()

        count(http, spec), hand()  # warm both
        api_times, sql_times = [], []
        for _ in range(runs):
            dt, total_api = timed(lambda spec=spec: count(http, spec))
            api_times.append(dt)
            dt, total_sql = timed(hand)
            sql_times.append(dt)
        assert total_api == total_sql, (name, total_api, total_sql)
        ratio = median(api_times) / median(sql_times)
        ratios.append(ratio)
        rows.append(
            [
                name,
                f"{total_api:,}",
                f"{median(api_times) * 1000:.1f}",
                f"{median(sql_times) * 1000:.1f}",
                f"{ratio:.2f}",
            ]
        )
    print(table(["spec", "total", "endpoint ms", "hand SQL ms", "ratio"], rows))
    return ratios


def endpoint_times(http, mailings: list[int], runs: int) -> list[float]:
    """Each spec's endpoint time against the target (SQLite: under a second); prints the
    table, returns the medians."""
    rows, medians = [], []
    for name, spec, _sql, _params in suite(mailings):
        spec = {**spec, "as_of": AS_OF.isoformat()}
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    engine = database(args.url)
    account_id, key = seeded_account(engine, args.contacts)
    with engine.begin() as conn:
        mailings = list(
            conn.execute(
                sa.text("SELECT id FROM mailings WHERE account_id = :a ORDER BY id LIMIT 3"),
                {"a": account_id},
            ).scalars()
        )
    headers = {"Authorization": f"Bearer {key}"}
    sqlite = is_sqlite(args.url)
    kind = "SQLite" if sqlite else "PostgreSQL"
    with (
        Server(args.url, demo="false", rate_limit_per_s=0) as server,
        httpx.Client(base_url=server.base, headers=headers, timeout=300) as http,
    ):
        http.post("/v1/segments", json={"name": "Engaged", "selection": ENGAGED})
        print(f"\n{args.contacts:,} contacts, {kind}, median of {args.runs} runs\n")
        if sqlite:
            medians = endpoint_times(http, mailings, args.runs)
            print(f"\nslowest {max(medians) * 1000:.0f} ms\n")
            interference(server.base, headers, rounds=max(50, args.runs))
        else:
            ratios = against_hand_sql(http, engine, account_id, mailings, args.runs)
            print(f"\nmedian ratio {median(ratios):.2f}, worst {max(ratios):.2f}")


if __name__ == "__main__":
    main()
