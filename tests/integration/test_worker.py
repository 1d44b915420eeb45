"""The production shape: PostgreSQL + Redis + real `audience worker` processes.

Faults: workers SIGKILLed mid-job (more often than arq's max_tries), PostgreSQL killing the
worker's connections and refusing new ones mid-job, Redis flushed, restarted or gone while a
job is queued, a selection that changes under a running job. Each test runs its own
redis-server on a spare port so it can kill it without touching anyone else's; on the
shared PostgreSQL server only the worker's own backends (those of a login role of its own)
are killed."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis as redis_py
import sqlalchemy as sa
from fastapi.testclient import TestClient

from app import tables as t
from app.jobs.worker import MAX_TRIES
from app.main import create_app
from tests.bulk import bulk_account
from tests.conftest import REDIS_URL, Scoped, free_port, login_role, make_settings

pytestmark = [pytest.mark.redis, pytest.mark.postgres]
AUDIENCE = str(Path(sys.executable).parent / "audience")


class Redis:
    """A private redis-server we may kill and restart."""

    def __init__(self):
        self.port = free_port()
        self.proc = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def client(self) -> redis_py.Redis:
        return redis_py.Redis.from_url(self.url)


class Worker:
    def __init__(self, env: dict):
        self.env = env
        self.proc = None

    def start(self):
        self.log = open(f"/tmp/audience-test-worker-{os.getpid()}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [AUDIENCE, "worker"], env=self.env, stdout=self.log, stderr=self.log
        )

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


@pytest.fixture
def stack(db_url, engine, api):
    if not db_url.startswith("postgresql"):
        pytest.skip("the worker tests run on PostgreSQL")
    if not REDIS_URL or not shutil.which("redis-server"):
        pytest.skip("needs AUDIENCE_TEST_REDIS_URL and redis-server")
    # The session's app runs jobs in-process against this same database; pause it, or it
    # would race these workers for every job (no deployment mixes the two).
    api.app.state.runner.stop()
    redis = Redis()
    redis.start()
    settings = make_settings(
        db_url, redis_url=redis.url, job_chunk_size=500, job_lease_s=3, job_requeue_s=2
    )
    env = {
        **os.environ,
        "AUDIENCE_DATABASE_URL": db_url,
        "AUDIENCE_REDIS_URL": redis.url,
        "AUDIENCE_JOB_CHUNK_SIZE": "500",
        "AUDIENCE_JOB_LEASE_S": "3",
        "AUDIENCE_JOB_REQUEUE_S": "2",
        "AUDIENCE_LOG_LEVEL": "WARNING",
    }
    workers: list[Worker] = []

    def worker(**more_env: str) -> Worker:
        w = Worker({**env, **more_env})
        w.start()
        workers.append(w)
        return w

    app = create_app(settings, engine=engine)
    with TestClient(app) as worker_api:
        yield worker_api, redis, worker
    for w in workers:
        w.stop()
    redis.stop()
    api.app.state.runner.start()


class Hold:
    """Row locks on a slice of an account's contacts (by id order, as jobs go), held in a
    transaction of the test's own: the chunk that reaches them waits there, so a test stops
    a job at a known point instead of racing it. FOR NO KEY UPDATE blocks the UPDATE of
    set_score and nothing else (new contact_tags rows still reference them). The OFFSET is in
    a subquery: a locking SELECT would lock the rows it skips too."""

    def __init__(self, engine, account_id: int, at: int, size: int = 1):
        self.conn = engine.connect()
        self.at = at
        self.conn.execute(
            sa.text(
                "SELECT id FROM contacts WHERE id IN (SELECT id FROM contacts"
                " WHERE account_id = :a ORDER BY id OFFSET :at LIMIT :size) FOR NO KEY UPDATE"
            ),
            {"a": account_id, "at": at, "size": size},
        ).all()

    def release(self) -> None:
        if self.conn is not None:
            self.conn.rollback()
            self.conn.close()
            self.conn = None


@pytest.fixture
def hold(engine):
    """hold(account_id, at): the job stops with exactly `at` contacts processed (a multiple
    of the stack's chunk size of 500) until .release()."""
    holds: list[Hold] = []

    def make(account_id: int, at: int) -> Hold:
        holds.append(Hold(engine, account_id, at))
        return holds[-1]

    yield make
    for h in holds:
        h.release()


def _at(client, job_id: int, processed: int) -> dict:
    """Wait until the job is held with exactly `processed` contacts done."""
    return _wait_for(client, job_id, lambda j: j["processed"] >= processed)


def _account(api, engine, n):
    account_id, key = bulk_account(engine, n, with_key=True)
    with engine.begin() as conn:
        conn.execute(
            sa.update(t.contacts).where(t.contacts.c.account_id == account_id).values(score=0)
        )
    return account_id, Scoped(api, key)


def test_jobs_run_on_workers(stack, engine):
    api, _, worker = stack
    worker()
    _, client = _account(api, engine, 2000)
    job = client.run(
        {"include": [{"type": "tag", "tags": ["t1", "t2"]}]},
        [{"type": "add_tags", "tags": ["w"]}, {"type": "set_score", "mode": "add", "value": 1}],
    )
    assert job["status"] == "succeeded", job
    assert job["total"] == 80 and job["actions"][0]["affected"] == 80
    assert client.count({"filter": {"field": "score", "op": "eq", "value": 1}}) == 80


def test_sigkilled_worker_job_finishes_exactly_once(stack, engine, hold):
    api, _, worker = stack
    first = worker()
    account_id, client = _account(api, engine, 50_000)
    held = hold(account_id, 25_000)
    job_id = _submit(client)
    assert _at(client, job_id, 25_000)["processed"] == 25_000
    first.kill()  # mid-chunk: its transaction never commits
    killed_at = client.get(f"/v1/jobs/{job_id}").json()
    assert killed_at["status"] == "running" and killed_at["processed"] == 25_000
    held.release()
    worker()
    job = client.wait(job_id, timeout=120)
    _assert_added_once(client, job, 50_000)
    assert job["attempts"] >= 2


def test_job_queued_while_redis_is_down_still_runs(stack, engine):
    api, redis, worker = stack
    worker()
    _, client = _account(api, engine, 300)
    redis.stop()
    r = client.post(
        "/v1/jobs", json={"selection": {}, "actions": [{"type": "add_tags", "tags": ["later"]}]}
    )
    assert r.status_code == 202  # the database has it; the reaper will enqueue it
    assert client.get(f"/v1/jobs/{r.json()['id']}").json()["status"] == "queued"
    time.sleep(1)
    redis.start()
    job = client.wait(r.json()["id"], timeout=60)
    assert job["status"] == "succeeded" and job["actions"][0]["affected"] == 300


def test_job_lost_by_a_redis_restart_still_runs(stack, engine):
    api, redis, worker = stack
    _, client = _account(api, engine, 300)
    r = client.post(
        "/v1/jobs", json={"selection": {}, "actions": [{"type": "add_tags", "tags": ["lost"]}]}
    )
    redis.stop()  # no persistence: the queued job id is gone
    redis.start()
    worker()
    job = client.wait(r.json()["id"], timeout=60)
    assert job["status"] == "succeeded" and job["actions"][0]["affected"] == 300


def test_cancel_a_job_running_on_a_worker(stack, engine):
    api, _, worker = stack
    worker()
    _, client = _account(api, engine, 50_000)
    job_id = client.post(
        "/v1/jobs",
        json={
            "selection": {},
            "actions": [
                {"type": "set_score", "mode": "add", "value": 1},
                {"type": "set_detail", "name": "x", "value": "y"},
            ],
        },
    ).json()["id"]
    _wait_for(client, job_id, lambda job: job["processed"] > 0)
    client.post(f"/v1/jobs/{job_id}/cancel")
    job = client.wait(job_id)
    assert job["status"] == "cancelled" and 0 < job["processed"] < 50_000
    assert client.count({"filter": {"field": "score", "op": "eq", "value": 1}}) == job["processed"]


ADD_ONE = [{"type": "set_score", "mode": "add", "value": 1}]


def _submit(client, actions=ADD_ONE, selection=None) -> int:
    r = client.post("/v1/jobs", json={"selection": selection or {}, "actions": actions})
    assert r.status_code == 202, r.text
    return r.json()["id"]


def _wait_for(client, job_id: int, until, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if until(job):
            return job
        assert job["status"] in ("queued", "running"), job
        assert time.monotonic() < deadline, job
        time.sleep(0.01)


def _assert_added_once(client, job: dict, n: int) -> None:
    """set_score add 1 over n contacts whose score was 0: each of them is 1, none is 2."""
    assert job["status"] == "succeeded", job
    assert job["processed"] == job["total"] == n, job
    assert job["actions"][0]["affected"] == n, job
    assert client.count({"filter": {"field": "score", "op": "eq", "value": 1}}) == n
    assert client.count({"filter": {"field": "score", "op": "gt", "value": 1}}) == 0


def _terminate(admin, database: str, role: str) -> int:
    """pg_terminate_backend every connection of one worker process, which logs in as a role
    of its own (nobody else's on this shared server). By role, not by application name:
    behind PgBouncer a backend serves every client of its database and role in turn, and
    keeps the application name of the last client that gave one."""
    return admin.execute(
        sa.text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = :database AND usename = :role"
        ),
        {"database": database, "role": role},
    ).scalar_one()


def test_database_restart_mid_job_resumes_exactly_once(stack, db_url, engine, hold):
    api, _, worker = stack
    with login_role(db_url) as url:  # a member of audience_app, as deployed
        w = worker(AUDIENCE_DATABASE_URL=url)
        try:
            _restart_mid_job(api, engine, hold, sa.make_url(url).username)
        finally:
            w.stop()  # before its role goes


def _restart_mid_job(api, engine, hold, role: str) -> None:
    account_id, client = _account(api, engine, 20_000)
    first, second = hold(account_id, 5_000), hold(account_id, 15_000)
    job_id = _submit(client)
    _at(client, job_id, 5_000)
    database = engine.url.database
    admin = sa.create_engine(engine.url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            # the worker's backends killed, as a fast shutdown does …
            assert _terminate(conn, database, role) > 0
            first.release()
            assert _at(client, job_id, 15_000)["processed"] == 15_000
            # … then a database that refuses the worker for 2 s, as a restart does
            conn.exec_driver_sql(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
            try:
                _terminate(conn, database, role)
                second.release()
                time.sleep(0.2)
                stalled_at = client.get(f"/v1/jobs/{job_id}").json()  # this test's own pool
                for _ in range(18):
                    _terminate(conn, database, role)
                    time.sleep(0.1)
                job = client.get(f"/v1/jobs/{job_id}").json()
            finally:
                conn.exec_driver_sql(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
    finally:
        admin.dispose()
    assert job["status"] == "running" and job["processed"] == stalled_at["processed"] == 15_000
    job = client.wait(job_id, timeout=60)
    _assert_added_once(client, job, 20_000)


def test_redis_flushed_mid_job(stack, engine, hold):
    api, redis, worker = stack
    worker()
    account_id, client = _account(api, engine, 20_000)
    held = hold(account_id, 5_000)
    job_id = _submit(client)
    _at(client, job_id, 5_000)
    with redis.client() as r:
        r.flushall()  # this test's own redis-server
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "running" and job["processed"] == 5_000
    held.release()
    job = client.wait(job_id, timeout=60)
    _assert_added_once(client, job, 20_000)
    # the worker still takes new jobs
    after = client.run(
        {"include": [{"type": "tag", "tags": ["t1"]}]}, [{"type": "add_tags", "tags": ["x"]}]
    )
    assert after["status"] == "succeeded" and after["actions"][0]["affected"] == 400


def test_redis_restarted_mid_job(stack, engine, hold):
    api, redis, worker = stack
    worker()
    account_id, client = _account(api, engine, 20_000)
    held = hold(account_id, 5_000)
    job_id = _submit(client)
    job = _at(client, job_id, 5_000)
    redis.stop()
    held.release()
    # job status comes from the database: it keeps answering while Redis is down, and the
    # job (which needs only the database once started) keeps going
    at_stop = job
    for _ in range(10):
        r = client.get(f"/v1/jobs/{job_id}")
        assert r.status_code == 200 and r.json()["processed"] >= job["processed"]
        job = r.json()
        time.sleep(0.1)
    assert job["processed"] > at_stop["processed"]
    ready = api.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["queue"].startswith("error")
    redis.start()  # empty: no persistence
    job = client.wait(job_id, timeout=60)
    _assert_added_once(client, job, 20_000)
    after = client.run(
        {"include": [{"type": "tag", "tags": ["t1"]}]}, [{"type": "add_tags", "tags": ["x"]}]
    )
    assert after["status"] == "succeeded" and after["actions"][0]["affected"] == 400


def test_more_worker_kills_than_arq_max_tries_lose_nothing(stack, engine, hold):
    api, redis, worker = stack
    account_id, client = _account(api, engine, 20_000)
    stops = [hold(account_id, 2_000 * (k + 1)) for k in range(MAX_TRIES + 1)]
    job_id = _submit(client)
    for kill, held in enumerate(stops):
        w = worker()
        job = _wait_for(
            client, job_id, lambda j, k=kill, h=held: j["attempts"] > k and j["processed"] >= h.at
        )
        w.kill()
        held.release()  # the killed worker's waiting chunk rolls back
        job = client.get(f"/v1/jobs/{job_id}").json()
        # the API tells the truth: still running (a lease nobody renews), one more attempt
        assert job["status"] == "running" and job["processed"] == held.at, job
        assert job["attempts"] == kill + 1 and job["error"] is None, job
    worker()
    job = client.wait(job_id, timeout=60)
    _assert_added_once(client, job, 20_000)
    assert job["attempts"] == MAX_TRIES + 2
    # arq's entries of the killed runs do not linger (each would hide the queue's newer
    # entries from every worker for a week, arq's in-progress mark being job_timeout)
    with redis.client() as r:
        deadline = time.monotonic() + 10
        while [e for e in r.zrange("arq:queue", 0, -1) if not e.startswith(b"cron:")]:
            assert time.monotonic() < deadline, r.zrange("arq:queue", 0, -1)
            time.sleep(0.2)


def test_a_job_acts_on_its_snapshot_while_the_selection_changes(stack, engine, hold):
    api, _, worker = stack
    account_id, client = _account(api, engine, 20_000)
    selection = {"include": [{"type": "tag", "tags": [f"t{i}" for i in range(1, 51)]}]}
    assert client.count(selection) == 20_000  # every bulk contact has one of these tags
    with engine.connect() as conn:
        last = list(  # the job reaches them last: chunks go by contact id
            conn.execute(
                sa.select(t.contacts.c.id)
                .where(t.contacts.c.account_id == account_id)
                .order_by(t.contacts.c.id.desc())
                .limit(1000)
            ).scalars()
        )
    held = hold(account_id, 5_000)
    job_id = _submit(client, selection=selection)
    worker()
    _at(client, job_id, 5_000)
    # mid-run: 500 new contacts join the selection, the last 1,000 leave it
    client.load(
        *[{"email": f"new{i}@late.example", "tags": ["t7"], "score": 0} for i in range(500)]
    )
    with engine.begin() as conn:
        conn.execute(sa.delete(t.contact_tags).where(t.contact_tags.c.contact_id.in_(last)))
    assert client.count(selection) == 20_000 - 1000 + 500
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["total"] == 20_000 and job["processed"] == 5_000, job  # not reached yet
    held.release()
    job = client.wait(job_id, timeout=60)
    _assert_added_once(client, job, 20_000)  # the 1,000 included; the 500 (score 0) untouched
    late = {"field": "email_domain", "op": "eq", "value": "late.example"}
    assert client.count({"filter": late}) == 500
    assert (
        client.count({"filter": {"and": [late, {"field": "score", "op": "eq", "value": 0}]}}) == 500
    )
    done = {"field": "score", "op": "eq", "value": 1}
    assert client.count({"exclude": selection["include"], "filter": done}) == 1000  # who left


def test_revert_under_a_sigkilled_worker_restores_exactly_once(stack, engine, hold):
    """A revert is a job like any other: its worker killed mid-chunk, another finishes it,
    and every contact is given back once: one row of the revert's own change log each."""
    api, _, worker = stack
    first = worker()
    account_id, client = _account(api, engine, 20_000)
    job = client.wait(_submit(client), timeout=120)
    _assert_added_once(client, job, 20_000)
    held = hold(account_id, 10_000)
    r = client.post(f"/v1/jobs/{job['id']}/revert")
    assert r.status_code == 202, r.text
    undo = r.json()["id"]
    assert _at(client, undo, 10_000)["processed"] == 10_000
    first.kill()
    held.release()
    worker()
    undone = client.wait(undo, timeout=120)
    assert undone["status"] == "succeeded" and undone["conflicts"] == 0, undone
    assert undone["total"] == undone["processed"] == 20_000, undone
    assert undone["actions"] == [{"type": "set_score", "affected": 20_000}]
    assert client.count({"filter": {"field": "score", "op": "eq", "value": 0}}) == 20_000
    with engine.connect() as conn:
        logged = conn.execute(
            sa.select(sa.func.count(), sa.func.count(sa.distinct(t.change_log.c.contact_id))).where(
                t.change_log.c.account_id == account_id, t.change_log.c.job_id == undo
            )
        ).one()
    assert tuple(logged) == (20_000, 20_000)
