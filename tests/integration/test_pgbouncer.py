"""The PostgreSQL tier behind PgBouncer: CI points AUDIENCE_TEST_DATABASE_URL at one in
transaction pooling mode (.ci/pgbouncer), so that every PostgreSQL test (row-level
security, statement timeouts, exports, jobs, imports, webhooks, real workers) runs through
it. This proves the connections really go through it: the app's transaction runs on a
server connection PgBouncer's console lists, in a pool in transaction mode. Skipped when
the URL points straight at PostgreSQL (no console answers there)."""

from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa

from app.db import normalize_url

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("db_url", ["postgres"], indirect=True, scope="session"),
]


@pytest.fixture(scope="module")
def console(pg_url) -> Iterator[psycopg.Connection]:
    """PgBouncer's admin console at the tier's address (the `pgbouncer` database)."""
    url = sa.make_url(normalize_url(pg_url))
    try:
        conn = psycopg.connect(
            host=url.host,
            port=url.port or 5432,
            user=url.username,
            password=url.password,
            dbname="pgbouncer",
            autocommit=True,
            cursor_factory=psycopg.ClientCursor,  # the console speaks the simple protocol only
        )
    except psycopg.OperationalError as exc:
        if 'database "pgbouncer" does not exist' in str(exc):
            pytest.skip("AUDIENCE_TEST_DATABASE_URL points straight at PostgreSQL")
        raise
    with conn:
        yield conn


def _show(console: psycopg.Connection, what: str) -> list[dict]:
    cur = console.execute(f"SHOW {what}")
    names = [column.name for column in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def test_the_app_s_transactions_run_on_pgbouncer_s_server_connections(
    console, db_url, app_engine, app_login_url
):
    database = sa.make_url(db_url).database
    role = sa.make_url(app_login_url).username
    with app_engine.begin() as conn:
        backend, server_port = conn.exec_driver_sql(
            "SELECT pg_backend_pid(), inet_server_port()"
        ).one()
        servers = [
            s
            for s in _show(console, "SERVERS")
            if (s["database"], s["user"], s["remote_pid"]) == (database, role, backend)
        ]
        assert [s["state"] for s in servers] == ["active"]  # linked to our client, now
        assert server_port != (app_engine.url.port or 5432)  # the server is elsewhere
    pools = {(p["database"], p["user"]): p["pool_mode"] for p in _show(console, "POOLS")}
    assert pools[(database, role)] == "transaction"


def test_a_client_connection_is_not_tied_to_one_backend(console, db_url, app_engine):
    """Transaction pooling as such: between two transactions of one client connection the
    backend goes back to the pool (PgBouncer's SERVERS list it idle, linked to no one)."""
    database = sa.make_url(db_url).database
    with app_engine.connect() as conn:
        with conn.begin():
            backend = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        states = {s["remote_pid"]: s["state"] for s in _show(console, "SERVERS")}
        assert states[backend] in ("idle", "used"), f"{database}: backend {backend} still held"
