"""Details: free-form name → value pairs on a contact."""

from typing import Literal

import sqlalchemy as sa
from pydantic import Field

from app import tables as t
from app.actions import changes
from app.actions.base import ActionHandler, ActionModel, RunContext, c, chunk_contacts, handles
from app.db import dialect_insert, in_ids
from app.types import text


class SetDetail(ActionModel):
    """Sets one of the contact's details (its own named text values)."""

    type: Literal["set_detail"]
    name: text(255, min_length=1) = Field(description="The detail's name, exactly (case counts).")
    value: text(10_000) = Field(description="The text to store.")


@handles(SetDetail)
class SetDetailHandler(ActionHandler):
    def changes(self, rc: RunContext):
        cd = t.contact_details
        return sa.not_(
            sa.exists().where(
                cd.c.contact_id == c.c.id,
                cd.c.name == self.action.name,
                cd.c.value == self.action.value,
            )
        )

    def apply(self, rc: RunContext, ids: list[int]) -> set[int]:
        cd = t.contact_details
        chunk = chunk_contacts(rc, ids).subquery()
        held = sa.and_(cd.c.contact_id == chunk.c.id, cd.c.name == self.action.name)
        logged = changes.log_changes(
            rc,
            self.type,
            sa.select(
                *changes.rows(
                    chunk.c.id,
                    changes.DETAIL + self.action.name,
                    before=cd.c.value,
                    after=self.action.value,
                )
            )
            .select_from(chunk.outerjoin(cd, held))
            .where(sa.or_(cd.c.value.is_(None), cd.c.value != self.action.value)),
        )
        source = sa.select(
            chunk.c.id,
            sa.literal(self.action.name),
            sa.literal(self.action.value),
            sa.literal(rc.account_id),
        ).where(sa.true())  # SQLite parses INSERT … SELECT … ON CONFLICT only with a WHERE
        ins = dialect_insert(rc.conn, cd).from_select(
            ["contact_id", "name", "value", "account_id"], source
        )
        stmt = ins.on_conflict_do_update(
            index_elements=["account_id", "contact_id", "name"],
            set_={"value": ins.excluded.value},
            where=cd.c.value != ins.excluded.value,
        ).returning(cd.c.contact_id)
        changed = set(rc.conn.execute(stmt).scalars())
        changes.reconcile(rc, logged, changed)
        return changed


class DeleteDetail(ActionModel):
    """Removes one of the contact's details."""

    type: Literal["delete_detail"]
    name: text(255, min_length=1) = Field(description="The detail's name, exactly (case counts).")


@handles(DeleteDetail)
class DeleteDetailHandler(ActionHandler):
    def changes(self, rc: RunContext):
        cd = t.contact_details
        return sa.exists().where(cd.c.contact_id == c.c.id, cd.c.name == self.action.name)

    def apply(self, rc: RunContext, ids: list[int]) -> set[int]:
        cd = t.contact_details
        mine = [
            cd.c.account_id == rc.account_id,
            in_ids(rc.conn, cd.c.contact_id, ids),
            cd.c.name == self.action.name,
        ]
        return changes.delete_logged(
            rc, self.type, cd, mine, changes.DETAIL + self.action.name, before=cd.c.value
        )
