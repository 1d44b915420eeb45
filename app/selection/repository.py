"""Every statement about saved segments."""

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from app import tables as t
from app.db import in_values

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


NAMED = {"tag": t.tags, "group": t.groups, "funnel": t.funnels}
MAX_SUGGESTED_FROM = 10_000  # names a "did you mean" looks through


class AccountNames:
    """What exists in one account, for the check pass (check.NameSource)."""

    def __init__(self, conn: Connection, account_id: int):
        self.conn = conn
        self.account_id = account_id

    def existing(self, kind: str, keys) -> dict:
        """{key: id} of the keys that exist (one query)."""
        if not keys:
            return {}
        if kind == "mailing":
            m = t.mailings
            query = sa.select(m.c.id).where(
                m.c.account_id == self.account_id, in_values(self.conn, m.c.id, sorted(keys))
            )
            return {id_: id_ for id_ in self.conn.execute(query).scalars()}
        if kind == "stage":
            f, st = t.funnels, t.stages
            funnels = sorted({funnel for funnel, _ in keys})
            rows = self.conn.execute(
                sa.select(f.c.name_key, st.c.name_key, st.c.id)
                .join(st, st.c.funnel_id == f.c.id)
                .where(f.c.account_id == self.account_id, f.c.name_key.in_(funnels))
            )
            return {(funnel, stage): id_ for funnel, stage, id_ in rows}
        table = NAMED[kind]
        query = sa.select(table.c.name_key, table.c.id).where(
            table.c.account_id == self.account_id,
            in_values(self.conn, table.c.name_key, sorted(keys), sa.Text),
        )
        return {key: id_ for key, id_ in self.conn.execute(query)}

    def names(self, kind: str, funnel: str | None = None) -> list[str]:
        if kind == "stage":
            f, st = t.funnels, t.stages
            query = (
                sa.select(st.c.name)
                .join(f, f.c.id == st.c.funnel_id)
                .where(f.c.account_id == self.account_id, f.c.name_key == funnel)
            )
        else:
            table = NAMED[kind]
            query = sa.select(table.c.name).where(table.c.account_id == self.account_id)
        return list(self.conn.execute(query.limit(MAX_SUGGESTED_FROM)).scalars())
