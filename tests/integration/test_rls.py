"""Row-level security on PostgreSQL (migrations 0003, 0004): under the code's own account
filters, the database itself keeps each account to its own rows, for an application
connected as `audience_app`. Proven by removing a code-level filter on purpose, by
transactions that name no account (they see and write nothing), by the engine's duty (jobs
rows only), and by jobs run as audience_app, in process and on a real worker logged in as a
non-superuser member of audience_app (as compose.yaml deploys it)."""

import os
import shutil
import time
import uuid

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, ProgrammingError

from app import tables as t
from app.auth import account_for_key, create_account, hash_key
from app.db import ACCOUNT, engine_duty, for_account, make_engine, present_key
from app.jobs import runner
from app.main import create_app
from app.selection import service
from app.selection.service import Prepared
from tests import conftest
from tests.conftest import REDIS_URL, Scoped, make_settings

# PostgreSQL only: SQLite has no roles (no SQLite case is collected to be skipped).
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("db_url", ["postgres"], indirect=True, scope="session"),
]


@pytest.fixture
def app_role_engine(db_url, app_login_url):
    """The app's engine as the session's login role (db_url: this module's parameter)."""
    with conftest.app_role_engine(app_login_url, pool_size=2) as engine:
        yield engine


@pytest.fixture
def two_accounts(app_role_engine, engine, solo_app):
    """Clients of accounts A and B, on an app connected as audience_app."""
    api = solo_app(app_engine=app_role_engine)
    clients = []
    for name in ("A", "B"):
        with engine.begin() as conn:
            account_id, key = create_account(conn, f"rls-{name}-{uuid.uuid4().hex[:6]}")
        client = Scoped(api, key)
        client.account_id = account_id
        clients.append(client)
    a, b = clients
    a.load(*({"email": f"a{i}@x.com", "tags": ["shared"]} for i in range(3)))
    b.load(*({"email": f"b{i}@x.com", "tags": ["shared"]} for i in range(5)))
    return a, b


def test_the_api_works_as_audience_app(two_accounts):
    a, b = two_accounts
    assert a.count({}) == 3 and b.count({}) == 5
    job = a.run(
        {"include": [{"type": "tag", "tags": ["shared"]}]}, [{"type": "add_tags", "tags": ["j"]}]
    )
    assert job["status"] == "succeeded" and job["actions"][0]["affected"] == 3
    # the job's tag is A's alone: in B it is unknown, a 422 at the name
    r = b.post("/v1/selections/count", json={"include": [{"type": "tag", "tags": ["j"]}]})
    assert r.status_code == 422, r.text
    assert [d["path"] for d in r.json()["error"]["details"]] == ["include[0].tags[0]"]
    assert b.get(f"/v1/jobs/{job['id']}").status_code == 404


def test_a_count_without_its_account_filter_still_sees_one_account(
    two_accounts, monkeypatch, engine
):
    a, _ = two_accounts
    calls = []

    def unfiltered_count(conn, account_id, spec) -> int:  # the bug RLS is there for
        calls.append(account_id)
        return conn.execute(sa.select(sa.func.count()).select_from(t.contacts)).scalar_one()

    monkeypatch.setattr(service, "count", unfiltered_count)
    assert a.count({}) == 3
    assert calls == [a.account_id], "the count route no longer calls service.count"
    with engine.connect() as conn:  # the same query as a superuser: every account's rows
        assert unfiltered_count(conn, None, None) >= 8


def test_writes_without_an_account_filter_stay_in_the_account(two_accounts, app_role_engine):
    a, b = two_accounts
    token = ACCOUNT.set(a.account_id)
    try:
        with app_role_engine.begin() as conn:
            changed = conn.execute(sa.update(t.contacts).values(score=t.contacts.c.score + 7))
            assert changed.rowcount == 3
        planted = sa.insert(t.contacts).values(
            account_id=b.account_id,
            email="planted@x.com",
            created_at=t.utcnow(),
            updated_at=t.utcnow(),
        )
        with (
            pytest.raises(ProgrammingError, match="row-level security"),
            app_role_engine.begin() as conn,
        ):
            conn.execute(planted)
        with app_role_engine.begin() as conn:
            gone = conn.execute(sa.delete(t.contact_tags)).rowcount
            assert gone == 3
    finally:
        ACCOUNT.reset(token)
    assert a.count({"filter": {"field": "score", "op": "eq", "value": 7}}) == 3
    assert b.count({"filter": {"field": "score", "op": "eq", "value": 0}}) == 5
    assert b.count({"include": [{"type": "tag", "tags": ["shared"]}]}) == 5
    assert b.count({"filter": {"field": "email", "op": "eq", "value": "planted@x.com"}}) == 0


def _visible(conn, table: sa.Table) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


# every table of the app: each holds an account's rows (accounts: the account itself)
OWNED = list(t.metadata.sorted_tables)


def test_every_table_is_held_by_a_policy(engine):
    with engine.connect() as conn:
        held = dict(
            conn.execute(
                sa.text(
                    "SELECT relname, relrowsecurity AND relforcerowsecurity FROM pg_class "
                    "WHERE relname = ANY(:names) AND relkind IN ('r', 'p')"  # p: events
                    " AND EXISTS (SELECT FROM pg_policy WHERE polrelid = pg_class.oid)"
                ),
                {"names": [table.name for table in OWNED]},
            ).all()
        )
    assert held == {table.name: True for table in OWNED}
    assert all("account_id" in table.c or table is t.accounts for table in OWNED)


@pytest.fixture
def with_jobs(two_accounts):
    """Both accounts' rows in every job table: a finished job with output each."""
    for client in two_accounts:
        job = client.run({}, [{"type": "generate_coupons", "name": "RLS", "length": 8}])
        assert job["status"] == "succeeded" and job["total"] > 0, job
    return two_accounts


def test_no_account_sees_nothing_and_writes_nothing(with_jobs, app_role_engine, engine):
    a, b = with_jobs
    filled = [t.accounts, t.api_keys, t.contacts, t.tags, t.contact_tags, t.jobs, t.job_actions]
    filled += [t.job_output, t.coupons]
    with engine.connect() as conn:  # the owner sees them
        assert all(_visible(conn, table) > 0 for table in filled)
    with app_role_engine.connect() as conn:  # no account named: nothing at all
        assert {table.name: _visible(conn, table) for table in OWNED} == {
            table.name: 0 for table in OWNED
        }
    with app_role_engine.begin() as conn:
        assert conn.execute(sa.update(t.contacts).values(score=99)).rowcount == 0
        assert conn.execute(sa.update(t.jobs).values(status="failed")).rowcount == 0
        assert conn.execute(sa.delete(t.contact_tags)).rowcount == 0
        assert conn.execute(sa.delete(t.job_output)).rowcount == 0
    for table, row in [
        (t.contacts, {"email": "n@x.com", "created_at": t.utcnow(), "updated_at": t.utcnow()}),
        (t.job_members, {"job_id": 1, "contact_id": 1}),
        (t.api_keys, {"key_hash": uuid.uuid4().hex, "prefix": "aud_", "created_at": t.utcnow()}),
    ]:
        with (
            pytest.raises(ProgrammingError, match="row-level security"),
            app_role_engine.begin() as conn,
        ):
            conn.execute(sa.insert(table).values(account_id=a.account_id, **row))
    assert a.count({}) == 3 and b.count({"filter": {"field": "score", "op": "eq", "value": 0}}) == 5


def test_the_engine_duty_sees_jobs_and_outbox_rows_and_nothing_else(with_jobs, app_role_engine):
    a, b = with_jobs
    with app_role_engine.begin() as conn:
        engine_duty(conn)
        mine = t.jobs.c.account_id.in_([a.account_id, b.account_id])
        assert conn.execute(sa.select(sa.func.count()).where(mine)).scalar_one() == 2
        # jobs, and the webhook outbox its delivery loop claims from (migration 0007)
        others = [table for table in OWNED if table not in (t.jobs, t.webhook_deliveries)]
        assert {table.name: _visible(conn, table) for table in others} == {
            table.name: 0 for table in others
        }
        assert conn.execute(sa.update(t.jobs).where(mine).values(attempts=7)).rowcount == 2
        assert conn.execute(sa.delete(t.jobs).where(mine)).rowcount == 0
        assert conn.execute(sa.delete(t.webhook_deliveries)).rowcount == 0  # claim, not delete
    with pytest.raises(ProgrammingError, match="row-level security"), app_role_engine.begin() as c:
        engine_duty(c)
        now = t.utcnow()
        c.execute(
            sa.insert(t.jobs).values(
                account_id=a.account_id,
                status="queued",
                selection={},
                actions=[],
                as_of=now,
                created_at=now,
            )
        )


def test_a_key_shows_its_own_row_only(two_accounts, app_role_engine):
    a, b = two_accounts
    with app_role_engine.begin() as conn:
        assert account_for_key(conn, a.key) == a.account_id
        assert _visible(conn, t.api_keys) == 1
        assert _visible(conn, t.contacts) == 0
    with app_role_engine.begin() as conn:
        present_key(conn, hash_key("aud_not-a-key"))
        assert _visible(conn, t.api_keys) == 0
    with app_role_engine.begin() as conn:
        assert account_for_key(conn, b.key) == b.account_id


def test_a_new_account_is_made_as_audience_app(app_role_engine):
    with app_role_engine.begin() as conn:
        account_id, key = create_account(conn, "made-by-the-app-role")
    with app_role_engine.begin() as conn:
        assert account_for_key(conn, key) == account_id
    with for_account(app_role_engine, account_id).connect() as conn:
        assert conn.execute(sa.select(t.accounts.c.name)).scalar_one() == "made-by-the-app-role"


def test_job_tables_keep_to_their_account(with_jobs, app_role_engine):
    a, b = with_jobs
    for client, other in [(a, b), (b, a)]:
        with for_account(app_role_engine, client.account_id).connect() as conn:
            for table in (t.job_actions, t.job_output, t.jobs):
                accounts = set(conn.execute(sa.select(table.c.account_id).distinct()).scalars())
                assert accounts == {client.account_id}, table.name
        planted = sa.insert(t.job_output).values(
            account_id=other.account_id, job_id=1, position=0, contact_id=1, value="x"
        )
        with (
            pytest.raises(ProgrammingError, match="row-level security"),
            for_account(app_role_engine, client.account_id).begin() as conn,
        ):
            conn.execute(planted)


# --- a job acts for its account, or fails loudly ----------------------------------------

TAG_ALL = [{"type": "add_tags", "tags": ["done"]}]


def test_a_snapshot_that_disagrees_with_its_count_fails_the_job(two_accounts, monkeypatch):
    a, _ = two_accounts
    members = Prepared.members

    def one_short(self):  # a selection compiled one way for the snapshot, another to count
        return members(self).where(t.contacts.c.email != "a0@x.com")

    monkeypatch.setattr(Prepared, "members", one_short)
    job = a.run({}, TAG_ALL)
    assert job["status"] == "failed", job
    assert "snapshot holds 2 contacts but the selection counts 3" in job["error"]
    assert job["actions"][0]["affected"] == 0
    monkeypatch.undo()  # previews compile members() too
    # nobody tagged (read per contact: whether the tag itself exists is not the point)
    for cid in a.ids(*(f"a{i}@x.com" for i in range(3))):
        assert "done" not in a.get(f"/v1/contacts/{cid}").json()["tags"]


def test_a_job_on_the_engine_duty_alone_fails_instead_of_doing_nothing(
    two_accounts, app_role_engine, monkeypatch, engine
):
    """The issue's trap: a job whose transactions see its jobs row but not its contacts
    snapshotted 0 and `succeeded`. Here every job transaction takes the engine's duty
    instead of acting for the job's account."""
    a, _ = two_accounts
    on_duty = app_role_engine.execution_options()
    event.listen(on_duty, "begin", engine_duty)
    monkeypatch.setattr(runner, "for_account", lambda _engine, _account: on_duty)
    job = a.run({}, [{"type": "set_score", "mode": "add", "value": 1}])
    assert job["status"] == "failed", job
    assert f"does not act for its account {a.account_id}" in job["error"]
    with engine.connect() as conn:
        scores = conn.execute(
            sa.select(t.contacts.c.score).where(t.contacts.c.account_id == a.account_id)
        ).scalars()
        assert set(scores) == {0}


def test_a_job_whose_snapshot_is_not_processed_whole_fails(two_accounts, monkeypatch):
    a, _ = two_accounts
    real = runner.repository.next_chunk

    def hides_the_last(conn, account_id, job_id, *, after, size):  # a member the loop misses
        return real(conn, account_id, job_id, after=after, size=size)[:-1]

    monkeypatch.setattr(runner.repository, "next_chunk", hides_the_last)
    job = a.run({}, TAG_ALL)
    assert job["status"] == "failed", job
    assert "of the snapshot's 3 contacts were processed" in job["error"]


# --- a non-superuser login role, as compose.yaml deploys it ------------------------------


def test_the_login_role_cannot_step_out_of_row_level_security(app_login_url, two_accounts):
    a, _ = two_accounts
    login = make_engine(app_login_url, pool_size=1)
    try:
        with login.connect() as conn:
            conn.exec_driver_sql("RESET ROLE")
            user, superuser = conn.exec_driver_sql(
                "SELECT current_user, usesuper FROM pg_user WHERE usename = current_user"
            ).one()
            assert user.startswith("audience_login_") and superuser is False
            assert _visible(conn, t.contacts) == 0
            assert conn.exec_driver_sql("SELECT row_security_active('contacts')").scalar()
            with pytest.raises(DBAPIError, match="permission denied"):
                conn.exec_driver_sql("SET ROLE postgres")
        with for_account(login, a.account_id).connect() as conn:
            assert _visible(conn, t.contacts) == 3
    finally:
        login.dispose()


@pytest.mark.redis
def test_jobs_run_on_a_worker_logged_in_as_a_member_of_audience_app(
    app_login_url, engine, api, tmp_path
):
    """Reaper, claim, every job transaction and the snapshot purge of a real
    `audience worker`, and the API, all as the login role compose.yaml uses."""
    from tests.integration.test_worker import Redis, Worker

    if not REDIS_URL or not shutil.which("redis-server"):
        pytest.skip("needs AUDIENCE_TEST_REDIS_URL and redis-server")
    api.app.state.runner.stop()  # these workers are the only runners on this database
    redis = Redis()
    redis.start()
    login = make_engine(app_login_url, pool_size=4)
    env = {
        **os.environ,
        "AUDIENCE_DATABASE_URL": app_login_url,
        "AUDIENCE_REDIS_URL": redis.url,
        "AUDIENCE_JOB_CHUNK_SIZE": "40",
        "AUDIENCE_LOG_LEVEL": "WARNING",
    }
    worker = Worker(env)
    try:
        with engine.begin() as conn:
            _, key = create_account(conn, f"rls-worker-{uuid.uuid4().hex[:6]}")
        settings = make_settings(app_login_url, redis_url=redis.url)
        with TestClient(create_app(settings, engine=login)) as client:
            c = Scoped(client, key)
            c.load(*({"email": f"w{i}@x.com", "tags": ["w"]} for i in range(100)))
            worker.start()
            job = c.run(
                {"include": [{"type": "tag", "tags": ["w"]}]},
                [
                    {"type": "add_tags", "tags": ["worked"]},
                    {"type": "set_score", "mode": "add", "value": 2},
                    {"type": "generate_coupons", "name": "W", "length": 8},
                ],
            )
            assert job["status"] == "succeeded", job
            assert (job["total"], job["processed"]) == (100, 100)
            assert [x["affected"] for x in job["actions"]] == [100, 100, 100]
            assert c.count({"filter": {"field": "score", "op": "eq", "value": 2}}) == 100
            assert len(c.get(f"/v1/jobs/{job['id']}/output").text.splitlines()) == 101
            deadline = time.monotonic() + 30  # the worker's tidy purges the snapshot
            while True:
                with engine.connect() as conn:
                    members = conn.execute(
                        sa.select(sa.func.count()).where(t.job_members.c.job_id == job["id"])
                    ).scalar_one()
                if members == 0:
                    break
                assert time.monotonic() < deadline, f"{members} snapshot rows left"
                time.sleep(0.2)
    finally:
        if worker.proc is not None:
            worker.stop()
        redis.stop()
        login.dispose()
        api.app.state.runner.start()
