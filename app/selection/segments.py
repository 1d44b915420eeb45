"""Saved segments: a name and a stored selection, usable as a selector."""

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from app import tables as t
from app.errors import Conflict, Invalid, NotFound
from app.names import name_key
from app.selection.check import check_selection
from app.selection.schemas import SegmentIn
from app.selection.service import find_cycle, load_segments

COLUMNS = [
    t.segments.c.id,
    t.segments.c.name,
    t.segments.c.selection,
    t.segments.c.created_at,
    t.segments.c.updated_at,
]


def _stored(body: SegmentIn) -> dict:
    return body.selection.model_dump(mode="json", by_alias=True, exclude_unset=True)


def _check(conn: Connection, account_id: int, body: SegmentIn) -> None:
    """422 for an unknown segment or a cycle through the segment being saved."""
    key = name_key(body.name)
    used = check_selection(body.selection, prefix="selection")
    if key in used:
        raise Invalid.at(used[key], "a segment may not refer to itself")
    others = {k: v for k, v in used.items()}
    segments = load_segments(conn, account_id, others)
    segments[key] = body.selection
    cycle = find_cycle(segments, key)
    if cycle:
        first = cycle[1] if len(cycle) > 1 else key
        raise Invalid.at(
            used.get(first, "selection"),
            "a segment may not refer to itself through others: " + " → ".join(cycle),
        )


def get_segment(conn: Connection, account_id: int, segment_id: int) -> dict:
    row = (
        conn.execute(
            sa.select(*COLUMNS).where(
                t.segments.c.account_id == account_id, t.segments.c.id == segment_id
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"segment {segment_id} not found")
    return dict(row)


def list_segments(conn: Connection, account_id: int) -> list[dict]:
    rows = conn.execute(
        sa.select(*COLUMNS).where(t.segments.c.account_id == account_id).order_by(t.segments.c.id)
    ).mappings()
    return [dict(r) for r in rows]


def create_segment(conn: Connection, account_id: int, body: SegmentIn) -> dict:
    _check(conn, account_id, body)
    now = t.utcnow()
    try:
        with conn.begin_nested():
            segment_id = conn.execute(
                sa.insert(t.segments)
                .values(
                    account_id=account_id,
                    name=body.name,
                    name_key=name_key(body.name),
                    selection=_stored(body),
                    created_at=now,
                    updated_at=now,
                )
                .returning(t.segments.c.id)
            ).scalar_one()
    except IntegrityError:
        raise Conflict(f"a segment named '{body.name}' exists") from None
    return get_segment(conn, account_id, segment_id)


def update_segment(conn: Connection, account_id: int, segment_id: int, body: SegmentIn) -> dict:
    get_segment(conn, account_id, segment_id)
    _check(conn, account_id, body)
    try:
        with conn.begin_nested():
            conn.execute(
                sa.update(t.segments)
                .where(t.segments.c.account_id == account_id, t.segments.c.id == segment_id)
                .values(
                    name=body.name,
                    name_key=name_key(body.name),
                    selection=_stored(body),
                    updated_at=t.utcnow(),
                )
            )
    except IntegrityError:
        raise Conflict(f"a segment named '{body.name}' exists") from None
    return get_segment(conn, account_id, segment_id)


def delete_segment(conn: Connection, account_id: int, segment_id: int) -> None:
    get_segment(conn, account_id, segment_id)
    conn.execute(
        sa.delete(t.segments).where(
            t.segments.c.account_id == account_id, t.segments.c.id == segment_id
        )
    )
