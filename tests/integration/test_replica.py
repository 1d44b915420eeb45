"""Reads from a real PostgreSQL hot standby (.ci/standby makes one of the test server):
counts, previews, pickers and listings come from it while it keeps up; when it lags more
than AUDIENCE_MAX_REPLICA_LAG_S or is down, they come from the primary. What a client
must see right after its own write (its job, its key's revocation) never waits for it.

Needs AUDIENCE_TEST_REPLICA_URL (the standby's server, e.g. postgresql://postgres@127.0.0.1:5433);
stopping and starting it needs AUDIENCE_TEST_STANDBY_DIR too (CI sets both)."""

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from app.auth import create_account
from app.db import make_engine, normalize_url
from app.main import create_app
from tests.conftest import Scoped, app_role_engine, make_settings

REPLICA = os.environ.get("AUDIENCE_TEST_REPLICA_URL")
STANDBY_DIR = os.environ.get("AUDIENCE_TEST_STANDBY_DIR")

pytestmark = pytest.mark.skipif(not REPLICA, reason="needs AUDIENCE_TEST_REPLICA_URL (a standby)")


def _pg_ctl(*args: str) -> None:
    bin_ = sorted(Path("/usr/lib/postgresql").iterdir(), key=lambda p: int(p.name))[-1] / "bin"
    command = [str(bin_ / "pg_ctl"), "-D", STANDBY_DIR, "-w", "-t", "60", *args]
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    subprocess.run(command, check=True, capture_output=True)


@pytest.fixture(scope="module")
def standby_url(pg_url) -> str:
    database = sa.make_url(normalize_url(pg_url)).database
    url = sa.make_url(normalize_url(REPLICA)).set(database=database)
    return url.render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def standby(standby_url) -> Iterator[sa.Engine]:
    """The standby as its superuser (to pause replay and wait for it)."""
    engine = make_engine(standby_url)
    deadline = time.monotonic() + 60
    while True:  # the test database was just created on the primary: wait for it here
        try:
            with engine.connect() as conn:
                assert conn.exec_driver_sql("SELECT pg_is_in_recovery()").scalar()
            break
        except sa.exc.OperationalError:
            assert time.monotonic() < deadline, "the standby never got the test database"
            time.sleep(0.2)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def engine(pg_url) -> Iterator[sa.Engine]:
    """The primary, as the tables' owner."""
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def api(pg_url, app_login_url, standby_url, standby) -> Iterator[TestClient]:
    """The app as its login role, on the primary and on the standby (same role)."""
    login = sa.make_url(app_login_url)
    replica = sa.make_url(standby_url).set(username=login.username, password=login.password)
    settings = make_settings(
        pg_url,
        read_database_url=replica.render_as_string(hide_password=False),
        max_replica_lag_s=3600,
    )
    with (
        app_role_engine(app_login_url, pool_size=5) as role_engine,
        TestClient(create_app(settings, engine=role_engine)) as client,
    ):
        yield client


@pytest.fixture
def client(api, engine) -> Scoped:
    with engine.begin() as conn:
        return Scoped(api, create_account(conn, "replica")[1])


def _replay(standby: sa.Engine, run: bool) -> None:
    with standby.connect() as conn:
        conn.exec_driver_sql(f"SELECT pg_wal_replay_{'resume' if run else 'pause'}()")
        conn.commit()


def _caught_up(primary: sa.Engine, standby: sa.Engine) -> None:
    with primary.connect() as conn:
        lsn = conn.exec_driver_sql("SELECT pg_current_wal_lsn()").scalar()
    deadline = time.monotonic() + 30
    while True:
        with standby.connect() as conn:
            done = conn.exec_driver_sql(
                "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)
            ).scalar()
        if done:
            return
        assert time.monotonic() < deadline, "the standby did not catch up"
        time.sleep(0.05)


def count(client, **spec) -> int:
    r = client.post("/v1/selections/count", json=spec)
    assert r.status_code == 200, r.text
    return r.json()["total"]


def test_reads_come_from_the_standby_and_fall_back_when_it_lags(client, api, engine, standby):
    reads = api.app.state.reads
    client.load(*({"email": f"c{i}@x.pl", "tags": ["t"]} for i in range(5)))
    _caught_up(engine, standby)
    assert count(client) == 5
    assert reads.state()["in_use"] and reads.state()["lag_s"] is not None

    _replay(standby, run=False)
    try:
        client.load(*({"email": f"n{i}@x.pl", "tags": ["t"]} for i in range(3)))
        time.sleep(reads.recheck_s)
        # The standby has not replayed them: a count it answers does not see them...
        assert count(client) == 5
        assert client.get("/v1/tags").json()["tags"] == [{"name": "t", "contacts": 5}]
        page = client.post("/v1/selections/preview", json={"selection": {}, "limit": 50})
        assert page.json()["total"] == 5
        # ...but what a client reads back after its own write comes from the primary.
        job = client.post("/v1/jobs", json={"selection": {}, "actions": [{"type": "delete"}]})
        assert job.status_code == 202
        assert client.get(job.headers["Location"]).status_code == 200
        assert client.post(
            "/v1/jobs/dry-run", json={"selection": {}, "actions": [{"type": "undelete"}]}
        ).json()["total"] in (0, 8)

        # Past the allowed lag, reads go to the primary and see everything.
        reads.max_lag_s = 0.2
        time.sleep(max(reads.recheck_s, 0.5))
        before = reads.fallbacks
        assert count(client, deleted="include") == 8
        assert reads.fallbacks > before and not reads.state()["in_use"]
        assert api.get("/readyz").json()["replica"]["in_use"] is False
    finally:
        reads.max_lag_s = 3600
        _replay(standby, run=True)
    _caught_up(engine, standby)
    time.sleep(reads.recheck_s)
    assert count(client, deleted="include") == 8 and reads.state()["in_use"]


def test_a_revoked_key_stops_at_once_whatever_the_standby_has_replayed(
    client, api, engine, standby
):
    made = client.post("/v1/keys", json={"label": "temp", "scope": "read"}).json()
    _caught_up(engine, standby)
    temp = Scoped(api, made["key"])
    assert temp.post("/v1/selections/count", json={}).status_code == 200
    _replay(standby, run=False)
    try:
        assert client.delete(f"/v1/keys/{made['id']}").status_code == 204
        assert temp.post("/v1/selections/count", json={}).status_code == 401
    finally:
        _replay(standby, run=True)


@pytest.mark.skipif(not STANDBY_DIR, reason="stopping the standby needs AUDIENCE_TEST_STANDBY_DIR")
def test_reads_go_on_when_the_standby_stops(client, api, engine, standby):
    reads = api.app.state.reads
    client.load({"email": "a@x.pl"}, {"email": "b@x.pl"})
    _caught_up(engine, standby)
    assert count(client) == 2 and reads.state()["in_use"]
    _pg_ctl("-m", "fast", "stop")
    try:
        client.load({"email": "c@x.pl"})
        assert count(client) == 3  # the dropped connection sent it to the primary
        assert client.get("/v1/contacts").json()["contacts"][2]["email"] == "c@x.pl"
        ready = api.get("/readyz")
        assert ready.status_code == 200 and ready.json()["replica"]["in_use"] is False
    finally:
        _pg_ctl("-l", str(Path(STANDBY_DIR) / "log"), "start")
    _caught_up(engine, standby)
    time.sleep(reads.recheck_s)
    assert count(client) == 3 and reads.state()["in_use"]
