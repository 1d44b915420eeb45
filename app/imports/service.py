"""Submitting an import (the file streamed into the database, in batches, in the request's
transaction) and reading its errors back as CSV."""

from collections.abc import Iterator
from typing import BinaryIO

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from app import tables as t
from app.config import Settings
from app.csvcells import csv_line
from app.db import set_statement_timeout
from app.errors import Invalid
from app.imports import repository
from app.imports.options import FUNNEL, ImportOptions, funnel_keys, map_columns, parse_options
from app.imports.staging import records
from app.jobs import repository as jobs
from app.names import name_key

STAGE_BATCH = 5000


def submit(
    conn: Connection,
    account_id: int,
    file: BinaryIO,
    options: str | None,
    settings: Settings,
    created_by: str | None = None,
) -> int:
    """A queued import job with its file staged; its id. 422 for bad options, a file that
    is not CSV or has no e-mail column; 413 past AUDIENCE_MAX_IMPORT_BYTES."""
    parsed = parse_options(options)
    delimiter, rows = records(file, settings.max_import_bytes)
    first = next(rows, None)
    if first is None:
        raise Invalid.at("file", "the file is empty: a CSV with a header row is expected")
    _, header = first
    header = [h.strip() for h in header]
    targets, unmapped = map_columns(header, parsed)
    funnels = _funnels(conn, account_id, header, targets, parsed)
    now = t.utcnow()
    job_id = jobs.insert_job(
        conn,
        action_types=[],
        account_id=account_id,
        kind="import",
        selection={},
        actions=[],
        as_of=now,
        created_at=now,
        name=parsed.name,
        created_by=created_by,
        import_spec={
            "header": header,
            "targets": targets,
            "unmapped_columns": unmapped,
            "delimiter": delimiter,
            "funnels": funnels,
            "options": parsed.model_dump(mode="json", exclude={"columns"}),
        },
    )
    total = 0
    batch: list[tuple[int, list[str]]] = []
    for record in rows:
        batch.append(record)
        if len(batch) >= STAGE_BATCH:
            repository.stage(conn, account_id, job_id, batch)
            total += len(batch)
            batch = []
    repository.stage(conn, account_id, job_id, batch)
    total += len(batch)
    repository.set_total(conn, job_id, total)
    return job_id


def _funnels(
    conn: Connection,
    account_id: int,
    header: list[str],
    targets: list[str | None],
    options: ImportOptions,
) -> dict[str, int]:
    """funnel key → id of every funnel a column names; an unknown funnel is a 422 at the
    column's mapping (or the header, when mapped by name)."""
    keys = funnel_keys(targets)
    if not keys:
        return {}
    f = t.funnels
    found = dict(
        conn.execute(
            sa.select(f.c.name_key, f.c.id).where(
                f.c.account_id == account_id, f.c.name_key.in_(keys)
            )
        ).all()
    )
    explicit = {k.strip(): k for k in (options.columns or {})}
    problems = []
    for index, target in enumerate(targets):
        if target and target.startswith(FUNNEL) and name_key(target[len(FUNNEL) :]) not in found:
            h = header[index]
            path = f"options.columns.{explicit[h]}" if h in explicit else f"file.header[{index}]"
            problems.append({"path": path, "message": f"no funnel named '{target[len(FUNNEL) :]}'"})
    if problems:
        raise Invalid(f"{problems[0]['path']}: {problems[0]['message']}", details=problems)
    return found


def error_rows(
    engine: Engine, account_id: int, job_id: int, timeout_s: float, batch: int = 5000
) -> Iterator[str]:
    """CSV `line,column,error,row` of an import's rejected rows, in keyset batches."""
    yield csv_line(("line", "column", "error", "row"))
    last = (-1, -1)
    while True:
        with engine.connect() as conn:
            set_statement_timeout(conn, timeout_s)
            found = repository.error_batch(conn, account_id, job_id, after=last, limit=batch)
        if not found:
            return
        yield "".join(csv_line((line, column, error, row)) for line, _, column, error, row in found)
        last = (found[-1][0], found[-1][1])
