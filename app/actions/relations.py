"""A contact's relation to one thing, a row (contact, thing) in a table of its own: its
owners, its groups, its funnels. Adding inserts the row where missing, removing deletes it."""

import sqlalchemy as sa

from app import tables as t
from app.actions import changes
from app.actions.base import ActionHandler, RunContext, c, chunk_contacts
from app.db import dialect_insert, in_ids


def find_id(conn, table: sa.Table, account_id: int, key_column: str, key: str) -> int | None:
    return conn.execute(
        sa.select(table.c.id).where(table.c.account_id == account_id, table.c[key_column] == key)
    ).scalar_one_or_none()


class AddRelation(ActionHandler):
    """Insert (contact, thing) rows where missing; `resolve` sets `thing_id`. `field`
    names the relation in the change log."""

    table: sa.Table
    thing_column: str
    field: str
    thing_id: int | None = None

    def changes(self, rc: RunContext):
        if self.thing_id is None:
            return sa.true()
        tb = self.table
        return sa.not_(
            sa.exists().where(tb.c.contact_id == c.c.id, tb.c[self.thing_column] == self.thing_id)
        )

    def apply(self, rc: RunContext, ids: list[int]) -> set[int]:
        tb = self.table
        chunk = chunk_contacts(rc, ids).subquery()
        logged = changes.log_changes(
            rc,
            self.type,
            sa.select(
                *changes.rows(chunk.c.id, self.field, ref=self.thing_id, after="1", after_at=rc.now)
            ).where(
                ~sa.exists().where(
                    tb.c.contact_id == chunk.c.id, tb.c[self.thing_column] == self.thing_id
                )
            ),
        )
        source = sa.select(
            chunk.c.id,
            sa.literal(self.thing_id),
            sa.literal(rc.account_id),
            sa.literal(rc.now, t.UTCDateTime),
        )
        stmt = (
            dialect_insert(rc.conn, tb)
            .from_select(
                # SQLite parses INSERT … SELECT … ON CONFLICT only when the SELECT has a WHERE
                ["contact_id", self.thing_column, "account_id", "added_at"],
                source.where(sa.true()),
            )
            .on_conflict_do_nothing()
            .returning(tb.c.contact_id)
        )
        changed = set(rc.conn.execute(stmt).scalars())
        changes.reconcile(rc, logged, changed)
        return changed


class RemoveRelation(ActionHandler):
    """Delete (contact, thing) rows; nothing to do when the thing does not exist. `field`
    names the relation in the change log; `time_column` is its time, `value_column` a
    value it holds (a funnel's stage) or None."""

    table: sa.Table
    thing_column: str
    field: str
    time_column = "added_at"
    value_column: str | None = None
    thing_id: int | None = None

    def changes(self, rc: RunContext):
        if self.thing_id is None:
            return sa.false()
        tb = self.table
        return sa.exists().where(
            tb.c.contact_id == c.c.id, tb.c[self.thing_column] == self.thing_id
        )

    def apply(self, rc: RunContext, ids: list[int]) -> set[int]:
        if self.thing_id is None:
            return set()
        tb = self.table
        mine = [
            tb.c.account_id == rc.account_id,
            in_ids(rc.conn, tb.c.contact_id, ids),
            tb.c[self.thing_column] == self.thing_id,
        ]
        value = changes.as_text(tb.c[self.value_column]) if self.value_column else "1"
        return changes.delete_logged(
            rc,
            self.type,
            tb,
            mine,
            self.field,
            ref=self.thing_id,
            before=value,
            before_at=tb.c[self.time_column],
        )
