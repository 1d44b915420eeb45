"""Growth: the same measurements on `audience seed` data at several sizes, and how each
grows with the number of contacts.

    python -m bench.growth --sizes 1000000 10000000 [--runs 5] [--redis redis://…/11]
                           [--url-template postgresql://postgres@127.0.0.1:5432/audience_growth_{label}]
                           [--out /tmp/audience-growth] [--reuse]

Each size gets its own PostgreSQL database (`{label}`: 100k, 1m, 10m, …), created,
migrated and seeded on first use (the account `bench-N`, as the other benchmarks seed it,
timed, then VACUUM ANALYZE, timed) and kept for the next run. Then, through a real
`audience serve` logged in as `audience_app` (row-level security, as production runs) and
one real `audience worker`:

* the count suite of bench.selection (POST /v1/selections/count; the median of `--runs`
  after a warm-up), the typical spec singled out, and the floor (a count of one e-mail);
* an add_tags job on ~10 % of the contacts (those tagged `facebook-ads`, scattered through
  the table): POST /v1/jobs until it succeeded; its tag links are removed afterwards;
* an export of the same selection (POST /v1/selections/export, CSV, streamed and counted);
* the pickers of bench.pickers (median of `--runs`).

Each size's figures are saved as JSON under `--out`; `--reuse` takes a size's saved
figures instead of measuring it again (seed times are only known from the run that
seeded). Prints one table, a column a size and the ratio of the largest to the smallest,
and a verdict: every time grows at most in proportion to the contacts, and the typical
spec counts in under a second at the largest size.
"""

import argparse
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import sqlalchemy as sa

from bench import pickers
from bench.common import (
    BENCH_REDIS_URL,
    JobFailed,
    Server,
    api_key,
    database,
    delete_jobs,
    maintain,
    median,
    run_job,
    seed_account,
    start_worker,
    table,
    timed,
    verdict,
)
from bench.selection import AS_OF, ENGAGED, FLOOR, count, first_mailings, suite

URL_TEMPLATE = "postgresql://postgres@127.0.0.1:5432/audience_growth_{label}"
APP_ROLE = "?options=-c%20role%3Daudience_app"
TEN_PERCENT = {"include": [{"type": "tag", "tags": ["facebook-ads"]}]}  # ~9 % of the seed
BENCH_TAG = "growth-bench"
TYPICAL_TARGET_S = 1.0


def label(size: int) -> str:
    """1000000 → '1m', 100000 → '100k' (the database's suffix, the column's head)."""
    for unit, suffix in ((1_000_000, "m"), (1_000, "k")):
        if size >= unit and size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def seeded(url: str, size: int, out: Path) -> tuple[sa.Engine, int, dict]:
    """The size's database and account, seeded on first use; the seed's figures (saved
    beside the results, since a reused account has none of its own)."""
    record = out / f"seed-{sa.make_url(url).database}-{size}.json"
    engine = database(url)
    print(f"[{label(size)}] seeding if needed (load {load()})", flush=True)
    account_id, seconds = seed_account(engine, size)
    if seconds is not None:
        with engine.connect() as conn:
            size_bytes = conn.execute(sa.text("SELECT pg_database_size(current_database())"))
            seconds["bytes"] = size_bytes.scalar_one()
        seconds["load"] = load()
        record.write_text(json.dumps(seconds))
    figures = json.loads(record.read_text()) if record.exists() else {}
    return engine, account_id, figures


def counts(http: httpx.Client, mailings: list[int], runs: int) -> dict[str, dict]:
    """Each spec of the suite (and the floor): its total and median endpoint time."""
    measured = {}
    for case in [*suite(mailings), FLOOR]:
        spec = {**case.spec, "as_of": AS_OF.isoformat()}
        try:
            total = count(http, spec)  # warm
            times = [timed(lambda spec=spec: count(http, spec))[0] for _ in range(runs)]
        except httpx.HTTPStatusError as exc:
            measured[case.name] = {"error": f"{exc.response.status_code}"}
            print(f"  count {case.name}: HTTP {exc.response.status_code}", flush=True)
            continue
        measured[case.name] = {"total": total, "s": median(times)}
        print(f"  count {case.name}: {total:,} in {median(times) * 1000:.1f} ms", flush=True)
    return measured


def add_tags_job(http: httpx.Client, engine: sa.Engine, account_id: int) -> dict:
    """add_tags on the ~10 % selection as a job, from a clean start; its links, its tag
    and its job are removed afterwards."""
    with engine.connect() as conn:
        email = conn.execute(
            sa.text("SELECT email FROM contacts WHERE account_id = :a AND NOT deleted LIMIT 1"),
            {"a": account_id},
        ).scalar_one()
    warm = {"filter": {"field": "email", "op": "eq", "value": email}}
    action = {"type": "add_tags", "tags": [BENCH_TAG]}
    job_ids = [run_job(http, warm, [action])[1]["id"]]  # the worker's first job opens its pool
    maintain(engine, "contacts", "contact_tags", "job_members")
    try:
        seconds, job = run_job(http, TEN_PERCENT, [action])
        job_ids.append(job["id"])
        figures = {"rows": job["total"], "s": seconds, "affected": job["actions"][0]["affected"]}
    except JobFailed as failed:
        job_ids.append(failed.job["id"])
        figures = {"error": (failed.job["error"] or "").split("\n")[0][:90]}
    finally:
        with engine.begin() as conn:
            params = {"a": account_id, "k": BENCH_TAG}
            conn.execute(
                sa.text(
                    "DELETE FROM contact_tags WHERE account_id = :a AND tag_id = "
                    "(SELECT id FROM tags WHERE account_id = :a AND name_key = :k)"
                ),
                params,
            )
            conn.execute(
                sa.text("DELETE FROM tags WHERE account_id = :a AND name_key = :k"), params
            )
        delete_jobs(engine, job_ids)
        maintain(engine, "contacts", "contact_tags", "job_members", "change_log")
    print(f"  add_tags job: {figures}", flush=True)
    return figures


def export(http: httpx.Client) -> dict:
    """The ~10 % selection as CSV (the default fields), streamed to the end: rows and
    seconds from the request to the last byte."""
    body = {"selection": TEN_PERCENT, "format": "csv"}
    started = time.perf_counter()
    lines = 0
    with http.stream("POST", "/v1/selections/export", json=body) as r:
        r.raise_for_status()
        for chunk in r.iter_bytes():
            lines += chunk.count(b"\n")
    figures = {"rows": lines - 1, "s": time.perf_counter() - started}  # less the header
    print(f"  export: {figures}", flush=True)
    return figures


def measure(size: int, url: str, redis_url: str, runs: int, out: Path) -> dict:
    """Every figure of one size."""
    engine, account_id, seed_figures = seeded(url, size, out)
    key = api_key(engine, account_id)
    with engine.connect() as conn:
        mailings = first_mailings(conn, account_id)
        contacts = conn.execute(
            sa.text("SELECT count(*) FROM contacts WHERE account_id = :a AND NOT deleted"),
            {"a": account_id},
        ).scalar_one()
    maintain(engine, "contacts")  # a CHECKPOINT: no dirty buffers from a previous run
    figures = {
        "size": size,
        "database": sa.make_url(url).database,
        "live_contacts": contacts,
        "seed": seed_figures,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "load": {"start": load()},
    }
    headers = {"Authorization": f"Bearer {key}"}
    with (
        Server(url + APP_ROLE, redis_url=redis_url, demo="false", rate_limit_per_s=0) as server,
        httpx.Client(base_url=server.base, headers=headers, timeout=600) as http,
    ):
        worker = start_worker(server, redis_url)
        try:
            r = http.post("/v1/segments", json={"name": "Engaged", "selection": ENGAGED})
            if r.status_code not in (201, 409):  # 409: saved by an earlier run
                r.raise_for_status()
            print(f"[{label(size)}] counts (load {load()})", flush=True)
            figures["counts"] = counts(http, mailings, runs)
            figures["load"]["job"] = load()
            print(f"[{label(size)}] add_tags job (load {load()})", flush=True)
            figures["job"] = add_tags_job(http, engine, account_id)
            figures["load"]["export"] = load()
            print(f"[{label(size)}] export (load {load()})", flush=True)
            figures["export"] = export(http)
            figures["load"]["pickers"] = load()
            print(f"[{label(size)}] pickers (load {load()})", flush=True)
            figures["pickers"] = pickers.timings(http, runs)
            for name, seconds in figures["pickers"].items():
                print(f"  picker {name}: {seconds * 1000:.1f} ms", flush=True)
            figures["load"]["end"] = load()
        finally:
            worker.terminate()
    engine.dispose()
    return figures


# --- the table -----------------------------------------------------------------------


def rows_of(figures: dict) -> dict[str, tuple[float | None, str, str]]:
    """One size's rows: label → (value, how it reads, kind). Only kind 'time' is judged
    (linear: it grows at most as the contacts do); a rate mirrors its time, and the
    typical spec, repeated from the suite, has a target of its own."""
    rows: dict[str, tuple[float | None, str, str]] = {}
    seed = figures.get("seed") or {}
    if "seed" in seed:
        rows["seed (audience seed data) s"] = (seed["seed"], f"{seed['seed']:.0f}", "time")
        rate = figures["size"] / seed["seed"]
        rows["seed contacts/s"] = (rate, f"{rate:,.0f}", "rate")
        rows["VACUUM ANALYZE s"] = (seed["vacuum"], f"{seed['vacuum']:.0f}", "time")
        gb = seed["bytes"] / 1e9
        rows["database GB after seeding"] = (gb, f"{gb:.1f}", "info")
    for name, m in figures["counts"].items():
        prefix = "count floor" if name == FLOOR.name else "count"
        if "s" in m:
            rows[f"{prefix}: {name} ms"] = (m["s"], f"{m['s'] * 1000:.1f}", "time")
        else:
            rows[f"{prefix}: {name} ms"] = (None, f"HTTP {m['error']}", "time")
    typical = next(m for name, m in figures["counts"].items() if name.startswith("typical"))
    if "s" in typical:
        rows["typical spec ms"] = (typical["s"], f"{typical['s'] * 1000:.1f}", "info")
    for what, m in (("add_tags job", figures["job"]), ("export", figures["export"])):
        if "s" in m:
            rows[f"{what} on ~10 %: rows"] = (m["rows"], f"{m['rows']:,}", "info")
            rows[f"{what} s"] = (m["s"], f"{m['s']:.2f}", "time")
            rate = m["rows"] / m["s"]
            rows[f"{what} rows/s"] = (rate, f"{rate:,.0f}", "rate")
        else:
            rows[f"{what} s"] = (None, f"FAILED: {m['error']}", "time")
    for name, seconds in figures["pickers"].items():
        rows[f"picker: {name} ms"] = (seconds, f"{seconds * 1000:.1f}", "time")
    return rows


def report(all_figures: list[dict]) -> None:
    """The table (a column a size, the ratio of the largest to the smallest) and the
    verdict: which times grew faster than the contacts (a falling rate is marked, not
    counted again)."""
    small, big = all_figures[0], all_figures[-1]
    growth = big["size"] / small["size"]
    by_size = [rows_of(f) for f in all_figures]
    names = list(dict.fromkeys(name for rows in by_size for name in rows))
    ratio_head = f"{label(big['size'])}/{label(small['size'])}"
    lines, worse = [], []
    for name in names:
        cells = [rows[name][1] if name in rows else "—" for rows in by_size]
        a, b = by_size[0].get(name), by_size[-1].get(name)
        ratio = "—"
        if a and b and a[0] and b[0] is not None:
            r = b[0] / a[0]
            ratio = f"{r:.2f}"
            if (a[2] == "time" and r > growth) or (a[2] == "rate" and r < 1):
                ratio += " (worse than linear)"
                if a[2] == "time":
                    worse.append((name, r))
        elif a and a[2] == "time" and b is not None and b[0] is None:
            worse.append((name, float("inf")))
        lines.append([name, *cells, ratio])
    sizes = ", ".join(f"{f['size']:,}" for f in all_figures)
    print(
        "\nGrowth on PostgreSQL: audience seed data, as audience_app (row-level security), "
        f"medians; sizes {sizes} contacts\n"
    )
    print(table(["row", *(label(f["size"]) for f in all_figures), ratio_head], lines))
    print()
    for f in all_figures:
        seed_load = (f.get("seed") or {}).get("load", "?")
        print(
            f"{label(f['size'])}: {f['database']}, {f['live_contacts']:,} live contacts, "
            f"measured from {f['started']}; load averages (1/5/15 min) at seeding end "
            f"{seed_load}, " + ", ".join(f"{k} {v}" for k, v in f["load"].items())
        )
    typical = by_size[-1].get("typical spec ms")
    typical_ok = typical is not None and typical[0] is not None and typical[0] < TYPICAL_TARGET_S
    shown = f"{typical[0] * 1000:.0f} ms" if typical and typical[0] is not None else "failed"
    print(
        f"\nverdict: {len(worse)} of {sum(kind == 'time' for _, _, kind in by_size[0].values())} "
        f"times grew more than {growth:g}× ({verdict(not worse)})"
        + ("" if not worse else ": " + "; ".join(f"{n} ×{r:.1f}" for n, r in worse))
        + f"; typical spec at {label(big['size'])}: {shown} "
        f"({verdict(typical_ok)}: < {TYPICAL_TARGET_S * 1000:.0f} ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--url-template", default=URL_TEMPLATE)
    parser.add_argument("--redis", default=BENCH_REDIS_URL)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("/tmp/audience-growth"))
    parser.add_argument("--reuse", action="store_true", help="take saved figures when there")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    all_figures = []
    for size in sorted(args.sizes):
        url = args.url_template.format(label=label(size))
        saved = args.out / f"{sa.make_url(url).database}-{size}.json"
        if args.reuse and saved.exists():
            figures = json.loads(saved.read_text())
        else:
            figures = measure(size, url, args.redis, args.runs, args.out)
            saved.write_text(json.dumps(figures, indent=1))
        all_figures.append(figures)
    report(all_figures)


if __name__ == "__main__":
    main()
