"""Row-level security on PostgreSQL (migration 0003): under the code's own account
filters, the database itself keeps each account to its own rows, for an application
connected as `audience_app`. Proven by removing a code-level filter on purpose."""

import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import ProgrammingError

from app import tables as t
from app.auth import create_account
from app.db import ACCOUNT
from app.selection import service
from tests import conftest
from tests.conftest import Scoped

# PostgreSQL only: SQLite has no roles (no SQLite case is collected to be skipped).
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("db_url", ["postgres"], indirect=True, scope="session"),
]


@pytest.fixture
def app_role_engine(db_url):
    with conftest.app_role_engine(db_url, pool_size=2) as engine:
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
    assert b.count({"include": [{"type": "tag", "tags": ["j"]}]}) == 0
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


def test_without_an_account_the_engine_sees_every_account(two_accounts, app_role_engine):
    a, b = two_accounts
    ids = [a.account_id, b.account_id]
    with app_role_engine.connect() as conn:  # the job engine's claim, the reaper
        n = conn.execute(
            sa.select(sa.func.count()).where(t.contacts.c.account_id.in_(ids))
        ).scalar_one()
    assert n == 8
