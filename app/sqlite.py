"""SQLite, the embedded default: one file, readers side by side, writers in turn.

In WAL mode a reader never waits for the writer nor the writer for readers, so reads get an
engine of their own (`make_engines`: no lock, `query_only`) and only writes take turns.
PostgreSQL's statement timeout becomes a progress handler here, and the planner gets fresh
statistics (ANALYZE), without which it picks the wrong index (seconds instead of ms).
"""

import sqlite3
import threading
import time
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

OnConnect = Callable[[sqlite3.Connection, object], None]
CONNECT_ARGS = {"check_same_thread": False, "timeout": 60}
# Reads run in the request thread pool (40 threads): a connection for each.
READ_POOL = {"pool_size": 8, "max_overflow": 32}
# The statement timeout's clock is read every this many virtual machine steps (~1 ms).
PROGRESS_STEPS = 10_000
# ANALYZE again once the rows a process changed reach this share of the rows the last
# ANALYZE saw (and at least ANALYZE_MIN_CHANGES): SQLite does not track it on its own.
ANALYZE_SHARE = 0.25
ANALYZE_MIN_CHANGES = 1_000

# Connections are opened again after this long, to read statistics another process gathered.
RECYCLE_S = 300
QUERY_ONLY = "PRAGMA query_only=ON"

_TIMEOUT = "audience_statement_timeout"
_TURN = "audience_turn"
_CHANGES = "audience_changes_at_begin"
_ANALYZED = "audience_analyzed"
_RELOAD = "audience_statistics_changed"
_GENERATION = "audience_statistics_generation"


class FairLock:
    """A first-come, first-served lock (threading.Lock makes no promise of order)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._next = 0
        self._serving = 0

    def acquire(self) -> None:
        with self._cond:
            ticket = self._next
            self._next += 1
            while ticket != self._serving:
                self._cond.wait()

    def release(self) -> None:
        with self._cond:
            self._serving += 1
            self._cond.notify_all()


def make_engines(url: str, on_connect: OnConnect, **kwargs) -> tuple[Engine, Engine | None]:
    """(the engine every write goes through, one on the same file for reads), or no read
    engine for a database only one connection sees (`:memory:`)."""
    kwargs["connect_args"] = {**CONNECT_ARGS, **kwargs.get("connect_args", {})}
    statistics = _Statistics()
    if sa.make_url(url).database in (None, "", ":memory:"):
        return _write_engine(url, on_connect, statistics, **kwargs), None
    kwargs.setdefault("pool_recycle", RECYCLE_S)
    writer = _write_engine(url, on_connect, statistics, **kwargs)
    reader = sa.create_engine(url, **{**READ_POOL, **kwargs})
    event.listen(reader, "connect", on_connect)
    # A write here is an error, not a writer that skipped its turn.
    event.listen(reader, "connect", lambda dbapi_conn, _r: dbapi_conn.execute(QUERY_ONLY))
    # One snapshot per transaction (count and preview agree), not one per statement.
    event.listen(reader, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))
    _time_statements(reader)
    statistics.keep_current(writer)
    statistics.keep_current(reader)
    return writer, reader


def _write_engine(url: str, on_connect: OnConnect, statistics: "_Statistics", **kwargs) -> Engine:
    engine = sa.create_engine(url, **kwargs)
    event.listen(engine, "connect", on_connect)
    _time_statements(engine)  # first: its limit is lifted before the commit's ANALYZE
    _take_turns(engine, statistics)
    event.listen(engine, "checkin", statistics.checked_in)
    return engine


def _take_turns(engine: Engine, statistics: "_Statistics") -> None:
    """SQLite has one writer and its busy handler is not fair: a job committing chunk after
    chunk would starve a cancel. Write transactions of this process take turns (first
    come, first served), and take the write lock up front, since SQLite cannot upgrade a
    read transaction under contention."""
    turns = FairLock()

    def begin(conn: Connection):
        turns.acquire()
        conn.info[_TURN] = True
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except Exception:
            conn.info.pop(_TURN, None)
            turns.release()
            raise
        conn.info[_CHANGES] = conn.connection.dbapi_connection.total_changes

    def commit(conn: Connection):
        # Still in the transaction (the event comes before COMMIT), still our turn.
        try:
            statistics.committing(conn)
        finally:
            end(conn)

    def end(conn: Connection):
        conn.info.pop(_CHANGES, None)
        conn.info.pop(_ANALYZED, None)
        if conn.info.pop(_TURN, None):
            turns.release()

    event.listen(engine, "begin", begin)
    event.listen(engine, "commit", commit)
    event.listen(engine, "rollback", end)


class _Statistics:
    """Counts the rows the write engine's transactions change, and runs ANALYZE in the
    transaction that brings them past ANALYZE_SHARE of what the last ANALYZE saw
    (`committing` is only called in a write turn, so it needs no lock of its own).

    A connection reads the statistics once, when it opens: after an ANALYZE committed,
    every connection of both engines opened before it is opened again."""

    def __init__(self) -> None:
        self.changed = 0
        self.generation = 0

    def committing(self, conn: Connection) -> None:
        raw = conn.connection.dbapi_connection
        began = conn.info.get(_CHANGES)
        if began is not None:
            self.changed += raw.total_changes - began
        analyzed = conn.info.pop(_ANALYZED, False)
        if not analyzed and self.changed >= max(
            ANALYZE_MIN_CHANGES, ANALYZE_SHARE * _rows_analyzed(raw)
        ):
            raw.execute("ANALYZE")
            analyzed = True
        if analyzed:
            self.changed = 0
            conn.info[_RELOAD] = True

    def checked_in(self, _dbapi_conn, record) -> None:
        if record.info.pop(_RELOAD, False):  # committed by now
            self.generation += 1

    def keep_current(self, engine: Engine) -> None:
        def connected(_dbapi_conn, record) -> None:
            record.info[_GENERATION] = self.generation

        def checkout(_dbapi_conn, record, _proxy) -> None:
            if record.info.get(_GENERATION) != self.generation:
                raise sa.exc.DisconnectionError("planner statistics changed: reopen")

        event.listen(engine, "connect", connected)
        event.listen(engine, "checkout", checkout)


def _rows_analyzed(raw: sqlite3.Connection) -> int:
    """The rows of every table when ANALYZE last ran (sqlite_stat1's leading numbers)."""
    if not raw.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").fetchone():
        return 0
    return raw.execute(
        "SELECT coalesce(sum(n), 0) FROM "
        "(SELECT max(CAST(stat AS INTEGER)) AS n FROM sqlite_stat1 GROUP BY tbl)"
    ).fetchone()[0]


def analyze(conn: Connection) -> None:
    """Fresh statistics for the planner, now (after migrations and seeds)."""
    conn.exec_driver_sql("ANALYZE")
    conn.info[_ANALYZED] = True


def limit_statements(conn: Connection, seconds: float) -> None:
    """Each further statement of this transaction is interrupted after `seconds`
    (SQLITE_INTERRUPT), as PostgreSQL's `SET LOCAL statement_timeout` does."""
    conn.info[_TIMEOUT] = seconds


def interrupt(conn: Connection) -> None:
    """Stop the statement running on `conn` (from any thread)."""
    conn.connection.dbapi_connection.interrupt()


def interrupted(exc: BaseException) -> bool:
    return getattr(exc, "sqlite_errorname", None) == "SQLITE_INTERRUPT"


def _time_statements(engine: Engine) -> None:
    def start(conn: Connection, *_args) -> None:
        seconds = conn.info.get(_TIMEOUT)
        if seconds is not None:
            deadline = time.monotonic() + seconds
            conn.connection.dbapi_connection.set_progress_handler(
                lambda: time.monotonic() > deadline, PROGRESS_STEPS
            )

    def end(conn: Connection) -> None:
        if conn.info.pop(_TIMEOUT, None) is not None:
            conn.connection.dbapi_connection.set_progress_handler(None, 0)

    def checkin(dbapi_conn: sqlite3.Connection | None, record) -> None:
        # A connection whose limit was set but no transaction ended (nothing ran).
        if record.info.pop(_TIMEOUT, None) is not None and dbapi_conn is not None:
            dbapi_conn.set_progress_handler(None, 0)

    event.listen(engine, "before_cursor_execute", start)
    event.listen(engine, "commit", end)
    event.listen(engine, "rollback", end)
    event.listen(engine, "checkin", checkin)
