"""What the change log costs a job, and what a revert costs.

    python -m bench.undo [--url postgresql://…/audience_bench] [--contacts 1000000]
                         [--size 200000] [--runs 3]

On the `bench-N` account (`audience seed` data), a selection of `--size` live contacts
(the newest by created_at). For each action, end to end (POST /v1/jobs → succeeded on a
real `audience serve` + one real `audience worker` through Redis), interleaved, `--runs`
times, medians:

- the job with its change log (as production runs),
- the same job with the log switched off (AUDIENCE_CHANGE_LOG=false, a switch for this
  benchmark only: the worker is restarted with it),
- the revert of the logged job (POST /v1/jobs/{id}/revert → succeeded).

Targets: the log costs at most 1.3× the job without it; a revert at most 1.5× its job.
Each pair leaves the data as it found it (the logged job is reverted; the unlogged one is
undone by one SQL statement), and the bench's jobs and tags are removed at the end.
"""

import argparse
import time

import httpx
import sqlalchemy as sa

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
    verdict,
)

LOG_TARGET = 1.3
REVERT_TARGET = 1.5
TAG = "bench-undo"
WHERE = "c.account_id = :a AND NOT c.deleted AND c.created_at >= :cut"


def cases(run: str) -> list[tuple[str, list[dict], str]]:
    """(label, actions, SQL undoing the unlogged job on the selection)."""
    return [
        (
            "set_email_opt_in",
            [{"type": "set_email_opt_in", "value": True}],
            f"UPDATE contacts c SET email_opt_in = false WHERE {WHERE}",
        ),
        (
            "add_tags",
            [{"type": "add_tags", "tags": [f"{TAG}-{run}"]}],
            "DELETE FROM contact_tags WHERE account_id = :a AND tag_id IN "
            "(SELECT id FROM tags WHERE account_id = :a AND name_key LIKE 'bench-undo%')",
        ),
        (
            "set_score add",
            [{"type": "set_score", "mode": "add", "value": 1}],
            f"UPDATE contacts c SET score = c.score - 1 WHERE {WHERE}",
        ),
    ]


def revert(http, job_id: int) -> tuple[float, dict]:
    started = time.perf_counter()
    r = http.post(f"/v1/jobs/{job_id}/revert")
    if r.status_code != 202:
        raise RuntimeError(f"revert refused: {r.status_code} {r.text}")
    while True:
        job = http.get(f"/v1/jobs/{r.json()['id']}").raise_for_status().json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            assert job["status"] == "succeeded", job
            return time.perf_counter() - started, job
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--redis", default=BENCH_REDIS_URL)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=200_000, help="contacts selected")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    engine = database(args.url)
    account_id, key = seeded_account(engine, args.contacts)
    c = t.contacts
    with engine.begin() as conn:  # the newest `size` live contacts, as a created_at cut
        cut = conn.execute(
            sa.select(c.c.created_at)
            .where(c.c.account_id == account_id, c.c.deleted.is_(False))
            .order_by(c.c.created_at.desc())
            .offset(args.size - 1)
            .limit(1)
        ).scalar_one()
        conn.execute(  # every selected contact opted out to begin with
            sa.text(f"UPDATE contacts c SET email_opt_in = false WHERE {WHERE}"),
            {"a": account_id, "cut": cut},
        )
    selection = {"filter": {"field": "created_at", "op": "gte", "value": cut.isoformat()}}
    run = time.strftime("%Y%m%d%H%M%S")
    times: dict[str, dict[str, list[float]]] = {}
    job_ids: list[int] = []
    headers = {"Authorization": f"Bearer {key}"}
    try:
        with (
            Server(args.url, redis_url=args.redis) as server,
            httpx.Client(base_url=server.base, headers=headers, timeout=600) as http,
        ):
            total = http.post("/v1/selections/count", json=selection).raise_for_status().json()
            n = total["total"]
            logged = start_worker(server, args.redis)
            for rep in range(args.runs):
                for label, actions, undo in cases(f"{run}-{rep}"):
                    by = times.setdefault(label, {})
                    maintain(engine, "contacts", "contact_tags", "change_log")
                    dt, job = run_job(http, selection, actions)
                    job_ids.append(job["id"])
                    assert job["total"] == n, job
                    by.setdefault("job", []).append(dt)
                    maintain(engine, "contacts", "contact_tags", "change_log")
                    dt, undone = revert(http, job["id"])
                    job_ids.append(undone["id"])
                    assert undone["conflicts"] == 0, undone
                    by.setdefault("revert", []).append(dt)

                    server.env["AUDIENCE_CHANGE_LOG"] = "false"
                    unlogged = start_worker(server, args.redis, old=logged)
                    maintain(engine, "contacts", "contact_tags", "change_log")
                    dt, job = run_job(http, selection, actions)
                    job_ids.append(job["id"])
                    by.setdefault("no log", []).append(dt)
                    with engine.begin() as conn:
                        conn.execute(sa.text(undo), {"a": account_id, "cut": cut})
                    server.env.pop("AUDIENCE_CHANGE_LOG")
                    logged = start_worker(server, args.redis, old=unlogged)
    finally:
        delete_jobs(engine, job_ids)
        with engine.begin() as conn:
            conn.execute(
                sa.delete(t.tags).where(
                    t.tags.c.account_id == account_id, t.tags.c.name_key.like(f"{TAG}%")
                )
            )
        maintain(engine, "contacts", "contact_tags", "change_log", "job_members")

    rows = []
    for label, by in times.items():
        plain, job, back = median(by["no log"]), median(by["job"]), median(by["revert"])
        rows.append(
            [
                label,
                f"{n:,}",
                f"{plain:.2f}",
                f"{job:.2f}",
                f"{job / plain:.2f} {verdict(job / plain <= LOG_TARGET)}",
                f"{back:.2f}",
                f"{back / job:.2f} {verdict(back / job <= REVERT_TARGET)}",
            ]
        )
    print(
        f"\n{args.contacts:,} contacts, PostgreSQL, jobs of {n:,} contacts end to end "
        f"(API + 1 arq worker), medians of {args.runs}\n"
    )
    print(
        table(
            [
                "action",
                "contacts",
                "job, no log s",
                "job s",
                f"log cost (≤ {LOG_TARGET})",
                "revert s",
                f"revert/job (≤ {REVERT_TARGET})",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
