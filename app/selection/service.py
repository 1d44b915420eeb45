"""Selections end to end: parse → check → compile → run, scoped to one account."""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from app import tables as t
from app.db import is_postgres
from app.selection import repository, tree
from app.selection import spec as s
from app.selection.check import check_condition, check_selection, parse_selection
from app.selection.compile import Context, compile_selection, condition_sql, count_query
from app.selection.segments import source

__all__ = [
    "Prepared",
    "count",
    "explain",
    "parse_selection",
    "prepare",
    "prepare_condition",
    "preview",
]


@dataclass(frozen=True)
class Prepared:
    """A checked selection and the moment it is evaluated at: ready to compile."""

    selection: tree.Selection
    ctx: Context

    @property
    def as_of(self) -> datetime:
        return self.ctx.as_of

    def members(self) -> sa.Select:
        """SELECT contacts.id of every selected contact."""
        return compile_selection(self.selection, self.ctx)

    def count(self) -> sa.Select:
        return count_query(self.selection, self.ctx)


def prepare(
    conn: Connection, account_id: int, selection: s.Selection | Any, prefix: str = ""
) -> Prepared:
    """Check a selection (parsed, or stored JSON) against the account's saved segments:
    Invalid (422) at `prefix`… for what is wrong."""
    if not isinstance(selection, s.Selection):
        selection = parse_selection(selection, prefix=prefix)
    names = repository.AccountNames(conn, account_id)
    checked = check_selection(selection, source(conn, account_id), names, prefix=prefix)
    # An offset given with as_of is kept: "the date of as_of" is the date where it was said.
    as_of = checked.as_of or datetime.now(UTC)
    return Prepared(checked, Context(account_id=account_id, as_of=as_of))


def prepare_condition(conn: Connection, account_id: int, condition: Any, path: str) -> tree.Node:
    """Check a condition (a rule's): Invalid (422) at `path`… for what is wrong."""
    names = repository.AccountNames(conn, account_id)
    return check_condition(condition, source(conn, account_id), path, names)


def condition_where(node: tree.Node, account_id: int, as_of: datetime):
    """A checked condition as a predicate over `contacts`, evaluated at `as_of`."""
    return condition_sql(node, Context(account_id=account_id, as_of=as_of))


def count(conn: Connection, account_id: int, selection: s.Selection, prefix: str = "") -> int:
    """The exact count; `prefix`: where the selection sits in the request (for 422 paths)."""
    return conn.execute(prepare(conn, account_id, selection, prefix).count()).scalar_one()


def preview(
    conn: Connection,
    account_id: int,
    selection: s.Selection,
    limit: int,
    prefix: str = "",
    after: int | None = None,
) -> tuple[int, list[int]]:
    """The count and the first `limit` ids (lowest first; past `after` if given),
    checked once."""
    prepared = prepare(conn, account_id, selection, prefix)
    total = conn.execute(prepared.count()).scalar_one()
    first = prepared.members().order_by(t.contacts.c.id).limit(limit)
    if after is not None:
        first = first.where(t.contacts.c.id > after)
    return total, list(conn.execute(first).scalars())


def explain(
    conn: Connection, account_id: int, data: Any, *, analyze: bool = False
) -> tuple[str, list[str]]:
    """The count query of a selection (stored JSON) as SQL text with its values, and on
    PostgreSQL its plan (`analyze`: run it, with buffers)."""
    query = prepare(conn, account_id, data).count()
    sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    if not is_postgres(conn):
        return sql, []
    verb = "EXPLAIN (ANALYZE, BUFFERS)" if analyze else "EXPLAIN"
    return sql, [line for (line,) in conn.execute(sa.text(f"{verb} {sql}"))]
