"""Every statement about saved segments."""

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from app import tables as t

sg = t.segments
COLUMNS = [sg.c.id, sg.c.name, sg.c.selection, sg.c.created_at, sg.c.updated_at]


def stored_selection(conn: Connection, account_id: int, key: str) -> Any:
    """The stored selection JSON of the segment with this name key; None if none."""
    return conn.execute(
        sa.select(sg.c.selection).where(sg.c.account_id == account_id, sg.c.name_key == key)
    ).scalar_one_or_none()


def get(conn: Connection, account_id: int, segment_id: int) -> dict | None:
    row = (
        conn.execute(
            sa.select(*COLUMNS).where(sg.c.account_id == account_id, sg.c.id == segment_id)
        )
        .mappings()
        .first()
    )
    return dict(row) if row is not None else None


def list_all(conn: Connection, account_id: int) -> list[dict]:
    rows = conn.execute(
        sa.select(*COLUMNS).where(sg.c.account_id == account_id).order_by(sg.c.id)
    ).mappings()
    return [dict(r) for r in rows]


def insert(conn: Connection, account_id: int, values: dict) -> int:
    """Raises IntegrityError when the name is taken."""
    now = t.utcnow()
    with conn.begin_nested():
        return conn.execute(
            sa.insert(sg)
            .values(account_id=account_id, created_at=now, updated_at=now, **values)
            .returning(sg.c.id)
        ).scalar_one()


def update(conn: Connection, account_id: int, segment_id: int, values: dict) -> None:
    """Raises IntegrityError when the name is taken."""
    with conn.begin_nested():
        conn.execute(
            sa.update(sg)
            .where(sg.c.account_id == account_id, sg.c.id == segment_id)
            .values(updated_at=t.utcnow(), **values)
        )


def delete(conn: Connection, account_id: int, segment_id: int) -> None:
    conn.execute(sa.delete(sg).where(sg.c.account_id == account_id, sg.c.id == segment_id))
