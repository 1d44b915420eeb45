"""SQLite, the embedded default: reads run beside writes and each other, writes take turns,
statements stop at the statement timeout, and the planner has statistics.

(Writes taking fair turns: tests/integration/test_jobs.py's cancel of a running job.)"""

import threading
import time

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

from app import tables as t
from app.auth import create_account
from app.db import (
    cancel_statement,
    make_engine,
    read_engine,
    statement_timed_out,
)
from app.main import create_app
from app.migrate import upgrade
from app.seed import seed
from app.selection.service import prepare
from tests.conftest import Scoped, make_settings

# Counts to a billion: runs for minutes unless something stops it.
ENDLESS = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000) "
    "SELECT count(*) FROM n"
)
# The count: with no statistics, SQLite walks every VISIT of the account for
# every contact (62 s on 20,000 contacts; 15 ms with them).
NO_RECENT_VISIT = {
    "filter": {
        "not": {
            "event": {"type": "VISIT", "within_days": 90},
            "agg": "count",
            "op": "gte",
            "value": 1,
        }
    }
}
# the probe from each contact into its events (migration 0006: led by the account)
RIGHT_INDEX = "ix_events_account_type_contact"


@pytest.fixture
def sqlite_engine(engine):
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's concurrency")
    return engine


@pytest.fixture
def fresh_url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    upgrade(url)
    return url


def _in_thread(work) -> tuple[threading.Thread, dict]:
    """Run work() in a thread; the dict gets its result or error and when it ended."""
    out: dict = {}

    def run():
        try:
            out["result"] = work()
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            out["error"] = exc
        out["ended"] = time.monotonic()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def _timed(call) -> float:
    started = time.monotonic()
    call()
    return time.monotonic() - started


def test_reads_do_not_wait_for_a_write_in_progress(sqlite_engine, client):
    client.load({"email": "reader@x.com", "tags": ["r"]})
    holding, release = threading.Event(), threading.Event()

    def write():  # a long write transaction: SQLite's write lock and this process's turn
        with sqlite_engine.begin() as conn:
            conn.execute(sa.update(t.accounts).where(t.accounts.c.id == -1).values(name="x"))
            holding.set()
            release.wait(10)

    thread, _ = _in_thread(write)
    assert holding.wait(10)
    try:
        assert _timed(lambda: client.count({"include": [{"type": "tag", "tags": ["r"]}]})) < 2
        assert _timed(lambda: client.get("/v1/jobs").raise_for_status()) < 2
        assert _timed(lambda: client.get("/v1/segments").raise_for_status()) < 2
    finally:
        release.set()
        thread.join(10)


def test_a_slow_count_delays_neither_reads_nor_writes(sqlite_engine, api, client, monkeypatch):
    """A count that runs until the statement timeout stops it (3 s) while counts, reads and
    writes come and go."""
    from app.selection import service

    first = iter([True])
    counted = service.count

    def slow_first_count(conn, *args, **kwargs):
        if next(first, False):
            conn.exec_driver_sql(ENDLESS).scalar()
        return counted(conn, *args, **kwargs)

    monkeypatch.setattr(service, "count", slow_first_count)
    monkeypatch.setattr(api.app.state.settings, "statement_timeout_s", 3)
    started = time.monotonic()
    thread, out = _in_thread(
        lambda: client._client.post("/v1/selections/count", json={}, headers=client.headers)
    )
    time.sleep(0.2)
    for i in range(3):
        assert _timed(lambda i=i: client.load({"email": f"w{i}@x.com", "tags": ["w"]})) < 1
        assert _timed(lambda: client.count({"include": [{"type": "tag", "tags": ["w"]}]})) < 1
        assert _timed(lambda: client.get("/v1/jobs").raise_for_status()) < 1
    assert "ended" not in out, "the slow count ended before the others ran"
    thread.join(30)
    assert out["result"].status_code == 503, out
    assert out["result"].json()["error"]["code"] == "query_timeout"
    assert 2.5 < out["ended"] - started < 10


def test_count_past_the_statement_timeout_answers_503(sqlite_engine, api, client):
    client.load(*({"email": f"t{i}@x.com", "first_name": f"N{i}"} for i in range(3000)))
    spec = {"filter": {"field": "first_name", "op": "contains", "value": "9"}}
    settings = api.app.state.settings
    saved = settings.statement_timeout_s
    settings.statement_timeout_s = 1e-6
    try:
        r = client._client.post("/v1/selections/count", json=spec, headers=client.headers)
        preview = client._client.post(
            "/v1/selections/preview", json={"selection": spec}, headers=client.headers
        )
    finally:
        settings.statement_timeout_s = saved
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "query_timeout"
    assert preview.status_code == 503, preview.text
    # the limit went with its transaction: the pooled connections count again
    expected = sum("9" in str(i) for i in range(3000))
    assert all(client.count(spec) == expected for _ in range(10))


def test_a_statement_can_be_cancelled_from_another_thread(sqlite_engine):
    with read_engine(sqlite_engine).connect() as conn:
        thread, out = _in_thread(lambda: conn.exec_driver_sql(ENDLESS).scalar())
        time.sleep(0.2)
        cancel_statement(conn)
        thread.join(5)
    assert statement_timed_out(out["error"])


def test_the_read_engine_refuses_writes(sqlite_engine):
    reads = read_engine(sqlite_engine)
    assert reads is not sqlite_engine
    with pytest.raises(OperationalError, match="readonly"), reads.begin() as conn:
        conn.execute(sa.update(t.accounts).where(t.accounts.c.id == -1).values(name="x"))


def _plan(engine, account_id: int, spec: dict) -> str:
    with read_engine(engine).connect() as conn:
        query = prepare(conn, account_id, spec).count()
        sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
        return "\n".join(row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))


def test_seed_leaves_statistics_every_connection_uses(fresh_url):
    engine = make_engine(fresh_url)
    try:
        with read_engine(engine).connect() as conn:  # opened (schema read) before the seed
            conn.exec_driver_sql("SELECT count(*) FROM events").scalar()
        with engine.begin() as conn:
            account_id, _ = create_account(conn, "seeded")
        seed(engine, account_id, 3000, progress=False, seed=3)
        assert RIGHT_INDEX in _plan(engine, account_id, NO_RECENT_VISIT)
    finally:
        engine.dispose()


def test_migrate_gathers_missing_statistics(fresh_url):
    engine = make_engine(fresh_url)
    with engine.begin() as conn:
        account_id, _ = create_account(conn, "seeded")
    seed(engine, account_id, 3000, progress=False, seed=3)
    with engine.begin() as conn:  # as a database filled before statistics were kept
        conn.exec_driver_sql("DROP TABLE sqlite_stat1")
    engine.dispose()
    upgrade(fresh_url)  # as `audience serve` does before it opens the database
    engine = make_engine(fresh_url)
    try:
        assert RIGHT_INDEX in _plan(engine, account_id, NO_RECENT_VISIT)
        with engine.connect() as conn:  # the statistics are back
            assert conn.exec_driver_sql("SELECT count(*) FROM sqlite_stat1").scalar() > 0
    finally:
        engine.dispose()


def test_big_loads_refresh_statistics(fresh_url):
    engine = make_engine(fresh_url)
    with engine.begin() as conn:
        _, key = create_account(conn, "loads")

    def analyzed_contacts() -> int:
        with engine.connect() as conn:
            return conn.exec_driver_sql(
                "SELECT coalesce(max(CAST(stat AS INTEGER)), 0) FROM sqlite_stat1 "
                "WHERE tbl = 'contacts'"
            ).scalar()

    try:
        app = create_app(make_settings(fresh_url), engine=engine, start_runner=False)
        with TestClient(app) as http:
            client = Scoped(http, key)
            assert analyzed_contacts() == 0
            client.load(*({"email": f"a{i}@x.com"} for i in range(2000)))
            assert analyzed_contacts() == 2000
            client.load({"email": "one-more@x.com"})  # small writes: no ANALYZE each time
            assert analyzed_contacts() == 2000
            client.load(*({"email": f"b{i}@x.com"} for i in range(1000)))
            assert analyzed_contacts() == 3001
    finally:
        engine.dispose()


def test_an_in_memory_database_has_one_engine_for_all():
    engine = make_engine("sqlite://")
    try:
        assert read_engine(engine) is engine  # another engine would see another database
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (a)")
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        with read_engine(engine).connect() as conn:
            assert conn.exec_driver_sql("SELECT a FROM t").scalar() == 1
    finally:
        engine.dispose()
