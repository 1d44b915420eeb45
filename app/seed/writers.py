"""Writing batches of rows, each committed on its own: an interrupted run leaves whole
batches behind.

Contact ids are taken up front (`nextval` on PostgreSQL, `max(id) + 1` inside the write
transaction on SQLite), so the generator builds every row of a batch in one pass and memory
is bounded by the batch size. PostgreSQL with psycopg 3 gets COPY from two writer threads
(`CopyWriter`), so generating the next batch overlaps the server storing the last two; any
other database gets INSERT … SELECT (`InsertWriter`).
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from app import tables as t
from app.db import insert_rows, is_postgres
from app.seed.catalog import Catalog
from app.seed.generator import COLUMNS, Batch
from app.seed.vocabulary import DAY, YEAR

OnDone = Callable[[int], None]  # told how many contacts a committed batch held


class TextCodec:
    """COPY's text: timestamps from two look-up tables (days, times of day), JSON dumped."""

    def __init__(self, now: int):
        day0 = (now - 4 * YEAR) // DAY
        days = [
            date.fromordinal(date(1970, 1, 1).toordinal() + d).isoformat() + " "
            for d in range(day0, now // DAY + 30)
        ]
        times = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}+00" for s in range(DAY)]

        def ts(seconds: int) -> str:
            d, s = divmod(seconds, DAY)
            return days[d - day0] + times[s]

        self.ts = ts
        self.no_json = None

    @staticmethod
    def json(value: dict) -> str:
        return json.dumps(value, ensure_ascii=False)


class ObjectCodec:
    """Python objects, which the columns' SQLAlchemy types convert."""

    no_json = None

    @staticmethod
    def ts(seconds: int) -> datetime:
        return datetime.fromtimestamp(seconds, UTC)

    @staticmethod
    def json(value: dict) -> dict:
        return value


def _contact_sequence(conn: Connection) -> str:
    return conn.exec_driver_sql("SELECT pg_get_serial_sequence('contacts', 'id')").scalar_one()


def _next_ids(conn: Connection, sequence: str, n: int) -> list[int]:
    next_ids = sa.text("SELECT nextval(:s) FROM generate_series(1, :n)")
    return list(conn.execute(next_ids, {"s": sequence, "n": n}).scalars())


class CopyWriter:
    """PostgreSQL + psycopg 3: ids from the sequence, rows by COPY from writer threads.

    Two writers, each with its own connection and one batch per transaction, keep both
    server cores busy while the main thread generates the next batch; a batch only
    references its own contacts and the catalog, so batches are independent.

    Foreign-key checks are most of PostgreSQL's work here (one locking look-up per
    reference, some 28 million for a million contacts), so where the role may, each
    batch's transaction sets `session_replication_role = replica`, which skips them.
    That is safe because every reference is known good: contact ids are the batch's
    own rows, and the catalog's rows (account, tags, funnels, stages, groups, users,
    mailings) are locked FOR KEY SHARE first, exactly as the skipped checks would have
    locked them, so nothing can delete them under the batch. A role that may not set it
    (not a superuser, no GRANT SET) loads with the checks.
    """

    batch_size = 20_000

    def __init__(self, engine: Engine, on_done: OnDone, references: dict[str, list[int]], now: int):
        self.engine = engine
        self.on_done = on_done
        self.references = references
        self.codec = TextCodec(now)
        self.skip_checks: bool | None = None  # unknown until tried
        self.ids_conn = engine.connect()
        with self.ids_conn.begin():
            self.sequence = _contact_sequence(self.ids_conn)
        self.queue: queue.Queue = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.abort = False
        self.threads = [
            threading.Thread(target=self._run, name=f"seed-writer-{i}", daemon=True)
            for i in range(2)
        ]
        for thread in self.threads:
            thread.start()

    def allocate(self, n: int) -> list[int]:
        with self.ids_conn.begin():
            return _next_ids(self.ids_conn, self.sequence, n)

    def write(self, batch: Batch, contacts: int) -> None:
        while True:
            if self.error is not None:
                raise RuntimeError("seeding failed in a writer") from self.error
            try:
                self.queue.put((batch, contacts), timeout=0.5)
                return
            except queue.Full:
                continue

    def _run(self) -> None:
        """Write batches until a None; after a failure (here or in the other writer),
        only take batches off the queue, so the producer never blocks."""
        raw = None
        try:
            raw = self.engine.raw_connection()
            cur = raw.cursor()
            while (item := self.queue.get()) is not None:
                if self.abort or self.error is not None:
                    continue
                batch, contacts = item
                self._begin(raw, cur)
                for table, rows in batch.items():
                    if rows:
                        _copy(cur, table, rows)
                raw.commit()
                self.on_done(contacts)
        except BaseException as exc:  # reported to the main thread
            if self.error is None:
                self.error = exc
            if raw is not None:
                with contextlib.suppress(Exception):
                    raw.rollback()
            while self.queue.get() is not None:
                pass
        finally:
            if raw is not None:
                raw.close()

    def _begin(self, raw, cur) -> None:
        if self.skip_checks is not False:
            import psycopg

            try:
                cur.execute("SET LOCAL session_replication_role = replica")
                self.skip_checks = True
            except psycopg.errors.InsufficientPrivilege:
                raw.rollback()
                self.skip_checks = False
        if self.skip_checks:
            for table, ids in self.references.items():
                cur.execute(
                    f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE id = ANY(%s)"
                    " FOR KEY SHARE) AS locked",
                    (ids,),
                )
                if cur.fetchone()[0] != len(set(ids)):
                    raise RuntimeError(f"some {table} rows the seed uses were deleted")

    def close(self, abort: bool = False) -> None:
        self.abort = abort
        for _ in self.threads:  # each writer stops at its first None
            self.queue.put(None)
        for thread in self.threads:
            thread.join()
        self.ids_conn.close()
        if self.error is not None and not abort:
            raise RuntimeError("seeding failed in a writer") from self.error


def _copy(cur, table: sa.Table, rows: list[tuple]) -> None:
    with cur.copy(f"COPY {table.name} ({', '.join(COLUMNS[table])}) FROM STDIN") as copy:
        write_row = copy.write_row
        for row in rows:
            write_row(row)


class InsertWriter:
    """Any other database (SQLite): INSERT … SELECT, one transaction per batch."""

    batch_size = 5_000
    codec = ObjectCodec()

    def __init__(self, engine: Engine, on_done: OnDone):
        self.engine = engine
        self.on_done = on_done
        self.conn: Connection | None = None
        self.tx: sa.RootTransaction | None = None

    def allocate(self, n: int) -> list[int]:
        self.conn = self.engine.connect()
        self.tx = self.conn.begin()  # SQLite: BEGIN IMMEDIATE, so max(id) stays ours
        if is_postgres(self.conn):
            return _next_ids(self.conn, _contact_sequence(self.conn), n)
        top = self.conn.execute(sa.select(sa.func.max(t.contacts.c.id))).scalar() or 0
        return list(range(top + 1, top + 1 + n))

    def write(self, batch: Batch, contacts: int) -> None:
        conn = self.conn
        for table, rows in batch.items():
            if rows:  # one statement a table: insert_rows binds a parameter a column
                columns = COLUMNS[table]
                named = [dict(zip(columns, row, strict=True)) for row in rows]
                conn.execute(insert_rows(conn, table, named))
        self.tx.commit()
        conn.close()
        self.conn = self.tx = None
        self.on_done(contacts)

    def close(self, abort: bool = False) -> None:
        if self.conn is not None:
            self.tx.rollback()
            self.conn.close()


def _uses_copy(engine: Engine) -> bool:
    return is_postgres(engine) and engine.dialect.driver == "psycopg"


@contextlib.contextmanager
def open_writer(engine: Engine, account_id: int, catalog: Catalog, now: int, on_done: OnDone):
    """The database's writer, closed at the end: after an error, what it had not
    committed is dropped."""
    if _uses_copy(engine):
        writer = CopyWriter(engine, on_done, catalog.references(account_id), now)
    else:
        writer = InsertWriter(engine, on_done)
    try:
        yield writer
    except BaseException:
        writer.close(abort=True)
        raise
    writer.close()
