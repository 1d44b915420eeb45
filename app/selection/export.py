"""Exports: every contact a selection selects, streamed in id order as CSV or NDJSON.

One connection and one transaction for the whole stream (REPEATABLE READ on PostgreSQL,
one read transaction on SQLite's WAL), so the file is one consistent snapshot however
long it takes; the contacts are read in keyset batches, so memory does not grow with the
selection. Every batch runs under the statement timeout."""

import json
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.engine import Engine

from app import tables as t
from app.contacts.schemas import FieldName, known_fields, pick
from app.contacts.service import load_contacts
from app.csvcells import csv_line
from app.db import set_statement_timeout
from app.selection.service import prepare
from app.selection.spec import Selection

DEFAULT_FIELDS = ["id", "email", "first_name", "last_name", "tags"]
BATCH = 1000


class ExportIn(BaseModel):
    """Every contact of a selection as CSV or NDJSON, with the fields asked for."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "selection": {"include": [{"type": "tag", "tags": ["VIP"]}]},
                    "fields": ["id", "email", "first_name", "tags", "detail:plan"],
                    "format": "csv",
                }
            ]
        },
    )
    selection: Selection = Field(description="Which contacts (`{}`: every contact)")
    fields: list[FieldName] = Field(
        default_factory=lambda: list(DEFAULT_FIELDS),
        min_length=1,
        max_length=100,
        description="Contact fields, `tags`, `groups`, `owners`, `funnels`, `details` or "
        "`detail:NAME`, in the order of the columns",
    )
    format: Literal["csv", "ndjson"] = Field(
        "csv", description="csv (RFC 4180, a header row) or ndjson (one JSON object a line)"
    )

    @field_validator("fields")
    @classmethod
    def _known(cls, fields: list[str]) -> list[str]:
        return known_fields(fields)


def _cell(value: Any) -> Any:
    """A value as one CSV cell: several joined with `;`."""
    if isinstance(value, list):
        return ";".join(value)
    if isinstance(value, dict):
        return ";".join(f"{k}={v}" if k else v for k, v in value.items())
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return value


def stream(engine: Engine, account_id: int, body: ExportIn, timeout_s: float) -> Iterator[str]:
    """The export, a batch a piece (a piece a line would cost a thread hop each)."""
    options = {"isolation_level": "REPEATABLE READ"} if engine.dialect.name == "postgresql" else {}
    with engine.connect().execution_options(**options) as conn, conn.begin():
        set_statement_timeout(conn, timeout_s)
        prepared = prepare(conn, account_id, body.selection, "selection")
        members = prepared.members()
        if body.format == "csv":
            yield csv_line(body.fields)
        after = 0
        c = t.contacts
        while True:
            ids = list(
                conn.execute(members.where(c.c.id > after).order_by(c.c.id).limit(BATCH)).scalars()
            )
            if not ids:
                return
            after = ids[-1]
            contacts = load_contacts(conn, account_id, ids)
            if body.format == "csv":
                yield "".join(
                    csv_line([_cell(v) for v in pick(x, body.fields).values()]) for x in contacts
                )
            else:
                yield "".join(
                    json.dumps(
                        {f: _json(v) for f, v in pick(x, body.fields).items()}, ensure_ascii=False
                    )
                    + "\n"
                    for x in contacts
                )


def check(conn, account_id: int, body: ExportIn) -> None:
    """The 422s of the selection, before the stream starts (its status is then 200)."""
    prepare(conn, account_id, body.selection, "selection")
