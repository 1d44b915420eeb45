"""Hostile traffic and injected faults against a fresh deployment: `audience serve` and two
`audience worker` processes on PostgreSQL (as the row-level-security role audience_app)
and Redis, driven from outside over HTTP.

While a stream of jobs runs (each adds 1 to every contact's score and tags them
`chaos-<i>`), one thread sends hostile requests and another injects faults in turn: a
worker killed with SIGKILL (and replaced), the Redis queue flushed, every PostgreSQL
connection of the deployment terminated (what a database restart does to it), and with
--restart-redis / --restart-postgres the servers themselves restarted. At the end every
contact must have score == the number of jobs and every job's tag: anything else is a
contact lost or doubled.

    python -m bench.chaos --contacts 20000 --seconds 120
    python -m bench.chaos --restart-redis --restart-postgres   # restarts the machine's servers

It prints requests tried (by status), 5xx seen, faults injected, jobs, and contacts lost or
doubled; it exits 1 if a 5xx was seen or a contact was lost or doubled.
"""

import argparse
import collections
import itertools
import os
import random
import signal
import subprocess
import threading
import time
import uuid

import httpx
import redis
import sqlalchemy as sa

from app.auth import create_account
from app.db import normalize_url
from bench.common import Server, database, start_worker, table

DB_URL = "postgresql://postgres@127.0.0.1:5432/audience_chaos"
REDIS_URL = "redis://127.0.0.1:6379/14"
MAX_BODY = 1_000_000  # the deployment's body limit (small, so oversized bodies are cheap)


def hostile_requests() -> list[tuple[str, str, dict]]:
    """(method, path, httpx request kwargs): each must be answered with a 4xx."""
    huge = 2**70
    bad_batch = [{"email": f"hostile-{i}@example.com"} for i in range(10_000)]
    bad_batch[7_777] = {"email": "hostile@example.com", "score": "a lot"}
    deep = '{"filter": ' + '{"not": ' * 50_000 + "{}" + "}" * 50_001
    raw = {"headers": {"Content-Type": "application/json"}}
    cases = [
        ("POST", "/v1/contacts", {"content": b"x" * (MAX_BODY + 1), **raw}),
        ("POST", "/v1/selections/count", {"content": deep, **raw}),
        (
            "POST",
            "/v1/selections/count",
            {"json": {"filter": {"or": [{"field": "score", "op": "eq", "value": 1}] * 5000}}},
        ),
        (
            "POST",
            "/v1/selections/count",
            {"json": {"filter": {"field": "city", "op": "in", "value": ["x"] * 20_000}}},
        ),
        ("POST", "/v1/selections/count", {"json": {"include": [], "surprise": True}}),
        (
            "POST",
            "/v1/selections/count",
            {"json": {"filter": {"field": "score; DROP TABLE contacts", "op": "eq", "value": 1}}},
        ),
        (
            "POST",
            "/v1/selections/count",
            {"json": {"include": [{"type": "tag", "tags": ["a\u0000b"]}]}},
        ),
        ("POST", "/v1/selections/count", {"content": b'{"filter": "\xff\xfe"}', **raw}),
        (
            "POST",
            "/v1/selections/count",
            {"json": {"filter": {"field": "score", "op": "gt", "value": huge}}},
        ),
        (
            "POST",
            "/v1/selections/count",
            {"json": {"filter": {"field": "birth_date", "op": "eq", "value": "99999-01-01"}}},
        ),
        ("POST", "/v1/contacts", {"json": {"contacts": bad_batch}}),
        ("POST", "/v1/contacts", {"json": {"contacts": [{"email": "a@b.c", "score": huge}]}}),
        (
            "POST",
            "/v1/contacts",
            {"json": {"contacts": [{"email": "a@b.c", "birth_date": "0000-01-01"}]}},
        ),
        ("POST", "/v1/contacts", {"json": {"contacts": [{"email": "a@b.c", "id": 1}]}}),
        ("GET", f"/v1/jobs/{huge}", {}),
        ("GET", "/v1/jobs?limit=5&surprise=1", {}),
        ("POST", "/v1/jobs?dryrun=true", {"json": {"actions": [{"type": "delete"}]}}),
        ("POST", "/v1/jobs", {"json": {"actions": [{"type": "drop_table"}]}}),
        ("POST", "/v1/jobs", {"json": {"selection": {}, "actions": []}}),
        ("POST", "/v1/selections/count", {"content": b"not json", **raw}),
        (
            "POST",
            "/v1/selections/count",
            {"content": b"{}", "headers": {"Content-Type": "text/plain"}},
        ),
        ("GET", "/v1/contacts/1", {"headers": {"Authorization": "Bearer nope"}}),
        ("DELETE", "/v1/selections/count", {}),
    ]
    rng = random.Random(7)
    for _ in range(20):  # random bytes to random body-taking endpoints
        path = rng.choice(["/v1/contacts", "/v1/selections/count", "/v1/jobs", "/v1/segments"])
        cases.append(("POST", path, {"content": rng.randbytes(rng.randint(1, 2000)), **raw}))
    return cases


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.statuses: collections.Counter = collections.Counter()
        self.server_errors: list[str] = []
        self.unexpected: list[str] = []
        self.unanswered: list[str] = []

    def record(self, label: str, response: httpx.Response | None, expect_4xx: bool) -> None:
        with self.lock:
            if response is None:
                self.statuses["no answer"] += 1
                self.unanswered.append(label)
                return
            code = response.status_code
            self.statuses[f"{code // 100}xx"] += 1
            if code >= 500:
                self.server_errors.append(f"{code} {label}: {response.text[:200]}")
            elif expect_4xx and not 400 <= code < 500:
                self.unexpected.append(f"{code} {label}")


def hostile_traffic(base: str, key: str, tally: Tally, stop: threading.Event) -> None:
    cases = hostile_requests()
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, timeout=60) as http:
        for method, path, kw in itertools.cycle(cases):
            if stop.is_set():
                return
            headers = {**auth, **kw.get("headers", {})}
            try:
                r = http.request(method, path, **{**kw, "headers": headers})
            except httpx.HTTPError:
                r = None
            tally.record(f"{method} {path}", r, expect_4xx=True)
            # and an ordinary count between hostile ones: the service keeps serving
            try:
                r = http.post("/v1/selections/count", json={}, headers=auth)
            except httpx.HTTPError:
                r = None
            tally.record("count", r, expect_4xx=False)


class Faults:
    def __init__(self, server: Server, workers: list, admin: sa.Engine, db: str, args):
        self.server, self.workers, self.admin, self.db = server, workers, admin, db
        kinds = ["kill_worker", "flush_redis", "terminate_connections"]
        kinds += ["restart_redis"] if args.restart_redis else []
        kinds += ["restart_postgres"] if args.restart_postgres else []
        self.kinds = itertools.cycle(kinds)
        self.done: collections.Counter = collections.Counter()

    def inject(self) -> None:
        kind = next(self.kinds)
        getattr(self, kind)()
        self.done[kind] += 1

    def kill_worker(self) -> None:
        victim = self.workers.pop(0)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        self.workers.append(start_worker(self.server, REDIS_URL))

    def flush_redis(self) -> None:
        with redis.Redis.from_url(REDIS_URL) as r:
            r.flushdb()

    def terminate_connections(self) -> None:
        with self.admin.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :db AND pid <> pg_backend_pid()"
                ),
                {"db": self.db},
            )

    def restart_redis(self) -> None:
        subprocess.run(["redis-cli", "-p", "6379", "shutdown", "nosave"], check=False)
        time.sleep(1)
        subprocess.run(
            "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no",
            shell=True,
            check=True,
        )

    def restart_postgres(self) -> None:
        version = os.listdir("/etc/postgresql")[0]
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"], check=True
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=120, help="how long jobs are submitted")
    parser.add_argument("--every", type=float, default=4.0, help="seconds between faults")
    parser.add_argument("--restart-redis", action="store_true")
    parser.add_argument("--restart-postgres", action="store_true")
    args = parser.parse_args()

    url = sa.make_url(normalize_url(DB_URL))
    admin = sa.create_engine(
        url.set(database="postgres"), isolation_level="AUTOCOMMIT", pool_pre_ping=True
    )
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
    engine = database(DB_URL)  # creates and migrates it: a fresh deployment
    with engine.begin() as conn:
        _, key = create_account(conn, "chaos")
    engine.dispose()
    with redis.Redis.from_url(REDIS_URL) as r:
        r.flushdb()

    app_url = DB_URL + "?options=-c%20role%3Daudience_app"  # as compose.yaml deploys it
    settings = {"max_body_bytes": MAX_BODY, "job_lease_s": 10, "job_chunk_size": 2000}
    tally, stop = Tally(), threading.Event()
    auth = {"Authorization": f"Bearer {key}"}
    started = time.monotonic()
    with Server(app_url, REDIS_URL, **settings) as server:
        workers = [start_worker(server, REDIS_URL) for _ in range(2)]
        http = httpx.Client(base_url=server.base, timeout=120, headers=auth)
        for offset in range(0, args.contacts, 5000):
            batch = [
                {"email": f"c{i}@example.com"}
                for i in range(offset, min(offset + 5000, args.contacts))
            ]
            assert http.post("/v1/contacts", json={"contacts": batch}).status_code == 200
        faults = Faults(server, workers, admin, url.database, args)
        threads = [
            threading.Thread(
                target=hostile_traffic, args=(server.base, key, tally, stop), daemon=True
            )
        ]
        for thread in threads:
            thread.start()

        def submit(i: int) -> int:
            body = {
                "selection": {},
                "actions": [
                    {"type": "set_score", "mode": "add", "value": 1},
                    {"type": "add_tags", "tags": [f"chaos-{i}"]},
                ],
            }
            idem = {"Idempotency-Key": uuid.uuid4().hex}
            while True:  # retried with the same key: never a second job
                try:
                    r = http.post("/v1/jobs", json=body, headers=idem)
                except httpx.HTTPError:
                    r = None
                tally.record("submit", r, expect_4xx=False)
                if r is not None and r.status_code == 202:
                    return r.json()["id"]
                time.sleep(float(r.headers.get("Retry-After", 1)) if r is not None else 1)

        pending = [submit(i) for i in range(2)]
        submitted, finished = 2, {}
        next_fault = time.monotonic() + args.every
        while pending:
            if time.monotonic() >= next_fault:
                faults.inject()
                next_fault = time.monotonic() + args.every
            for job_id in list(pending):
                try:
                    r = http.get(f"/v1/jobs/{job_id}")
                except httpx.HTTPError:
                    r = None
                tally.record("status", r, expect_4xx=False)
                if r is not None and r.status_code == 200:
                    job = r.json()
                    if job["status"] in ("succeeded", "failed", "cancelled"):
                        finished[job_id] = job
                        pending.remove(job_id)
                        if time.monotonic() - started < args.seconds:
                            pending.append(submit(submitted))
                            submitted += 1
            time.sleep(0.3)
        stop.set()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started

        jobs_ok = sum(j["status"] == "succeeded" for j in finished.values())
        check = sa.create_engine(normalize_url(DB_URL))
        with check.connect() as conn:
            scores = dict(
                conn.execute(
                    sa.text(
                        "SELECT score, count(*) FROM contacts c JOIN accounts a "
                        "ON a.id = c.account_id AND a.name = 'chaos' GROUP BY score"
                    )
                ).all()
            )
            contacts = sum(scores.values())
        check.dispose()
        tags = {}
        for i in range(submitted):
            spec = {"include": [{"type": "tag", "tags": [f"chaos-{i}"]}]}
            tags[i] = http.post("/v1/selections/count", json=spec).json()["total"]
        http.close()

    lost = sum(n for score, n in scores.items() if score < jobs_ok)
    doubled = sum(n for score, n in scores.items() if score > jobs_ok)
    untagged = sum(args.contacts - n for n in tags.values())
    print(
        table(
            ["what", "count"],
            [
                ["requests tried", sum(tally.statuses.values())],
                *[[f"  answered {k}", v] for k, v in sorted(tally.statuses.items())],
                ["5xx seen", len(tally.server_errors)],
                ["hostile request not refused (expected 4xx)", len(tally.unexpected)],
                *[[f"fault: {k}", v] for k, v in sorted(faults.done.items())],
                ["jobs submitted / succeeded", f"{submitted} / {jobs_ok}"],
                ["contacts (expected)", f"{contacts} ({args.contacts})"],
                ["contacts lost (score below jobs succeeded)", lost],
                ["contacts doubled (score above)", doubled],
                ["tags missing", untagged],
                ["seconds", round(elapsed)],
            ],
        )
    )
    for line in tally.server_errors[:10] + tally.unexpected[:10] + tally.unanswered[:10]:
        print("  ", line)
    bad = tally.server_errors or lost or doubled or untagged or contacts != args.contacts
    raise SystemExit(1 if bad or tally.unexpected or jobs_ok != submitted else 0)


if __name__ == "__main__":
    main()
