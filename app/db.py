"""Engines and dialect helpers.

One engine per process for writes (and, on a SQLite file, one beside it for reads: see
read_engine and app/sqlite.py). SQLite gets the functions PostgreSQL has built in (a
Unicode `lower`, safe number/date parsing), so the compiler emits the same SQL for both.
"""

import asyncio
import json
import re
import sqlite3
import weakref
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import date
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from app import sqlite

# The same patterns as PostgreSQL's audience_try_number / audience_try_date (migration 0002).
# Whitespace is ASCII's six on both sides (Python's \s would admit U+00A0 and more).
NUMBER_RE = re.compile(
    r"^[ \t\n\r\f\v]*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,3})?[ \t\n\r\f\v]*\Z"
)
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
    """lower() as PostgreSQL's (character by character): 'İ' is 'i', and 'Σ' always 'σ'
    (Python's str.lower makes a final one 'ς', which fold() maps back anyway)."""
    if not isinstance(value, str):
        return value
    return value.replace("İ", "i").lower().replace("ς", "σ")


def _sqlite_try_date(value):
    parsed = parse_date(value) if isinstance(value, str) else None
    return parsed.isoformat() if parsed else None


def _sqlite_try_number(value):
    return parse_number(value) if isinstance(value, str) else None


def normalize_url(url: str) -> str:
    """Accept plain `postgresql://` URLs and pick the driver ourselves."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, **kwargs) -> Engine:
    url = normalize_url(url)
    # A failed statement's error (logged, and once shown to tenants) never carries its
    # values: contact data, and lists of thousands of ids that made megabyte log lines.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        return _sqlite_engine(url, **kwargs)
    return _postgres_engine(url, **kwargs)


def _sqlite_connected(dbapi_conn: sqlite3.Connection, _record) -> None:
    # Manual transactions (see app.sqlite), SQL functions PostgreSQL has.
    dbapi_conn.isolation_level = None
    dbapi_conn.create_function("lower", 1, _sqlite_lower, deterministic=True)
    dbapi_conn.create_function("audience_try_date", 1, _sqlite_try_date, deterministic=True)
    dbapi_conn.create_function("audience_try_number", 1, _sqlite_try_number, deterministic=True)
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


# The read engine beside each SQLite write engine (see read_engine).
_READERS: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()


def _sqlite_engine(url: str, **kwargs) -> Engine:
    engine, reader = sqlite.make_engines(url, _sqlite_connected, **kwargs)
    if reader is not None:
        _READERS[engine] = reader
        event.listen(engine, "engine_disposed", lambda _engine: reader.dispose())
    return engine


def read_engine(engine: Engine) -> Engine:
    """The engine for read-only work beside `engine` (from make_engine): on a SQLite file,
    an engine of its own whose transactions run side by side with each other and with the
    writer's; otherwise `engine` itself."""
    return _READERS.get(engine, engine)


def _postgres_engine(url: str, **kwargs) -> Engine:
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    # Every statement planned with its own values: psycopg would otherwise prepare a
    # statement run five times on a connection, and PostgreSQL then settle on a generic
    # plan, blind to the statistics of the ids a count binds (a rare tag and a common one
    # want different plans).
    kwargs["connect_args"] = {"prepare_threshold": None, **kwargs.get("connect_args", {})}
    engine = sa.create_engine(url, pool_pre_ping=True, **kwargs)

    @event.listens_for(engine, "connect")
    def _binary_lists(dbapi_conn, _record):
        # Lists (the one-parameter arrays of rows_from, in_values and OneOf) go in
        # PostgreSQL's binary format: the text format quotes and escapes every element
        # with a regular expression, which was 40 % of an import's time; binary is 8x
        # cheaper. (A binary list must hold one type: rows_from and OneOf see to it.)
        from psycopg.types.array import ListBinaryDumper

        dbapi_conn.adapters.register_dumper(list, ListBinaryDumper)

    @event.listens_for(engine, "begin")
    def _name_the_account(conn: Connection):
        # Row-level security (migration 0004): a transaction sees and writes only the rows
        # of the account it names, and nothing at all when it names none.
        account_id = conn.get_execution_options().get(ACCOUNT_OPTION, ACCOUNT.get())
        if account_id is not None:
            _set_local(conn, ACCOUNT_SETTING, str(account_id))

    return engine


# The account the current request acts for (set by app.auth once its key is checked);
# every PostgreSQL transaction begun in this context is scoped to it by row-level security.
ACCOUNT: ContextVar[int | None] = ContextVar("audience_account", default=None)

# The settings row-level security reads (migration 0004), each local to one transaction:
# the account it acts for; the engine's bookkeeping duty, which sees every account's jobs
# rows and nothing else; the hash of the API key a request presents, which makes that one
# key's row visible.
ACCOUNT_SETTING = "audience.account_id"
ROLE_SETTING = "audience.role"
KEY_SETTING = "audience.key_hash"
ENGINE_ROLE = "engine"
ACCOUNT_OPTION = "audience_account_id"


def for_account(engine: Engine, account_id: int) -> Engine:
    """The same engine (one pool), every transaction of which acts for `account_id`: how
    the job runner works on one job, and the CLI on one account."""
    return engine.execution_options(**{ACCOUNT_OPTION: account_id})


def act_as(conn: Connection, account_id: int) -> None:
    """From here to the end of its transaction, `conn` acts for `account_id`."""
    _set_local(conn, ACCOUNT_SETTING, str(account_id))


def engine_duty(conn: Connection) -> None:
    """From here to the end of its transaction, `conn` does the job engine's bookkeeping
    across accounts (claiming, reaping, purging, `audience doctor`): every jobs row, and
    nothing of any other table, unless it also acts for an account."""
    _set_local(conn, ROLE_SETTING, ENGINE_ROLE)


def present_key(conn: Connection, key_hash: str) -> None:
    """Make the row of the API key with this hash visible (the key lookup, before the
    request's account is known), to the end of the transaction."""
    _set_local(conn, KEY_SETTING, key_hash)


def _set_local(conn: Connection, name: str, value: str) -> None:
    """A setting to the end of the transaction. SET LOCAL, not set_config(…, true): a
    distributed PostgreSQL (Citus, docs/scaling.md) forwards SET LOCAL to the nodes that hold
    the rows, where the policies read it, and not a function's effect. SET takes no bound
    values: every value is an id, a role name or a hex digest, and anything else is refused
    rather than quoted."""
    if not value.isalnum():
        raise ValueError(f"not a setting value: {value!r}")
    if is_postgres(conn):
        conn.exec_driver_sql(f"SET LOCAL {name} = '{value}'")


def is_postgres(conn_or_engine) -> bool:
    return conn_or_engine.dialect.name == "postgresql"


def set_statement_timeout(conn: Connection, seconds: float) -> None:
    """Each further statement of the transaction is cancelled after `seconds` (0: never);
    see statement_timed_out."""
    if seconds <= 0:
        return
    if is_postgres(conn):
        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(seconds * 1000)}")
    else:
        sqlite.limit_statements(conn, seconds)


def cancel_statement(conn: Connection) -> None:
    """Cancel the statement running on `conn`, from another thread."""
    if is_postgres(conn):
        conn.connection.dbapi_connection.cancel_safe()
    else:
        sqlite.interrupt(conn)


def statement_timed_out(exc: DBAPIError) -> bool:
    """The statement was cancelled: past the statement timeout, or on request."""
    orig = exc.orig
    return getattr(orig, "sqlstate", None) == "57014" or sqlite.interrupted(orig)


def refresh_statistics(conn: Connection) -> None:
    """Fresh planner statistics after a bulk change (migrations, seeds). PostgreSQL's
    autovacuum keeps its own; SQLite has none until ANALYZE runs, and then picks wrong
    indexes (a 20,000-contact count took a minute instead of 15 ms)."""
    if not is_postgres(conn):
        sqlite.analyze(conn)


def dialect_insert(conn: Connection, table: sa.Table):
    """An INSERT that knows ON CONFLICT, for the connection's dialect."""
    if is_postgres(conn):
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def in_ids(conn: Connection, column, ids: list[int]):
    """`column IN ids`, index-driven, with ONE parameter whatever the number of ids."""
    return in_values(conn, column, ids, sa.BigInteger)


def in_values(conn: Connection, column, values: list, kind=sa.BigInteger):
    """`column IN values` with ONE parameter whatever their number: `= ANY(array)` on
    PostgreSQL, `IN (SELECT value FROM json_each(?))` on SQLite (whose parameter limit a
    long list would pass). No statement text grows with the list."""
    if is_postgres(conn):
        from sqlalchemy.dialects.postgresql import ARRAY

        return column == sa.any_(sa.bindparam(None, values, type_=ARRAY(kind)))
    each = sa.func.json_each(sa.bindparam(None, json.dumps(values), type_=sa.String))
    return column.in_(sa.select(each.table_valued("value").c.value))


def rows_from(conn: Connection, **columns: tuple[sa.types.TypeEngine, list]) -> sa.Select:
    """A SELECT of rows given column by column (equal-length lists), with ONE parameter a
    column however many rows: `unnest(array, …)` on PostgreSQL, `json_each` on SQLite
    (values bound as the column type stores them). For INSERT … SELECT of thousands of
    rows: no parameter a value (PostgreSQL stops at 65,535 a statement, SQLite at 32,766)
    and no per-row statement text for the driver to build and parse."""
    names = list(columns)
    if is_postgres(conn):
        from sqlalchemy.dialects.postgresql import ARRAY

        arrays = [
            sa.cast(sa.bindparam(None, _one_type(kind, values), type_=ARRAY(kind)), ARRAY(kind))
            for kind, values in columns.values()
        ]
        rows = sa.func.unnest(*arrays).table_valued(*names).render_derived()
        return sa.select(*[rows.c[n] for n in names])
    stored = []
    for kind, values in columns.values():
        process = sa.types.to_instance(kind).dialect_impl(conn.dialect).bind_processor(conn.dialect)
        stored.append([process(v) for v in values] if process else values)
    records = json.dumps([list(r) for r in zip(*stored, strict=True)])
    each = sa.func.json_each(sa.bindparam(None, records, type_=sa.String)).table_valued("value")
    return sa.select(
        *[sa.func.json_extract(each.c.value, f"$[{i}]").label(n) for i, n in enumerate(names)]
    )


def _one_type(kind, values: list) -> list:
    """A float column's values as floats (JSON gives 120 and 12.5 alike): a binary array
    holds one type."""
    if isinstance(sa.types.to_instance(kind), sa.Float):
        return [v if v is None else float(v) for v in values]
    return values


def insert_rows(conn: Connection, table: sa.Table, rows: list[dict], constants: dict | None = None):
    """INSERT … SELECT of `rows` (dicts with the same keys) through rows_from, plus
    `constants` for every row: one statement, a parameter a column. Returns the
    dialect's insert, for `.on_conflict_*()` and `.returning()`. `WHERE true` keeps
    SQLite from reading an ON CONFLICT as a join's ON."""
    constants = constants or {}
    names = list(rows[0]) if rows else []
    if any(len(r) != len(names) for r in rows):
        raise ValueError("insert_rows: every row must have the same keys")
    source = rows_from(
        conn, **{n: (table.c[n].type, [r[n] for r in rows]) for n in names}
    ).subquery()
    select = sa.select(
        *[source.c[n] for n in names],
        *[sa.literal(v, type_=table.c[n].type) for n, v in constants.items()],
    ).where(sa.true())
    return dialect_insert(conn, table).from_select([*names, *constants], select)


T = TypeVar("T")
GONE = {"57P01", "57P02", "57P03"}  # admin shutdown, crash shutdown, cannot connect now


def disconnected(exc: BaseException) -> bool:
    """The database went away (a restart, a fail-over, a killed backend) or does not take
    connections yet. What was in flight rolled back; the request or job is not at fault."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    # psycopg: no SQLSTATE means the client side failed (connection refused or lost)
    code = getattr(exc.orig, "sqlstate", "")
    return isinstance(exc, OperationalError) and (code is None or code[:2] == "08" or code in GONE)


# Waits before each new try of a read whose connection the database dropped: about 3 s in
# all, which rides out a killed backend, a fail-over or a quick restart.
READ_RETRY_WAITS = (0.1, 0.2, 0.4, 0.8, 1.6)


_RETRYING: ContextVar[bool] = ContextVar("audience_retrying", default=False)


async def retry_read(run: Callable[[], Awaitable[T]]) -> T:
    """Await `run()` (read-only work), again while the database connection is lost. Inside
    another retry_read (a GET's auth lookup), it runs once: the outer one retries."""
    if _RETRYING.get():
        return await run()
    token = _RETRYING.set(True)
    try:
        for wait in (*READ_RETRY_WAITS, None):
            try:
                return await run()
            except DBAPIError as exc:
                if wait is None or not disconnected(exc):
                    raise
            await asyncio.sleep(wait)
    finally:
        _RETRYING.reset(token)
    raise AssertionError("unreachable")
