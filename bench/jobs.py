"""Jobs end to end vs one SQL statement vs a naive ORM loop; worker memory.

    python -m bench.jobs [--url postgresql://…/audience_bench] [--contacts 1000000]

On the `bench-N` account (`audience seed` data):

1. `add_tags` (a fresh tag) and `set_score` (mode add) on about half the live contacts
   (created at or after the median `created_at`), end to end: POST /v1/jobs to a real
   `audience serve` with AUDIENCE_REDIS_URL set and one real `audience worker`, polling
   GET /v1/jobs/{id} until it succeeded. Compared, in the same run, with (a) ONE
   hand-written set-based SQL statement doing the same on the same selection (the floor),
   and (b) a naive per-contact SQLAlchemy ORM loop (load the contact, add the tag / change
   the score, commit per contact) timed on a sample and extrapolated to the selection.
2. The worker's peak memory (VmHWM of the `audience worker` process, restarted before each
   measurement) for a job on a tenth of the account and for one on the whole account.

Nothing is left behind: bench tags and their rows, score changes (+1 by the job, -1 by
the floor, reverted for the naive sample and the memory jobs) and the bench's jobs are
removed at the end.
"""

import argparse
import time
from datetime import datetime

import httpx
import sqlalchemy as sa
from sqlalchemy.orm import Session, registry

from app import tables as t
from bench.common import (
    BENCH_REDIS_URL,
    DEFAULT_URL,
    Server,
    database,
    delete_jobs,
    maintain,
    median,
    run_job,
    seeded_account,
    start_worker,
    table,
    timed,
    verdict,
    vm_hwm_kib,
)

TAG_PREFIX = "bench-jobs-"
RATIO_TARGET = 1.3
NAIVE_TARGET = 20.0
MEMORY_TARGET = 1.2


class Contact:
    pass


class Tag:
    pass


class ContactTag:
    pass


_orm = registry()
_orm.map_imperatively(Contact, t.contacts)
_orm.map_imperatively(Tag, t.tags)
_orm.map_imperatively(ContactTag, t.contact_tags)


def quantile_cut(engine, account_id: int, share: float, live: bool) -> datetime:
    """The created_at at or after which `share` of the account's contacts were created."""
    where = "account_id = :a" + (" AND NOT deleted" if live else "")
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT percentile_disc(:q) WITHIN GROUP (ORDER BY created_at) "
                f"FROM contacts WHERE {where}"
            ),
            {"a": account_id, "q": 1 - share},
        ).scalar_one()


def sql_tag(engine, account_id: int, name: str) -> int:
    with engine.begin() as conn:
        return conn.execute(
            sa.text(
                "INSERT INTO tags (account_id, name, name_key, created_at) "
                "VALUES (:a, :n, :k, now()) RETURNING id"
            ),
            {"a": account_id, "n": name, "k": name.lower()},
        ).scalar_one()


def sql_statement(engine, sql: str, params: dict) -> int:
    with engine.begin() as conn:
        return conn.execute(sa.text(sql), params).rowcount


def naive_add_tag(engine, account_id: int, sample: list[int], name: str) -> float:
    """Per contact: load it, look for the tag, add it, commit. Returns seconds."""
    with Session(engine) as s:
        tag = Tag(account_id=account_id, name=name, name_key=name.lower(), created_at=t.utcnow())
        s.add(tag)
        s.commit()
        tag_id = tag.id
        started = time.perf_counter()
        for cid in sample:
            contact = s.get(Contact, cid)
            if s.get(ContactTag, (contact.id, tag_id)) is None:
                s.add(
                    ContactTag(
                        contact_id=contact.id,
                        tag_id=tag_id,
                        account_id=contact.account_id,
                        added_at=t.utcnow(),
                    )
                )
            s.commit()
        return time.perf_counter() - started


def naive_add_score(engine, sample: list[int], value: int) -> float:
    """Per contact: load it, change its score, commit. Returns seconds."""
    with Session(engine) as s:
        started = time.perf_counter()
        for cid in sample:
            contact = s.get(Contact, cid)
            contact.score = contact.score + value
            contact.updated_at = t.utcnow()
            s.commit()
        return time.perf_counter() - started


def cleanup_tags(engine, account_id: int) -> None:
    """Every bench-jobs tag of the account, with its contact rows."""
    with engine.begin() as conn:
        ids = list(
            conn.execute(
                sa.text("SELECT id FROM tags WHERE account_id = :a AND name_key LIKE :p"),
                {"a": account_id, "p": TAG_PREFIX + "%"},
            ).scalars()
        )
        if ids:
            conn.execute(sa.text("DELETE FROM contact_tags WHERE tag_id = ANY(:ids)"), {"ids": ids})
            conn.execute(sa.text("DELETE FROM tags WHERE id = ANY(:ids)"), {"ids": ids})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--redis", default=BENCH_REDIS_URL)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=5000, help="contacts of the naive loop")
    parser.add_argument("--runs", type=int, default=1, help="job / SQL pairs per action")
    args = parser.parse_args()

    engine = database(args.url)
    account_id, key = seeded_account(engine, args.contacts)
    cleanup_tags(engine, account_id)  # what an interrupted run may have left
    run = time.strftime("%Y%m%d%H%M%S")
    half_cut = quantile_cut(engine, account_id, 0.5, live=True)
    small_cut = quantile_cut(engine, account_id, 0.1, live=False)
    half = {"filter": {"field": "created_at", "op": "gte", "value": half_cut.isoformat()}}
    where = "c.account_id = :a AND NOT c.deleted AND c.created_at >= :cut"
    bound = {"a": account_id, "cut": half_cut}
    with engine.connect() as conn:
        selected = list(
            conn.execute(
                sa.text(f"SELECT c.id FROM contacts c WHERE {where} ORDER BY c.id"), bound
            ).scalars()
        )
    n = len(selected)
    step = max(1, n // args.sample)
    sample = selected[::step][: args.sample]
    del selected

    job_ids: list[int] = []
    score_fixes: list[tuple[str, dict, int]] = []  # (where, params, delta) undone at the end
    times: dict[str, dict[str, list[float]]] = {}
    memory_rows = []
    peaks = []
    headers = {"Authorization": f"Bearer {key}"}
    try:
        with (
            Server(args.url, redis_url=args.redis) as server,
            httpx.Client(base_url=server.base, headers=headers, timeout=300) as http,
        ):
            worker = start_worker(server, args.redis)
            # warm the API's queue pool and the worker's engine: a job selecting no one
            nobody = {"filter": {"field": "score", "op": "lt", "value": -(2**62)}}
            _, job = run_job(http, nobody, [{"type": "set_score", "mode": "add", "value": 1}])
            job_ids.append(job["id"])
            total = http.post("/v1/selections/count", json=half).raise_for_status().json()
            assert total["total"] == n, (total, n)

            for rep in range(args.runs):
                # add_tags: a fresh tag for the job, another for the SQL statement
                maintain(engine, "contacts", "contact_tags")
                tag = f"{TAG_PREFIX}{run}-{rep}-job"
                dt, job = run_job(http, half, [{"type": "add_tags", "tags": [tag]}])
                job_ids.append(job["id"])
                assert job["total"] == n and job["actions"][0]["affected"] == n, job
                times.setdefault("add_tags", {}).setdefault("job", []).append(dt)

                maintain(engine, "contacts", "contact_tags")
                tag_id = sql_tag(engine, account_id, f"{TAG_PREFIX}{run}-{rep}-sql")
                dt, rows = timed(
                    lambda tag_id=tag_id: sql_statement(
                        engine,
                        "INSERT INTO contact_tags (contact_id, tag_id, account_id, added_at) "
                        f"SELECT c.id, :tag, :a, now() FROM contacts c WHERE {where} "
                        "ON CONFLICT DO NOTHING",
                        {**bound, "tag": tag_id},
                    )
                )
                assert rows == n, (rows, n)
                times["add_tags"].setdefault("sql", []).append(dt)

                # set_score add: +1 by the job, -1 by the statement (the same work)
                maintain(engine, "contacts")
                dt, job = run_job(http, half, [{"type": "set_score", "mode": "add", "value": 1}])
                job_ids.append(job["id"])
                assert job["actions"][0]["affected"] == n, job
                times.setdefault("set_score add", {}).setdefault("job", []).append(dt)

                maintain(engine, "contacts")
                dt, rows = timed(
                    lambda: sql_statement(
                        engine,
                        f"UPDATE contacts c SET score = c.score - 1, updated_at = now() "
                        f"WHERE {where}",
                        bound,
                    )
                )
                assert rows == n, (rows, n)
                times["set_score add"].setdefault("sql", []).append(dt)

            # the naive ORM loop, on a sample
            maintain(engine, "contacts", "contact_tags")
            dt = naive_add_tag(engine, account_id, sample, f"{TAG_PREFIX}{run}-naive")
            times["add_tags"]["naive"] = [dt / len(sample) * n]
            maintain(engine, "contacts")
            dt = naive_add_score(engine, sample, 1)
            score_fixes.append(("c.id = ANY(:ids)", {"ids": sample}, -1))
            times["set_score add"]["naive"] = [dt / len(sample) * n]

            # worker memory: a tenth of the account, then all of it; a new worker each time
            sizes = [
                (
                    "a tenth of the account",
                    {
                        "filter": {
                            "field": "created_at",
                            "op": "gte",
                            "value": small_cut.isoformat(),
                        },
                        "deleted": "include",
                    },
                    ("c.account_id = :a AND c.created_at >= :cut", {"cut": small_cut}),
                    1,
                ),
                ("the whole account", {"deleted": "include"}, ("c.account_id = :a", {}), -1),
            ]
            for label, spec, (fix_where, fix_params), delta in sizes:
                maintain(engine, "contacts", "contact_tags")
                worker = start_worker(server, args.redis, old=worker)
                idle = vm_hwm_kib(worker.pid)
                actions = [
                    {"type": "add_tags", "tags": [f"{TAG_PREFIX}{run}-mem-{delta}"]},
                    {"type": "set_score", "mode": "add", "value": delta},
                ]
                dt, job = run_job(http, spec, actions)
                job_ids.append(job["id"])
                score_fixes.append((fix_where, fix_params, -delta))
                peak = vm_hwm_kib(worker.pid)
                peaks.append(peak)
                memory_rows.append(
                    [
                        label,
                        f"{job['total']:,}",
                        f"{dt:.1f}",
                        f"{job['total'] / dt:,.0f}",
                        f"{idle / 1024:.0f}",
                        f"{peak / 1024:.0f}",
                    ]
                )
    finally:
        with engine.begin() as conn:
            for fix_where, fix_params, delta in score_fixes:
                conn.execute(
                    sa.text(f"UPDATE contacts c SET score = c.score + :d WHERE {fix_where}"),
                    {"a": account_id, "d": delta, **fix_params},
                )
        cleanup_tags(engine, account_id)
        delete_jobs(engine, job_ids)
        maintain(engine, "contacts", "contact_tags", "job_members")

    rows = []
    for name, by in times.items():
        job_s, sql_s, naive_s = median(by["job"]), median(by["sql"]), by["naive"][0]
        rows.append(
            [
                name,
                f"{n:,}",
                f"{job_s:.2f}",
                f"{n / job_s:,.0f}",
                f"{sql_s:.2f}",
                f"{job_s / sql_s:.2f} {verdict(job_s / sql_s <= RATIO_TARGET)}",
                f"{naive_s:.0f}",
                f"{naive_s / job_s:.0f} {verdict(naive_s / job_s >= NAIVE_TARGET)}",
            ]
        )
    print(
        f"\n{args.contacts:,} contacts, PostgreSQL; selection: live contacts created at or "
        f"after the median created_at; job = POST /v1/jobs → succeeded (API + 1 arq worker); "
        f"median of {args.runs} run(s); naive = ORM loop, commit per contact, "
        f"{len(sample):,} contacts timed and extrapolated\n"
    )
    print(
        table(
            [
                "action",
                "contacts",
                "job s",
                "job contacts/s",
                "one SQL s",
                f"job/SQL (≤ {RATIO_TARGET})",
                "naive s",
                f"naive/job (≥ {NAIVE_TARGET:.0f})",
            ],
            rows,
        )
    )
    print("\nworker peak memory (VmHWM of `audience worker`, restarted before each job; ")
    print("job = add_tags + set_score add)\n")
    print(
        table(
            ["job on", "contacts", "job s", "contacts/s", "idle VmHWM MiB", "VmHWM MiB"],
            memory_rows,
        )
    )
    ratio = max(peaks) / min(peaks)
    print(f"\npeak ratio {ratio:.2f} (≤ {MEMORY_TARGET}) {verdict(ratio <= MEMORY_TARGET)}")


if __name__ == "__main__":
    main()
