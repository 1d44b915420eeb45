"""Engine and transaction scope.

One engine per process. SQLite gets the functions PostgreSQL has built in (a Unicode
`lower`, safe number/date parsing), so the compiler emits the same SQL for both.
"""

import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

# The same patterns as PostgreSQL's audience_try_number / audience_try_date (migration 0002).
NUMBER_RE = re.compile(r"^\s*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,3})?\s*\Z")
DATE_RE = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])([T ].*)?\Z", re.DOTALL)


def parse_number(value: str | None) -> float | None:
    """A detail value as a number, or None: the same rule as SQL's audience_try_number."""
    if value is None or not NUMBER_RE.match(value):
        return None
    return float(value)  # may be ±inf past float's range; PostgreSQL's numeric is exact


def parse_date(value: str | None) -> date | None:
    """A detail value as a date, or None: the same rule as SQL's audience_try_date."""
    if value is None or not DATE_RE.match(value):
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _sqlite_lower(value):
    return value.lower() if isinstance(value, str) else value


def _sqlite_try_date(value):
    parsed = parse_date(value) if isinstance(value, str) else None
    return parsed.isoformat() if parsed else None


def _sqlite_try_number(value):
    return parse_number(value) if isinstance(value, str) else None


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


def normalize_url(url: str) -> str:
    """Accept plain `postgresql://` URLs and pick the driver ourselves."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, **kwargs) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 60}, **kwargs
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: sqlite3.Connection, _record):
            # Manual transactions (see "begin" below), SQL functions PostgreSQL has.
            dbapi_conn.isolation_level = None
            dbapi_conn.create_function("lower", 1, _sqlite_lower, deterministic=True)
            dbapi_conn.create_function("audience_try_date", 1, _sqlite_try_date, deterministic=True)
            dbapi_conn.create_function(
                "audience_try_number", 1, _sqlite_try_number, deterministic=True
            )
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        turns = FairLock()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection):
            # SQLite has one writer and its busy handler is not fair: a job committing
            # chunk after chunk would starve a cancel or a status read. Transactions of
            # this process take turns (first come, first served), and take the write lock
            # up front, since SQLite cannot upgrade a read transaction under contention.
            turns.acquire()
            conn.info["audience_turn"] = True
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except Exception:
                conn.info.pop("audience_turn", None)
                turns.release()
                raise

        def _end(conn: Connection):
            if conn.info.pop("audience_turn", None):
                turns.release()

        event.listen(engine, "commit", _end)
        event.listen(engine, "rollback", _end)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return sa.create_engine(url, pool_pre_ping=True, **kwargs)


def is_postgres(conn_or_engine) -> bool:
    return conn_or_engine.dialect.name == "postgresql"


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """Commit on success, roll back on error."""
    with engine.begin() as conn:
        yield conn


def set_statement_timeout(conn: Connection, seconds: float) -> None:
    if is_postgres(conn) and seconds > 0:
        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(seconds * 1000)}")


def dialect_insert(conn: Connection, table: sa.Table):
    """An INSERT that knows ON CONFLICT, for the connection's dialect."""
    if is_postgres(conn):
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def in_ids(conn: Connection, column, ids: list[int]):
    """`column IN ids`, index-driven: `= ANY(array)` on PostgreSQL (one parameter),
    an expanding IN on SQLite."""
    if is_postgres(conn):
        from sqlalchemy.dialects.postgresql import ARRAY

        return column == sa.any_(sa.bindparam(None, ids, type_=ARRAY(sa.BigInteger)))
    return column.in_(ids)
