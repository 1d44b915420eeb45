"""What every action is: resolve (at submit and at job start), apply to one chunk,
and count what it would change (dry run).

`apply` is set-based and returns the ids of the contacts it actually changed, so a job
counts `affected` exactly and `run_rule` can union what its actions changed.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from app import tables as t
from app.config import Settings
from app.db import in_ids

c = t.contacts


@dataclass
class RunContext:
    conn: Connection
    account_id: int
    job_id: int | None
    now: datetime
    as_of: datetime
    settings: Settings
    position: int = 0  # the action's place in the job's list (for job output rows)


class ActionHandler:
    type: ClassVar[str]
    # Produces output rows (coupons, links) listed by GET /v1/jobs/{id}/output.
    has_output: ClassVar[bool] = False

    def __init__(self, action: Any):
        self.action = action

    def resolve(self, conn: Connection, account_id: int, path: str, *, create: bool) -> None:
        """Look up what the action names; raise Invalid (422) for what must exist.
        With `create`, create what the action creates when missing (tags, groups, users)."""

    def changes(self, rc: RunContext) -> ColumnElement[bool] | None:
        """A predicate over `contacts`: this contact would change. None when only Python
        can tell (then `would_change` is overridden)."""
        return None

    def apply(self, rc: RunContext, ids: list[int]) -> set[int]:
        raise NotImplementedError

    def would_change(self, rc: RunContext, members: sa.Select) -> int:
        predicate = self.changes(rc)
        assert predicate is not None, f"{self.type} must override would_change"
        return rc.conn.execute(
            sa.select(sa.func.count()).select_from(c).where(c.c.id.in_(members), predicate)
        ).scalar_one()


class ColumnUpdate(ActionHandler):
    """An action that sets contact columns where they differ."""

    def values(self, rc: RunContext) -> dict[str, Any]:
        raise NotImplementedError

    def apply(self, rc: RunContext, ids: list[int]) -> set[int]:
        stmt = (
            sa.update(c)
            .where(c.c.account_id == rc.account_id, in_ids(rc.conn, c.c.id, ids), self.changes(rc))
            .values(**self.values(rc), updated_at=rc.now)
            .returning(c.c.id)
        )
        return set(rc.conn.execute(stmt).scalars())


def chunk_contacts(rc: RunContext, ids: list[int]) -> sa.Select:
    """The chunk's contacts of this account, as a SELECT for INSERT … SELECT."""
    return sa.select(c.c.id).where(c.c.account_id == rc.account_id, in_ids(rc.conn, c.c.id, ids))


REGISTRY: dict[str, type[ActionHandler]] = {}


def register(cls: type[ActionHandler]) -> type[ActionHandler]:
    REGISTRY[cls.type] = cls
    return cls
