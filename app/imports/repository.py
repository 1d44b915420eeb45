"""Every SQL statement about an import's own tables (the staged file, its errors, its
counters). Transactions are the caller's."""

import json

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from app import tables as t
from app.db import insert_rows

ir = t.import_rows
ie = t.import_errors
j = t.jobs


def stage(conn: Connection, account_id: int, job_id: int, batch: list[tuple[int, list[str]]]):
    """One INSERT of a batch of records (line, cells)."""
    if batch:
        rows = [{"line": line, "cells": json.dumps(cells)} for line, cells in batch]
        conn.execute(insert_rows(conn, ir, rows, {"account_id": account_id, "job_id": job_id}))


def staged(
    conn: Connection, account_id: int, job_id: int, *, after: int, size: int
) -> list[tuple[int, list[str]]]:
    """The next `size` staged records past line `after`."""
    found = conn.execute(
        sa.select(ir.c.line, ir.c.cells)
        .where(ir.c.account_id == account_id, ir.c.job_id == job_id, ir.c.line > after)
        .order_by(ir.c.line)
        .limit(size)
    ).all()
    return [(line, json.loads(cells)) for line, cells in found]


def unstage(conn: Connection, account_id: int, job_id: int, *, upto: int | None = None) -> None:
    """Drop staged records up to line `upto` (all of them without)."""
    where = [ir.c.account_id == account_id, ir.c.job_id == job_id]
    if upto is not None:
        where.append(ir.c.line <= upto)
    conn.execute(sa.delete(ir).where(*where))


def add_errors(conn: Connection, account_id: int, job_id: int, errors: list[dict]) -> None:
    """Rows {line, seq, column, error, row}; a chunk retried after a crash rolled back its
    own, so none are there twice."""
    if errors:
        conn.execute(insert_rows(conn, ie, errors, {"account_id": account_id, "job_id": job_id}))


def error_batch(
    conn: Connection, account_id: int, job_id: int, *, after: tuple[int, int], limit: int
) -> list[tuple]:
    return conn.execute(
        sa.select(ie.c.line, ie.c.seq, ie.c.column, ie.c.error, ie.c.row)
        .where(
            ie.c.account_id == account_id,
            ie.c.job_id == job_id,
            sa.tuple_(ie.c.line, ie.c.seq) > sa.tuple_(*after),
        )
        .order_by(ie.c.line, ie.c.seq)
        .limit(limit)
    ).all()


def count(conn: Connection, job_id: int, *, created: int, updated: int, rejected: int) -> None:
    conn.execute(
        sa.update(j)
        .where(j.c.id == job_id)
        .values(
            created=j.c.created + created,
            updated=j.c.updated + updated,
            rejected=j.c.rejected + rejected,
        )
    )


def set_total(conn: Connection, job_id: int, total: int) -> None:
    conn.execute(sa.update(j).where(j.c.id == job_id).values(total=total))
