"""A lost database connection: reads run again on a fresh one; what cannot be answered is a
503 with Retry-After, never a 500."""

import asyncio
import time

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from app.db import disconnected, make_engine, retry_read
from app.main import create_app
from tests.conftest import make_settings

pytestmark = pytest.mark.postgres


def test_a_read_whose_backend_is_killed_runs_again(pg_url):
    engine = make_engine(pg_url)
    killer = make_engine(pg_url)
    tries: list[bool] = []

    def read() -> int:
        with engine.connect() as conn:
            if not tries:  # the first try: the server ends this backend mid-transaction
                pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
                with killer.connect() as other:
                    other.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            tries.append(True)
            return conn.execute(sa.text("SELECT 41 + 1")).scalar_one()

    async def run() -> int:
        return await retry_read(lambda: asyncio.to_thread(read))

    try:
        assert asyncio.run(run()) == 42
        assert len(tries) == 2
    finally:
        engine.dispose()
        killer.dispose()


def test_an_unreachable_database_is_a_503_with_retry_after(pg_url):
    gone = sa.make_url(pg_url).set(port=1).render_as_string(hide_password=False)
    app = create_app(make_settings(gone), start_runner=False)
    with TestClient(app) as client:
        r = client.post("/v1/selections/count", json={}, headers={"Authorization": "Bearer k"})
    assert r.status_code == 503, r.text
    assert r.headers["Retry-After"] == "1"
    assert r.json()["error"]["code"] == "unavailable"


def test_only_connection_losses_count_as_disconnects(pg_url):
    engine = make_engine(pg_url)
    try:
        with engine.connect() as conn, pytest.raises(sa.exc.DBAPIError) as caught:
            conn.execute(sa.text("SELECT 1 / 0"))
        assert not disconnected(caught.value)
    finally:
        engine.dispose()


def test_a_get_rides_out_killed_connections(pg_url, engine, api, client):
    """Every pooled connection of the API killed between two reads: the second read still
    answers (a fresh connection, the same answer)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("terminates PostgreSQL backends")
    job = client.run({}, [{"type": "add_tags", "tags": ["x"]}])
    with engine.connect() as conn:
        conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    assert client.get(f"/v1/jobs/{job['id']}").json()["status"] == "succeeded"
    assert client.get("/v1/jobs").status_code == 200


def test_an_unreachable_database_answers_a_get_in_seconds(pg_url):
    gone = sa.make_url(pg_url).set(port=1).render_as_string(hide_password=False)
    app = create_app(make_settings(gone), start_runner=False)
    started = time.monotonic()
    with TestClient(app) as client:
        r = client.get("/v1/jobs", headers={"Authorization": "Bearer k"})
    assert r.status_code == 503, r.text
    assert time.monotonic() - started < 10  # one round of retries, not one per layer
