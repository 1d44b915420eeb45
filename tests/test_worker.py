"""The production shape: PostgreSQL + Redis + real `audience worker` processes.

Faults: a worker SIGKILLed mid-job, Redis gone while a job is queued. Each test runs its
own redis-server on a spare port so it can kill it without touching anyone else's."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from app import tables as t
from app.main import create_app
from tests.bulk import bulk_account
from tests.conftest import REDIS_URL, Scoped, make_settings

pytestmark = [pytest.mark.redis, pytest.mark.postgres]
AUDIENCE = str(Path(sys.executable).parent / "audience")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    """A private redis-server we may kill and restart."""

    def __init__(self):
        self.port = _free_port()
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

    def worker() -> Worker:
        w = Worker(env)
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


def test_sigkilled_worker_job_finishes_exactly_once(stack, engine):
    api, _, worker = stack
    first = worker()
    _, client = _account(api, engine, 50_000)
    job_id = client.post(
        "/v1/jobs",
        json={"selection": {}, "actions": [{"type": "set_score", "mode": "add", "value": 1}]},
    ).json()["id"]
    deadline = time.monotonic() + 60
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["processed"] > 0:
            break
        assert time.monotonic() < deadline, job
        time.sleep(0.01)
    first.kill()
    killed_at = client.get(f"/v1/jobs/{job_id}").json()
    assert killed_at["status"] == "running" and killed_at["processed"] < 50_000
    worker()
    job = client.wait(job_id, timeout=120)
    assert job["status"] == "succeeded", job
    assert job["processed"] == job["total"] == 50_000
    assert job["actions"][0]["affected"] == 50_000
    assert job["attempts"] >= 2
    assert client.count({"filter": {"field": "score", "op": "eq", "value": 1}}) == 50_000


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
    while client.get(f"/v1/jobs/{job_id}").json()["processed"] == 0:
        time.sleep(0.01)
    client.post(f"/v1/jobs/{job_id}/cancel")
    job = client.wait(job_id)
    assert job["status"] == "cancelled" and 0 < job["processed"] < 50_000
    assert client.count({"filter": {"field": "score", "op": "eq", "value": 1}}) == job["processed"]
