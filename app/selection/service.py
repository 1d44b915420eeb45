"""Selections end to end: parse → check → resolve saved segments → compile → run."""

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.engine import Connection

from app import tables as t
from app.errors import Invalid, pydantic_details
from app.names import name_key
from app.selection import spec as s
from app.selection.check import check_condition, check_selection
from app.selection.compile import Context, compile_selection, count_query


def parse_selection(data: Any, prefix: str = "selection") -> s.Selection:
    """Parse stored/raw JSON into a Selection, errors as Invalid with paths."""
    try:
        return s.Selection.model_validate(data)
    except ValidationError as exc:
        details = pydantic_details(exc.errors(), prefix=prefix)
        raise Invalid(f"{details[0]['path']}: {details[0]['message']}", details=details) from None


def load_segments(
    conn: Connection, account_id: int, wanted: dict[str, str]
) -> dict[str, s.Selection]:
    """Load the named segments and every segment they use, transitively."""
    found: dict[str, s.Selection] = {}
    pending = dict(wanted)
    while pending:
        rows = conn.execute(
            sa.select(t.segments.c.name_key, t.segments.c.selection).where(
                t.segments.c.account_id == account_id,
                t.segments.c.name_key.in_(list(pending)),
            )
        ).all()
        stored = dict(rows)
        next_pending: dict[str, str] = {}
        for key, path in pending.items():
            if key not in stored:
                raise Invalid.at(path, f"unknown segment '{key}'")
            sel = parse_selection(stored[key], prefix=f"segment '{key}'")
            found[key] = sel
            for used in check_selection(sel, prefix=f"segment '{key}'"):
                if used not in found and used not in pending:
                    next_pending[used] = path
        pending = next_pending
    return found


def find_cycle(segments: dict[str, s.Selection], start: str) -> list[str] | None:
    """A path of segment names from `start` back to itself, if there is one."""
    from app.selection.check import check_selection as uses

    stack = [(start, [start])]
    seen = set()
    while stack:
        key, path = stack.pop()
        sel = segments.get(key)
        if sel is None:
            continue
        for used in uses(sel):
            if used == start:
                return [*path, used]
            if used not in seen:
                seen.add(used)
                stack.append((used, [*path, used]))
    return None


def prepare(conn: Connection, account_id: int, selection: s.Selection, prefix: str = "") -> Context:
    """Check a selection and resolve what it refers to; the Context compiles it."""
    used = check_selection(selection, prefix=prefix)
    segments = resolve_segments(
        conn, account_id, used, f"{prefix}.include" if prefix else "include"
    )
    # An offset given with as_of is kept: "the date of as_of" is the date where it was said.
    as_of = selection.as_of or datetime.now(UTC)
    return Context(account_id=account_id, as_of=as_of, segments=segments)


def resolve_segments(
    conn: Connection, account_id: int, used: dict[str, str], where: str
) -> dict[str, s.Selection]:
    """The segments `used` names (name key → path naming it) and those they use, checked
    for cycles: 422 at the path that names an unknown one or one in a cycle."""
    segments = load_segments(conn, account_id, used)
    for key in segments:
        cycle = find_cycle(segments, key)
        if cycle:
            raise Invalid.at(
                used.get(key, where),
                "segments refer to each other in a cycle: " + " → ".join(cycle),
            )
    return segments


def prepare_condition(
    conn: Connection, account_id: int, condition, path: str
) -> dict[str, s.Selection]:
    """Check a stored condition (a rule's) and load the segments it names: 422 at
    `path`… for what is wrong. Returns the segments, for its Context."""
    errors: list = []
    used: dict[str, str] = {}
    check_condition(condition, path, errors, used)
    if errors:
        raise Invalid(f"{errors[0]['path']}: {errors[0]['message']}", details=errors)
    return resolve_segments(conn, account_id, used, path)


def count(conn: Connection, account_id: int, selection: s.Selection, prefix: str = "") -> int:
    """The exact count; `prefix`: where the selection sits in the request (for 422 paths)."""
    ctx = prepare(conn, account_id, selection, prefix)
    return conn.execute(count_query(selection, ctx)).scalar_one()


def preview(
    conn: Connection, account_id: int, selection: s.Selection, limit: int, prefix: str = ""
) -> tuple[int, list[int]]:
    """The count and the first `limit` ids (lowest first), prepared once."""
    ctx = prepare(conn, account_id, selection, prefix)
    total = conn.execute(count_query(selection, ctx)).scalar_one()
    query = compile_selection(selection, ctx).order_by(t.contacts.c.id).limit(limit)
    return total, list(conn.execute(query).scalars())


def segment_key(name: str) -> str:
    return name_key(name)
