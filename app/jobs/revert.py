"""Revert: a job that gives back what another job changed, read from its change log.

A revert's actions are the reverted job's logged steps in reverse order. Its snapshot is
every contact the log names; each chunk, step by step, (1) lists the contacts whose state
is no longer what the job left (a conflict: left alone, counted, in the output with the
value found), (2) logs, for the others, the job's change turned around (its `after` as
`before` and its `before` as `after`) under the revert's own job and step, (3) brings
the state to those rows' `after` (app.actions.changes' families). Being logged like any
job, a revert can itself be reverted.
"""

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from app import tables as t
from app.actions import RunContext
from app.actions import changes as ch
from app.db import dialect_insert
from app.jobs import repository

log = ch.log
c = t.contacts


def steps_to_revert(conn: Connection, account_id: int, job_id: int) -> list[dict]:
    """The revert's action list: the job's logged steps, last first."""
    return [
        {"type": action, "job": job_id, "step": step, "field": field}
        for step, action, field in reversed(repository.logged_steps(conn, account_id, job_id))
    ]


def members(account_id: int, job_id: int) -> tuple[sa.Select, sa.Select]:
    """The contacts a job's log names, and their count: a revert's snapshot."""
    mine = [log.c.account_id == account_id, log.c.job_id == job_id]
    ids = sa.select(log.c.contact_id).where(*mine).distinct()
    counted = sa.select(sa.func.count(sa.distinct(log.c.contact_id))).where(*mine)
    return ids, counted


@dataclass
class RevertStep:
    """One logged step of the reverted job, turned around; a handler to the runner."""

    type: str
    job: int
    step: int
    field: str

    def steps(self) -> int:
        return 1

    def _theirs(self, rc: RunContext, o, lo: int | None = None, hi: int | None = None):
        where = [o.c.account_id == rc.account_id, o.c.job_id == self.job, o.c.step == self.step]
        if lo is not None:
            where += [o.c.contact_id >= lo, o.c.contact_id <= hi]
        return where

    def _joined(self, o):
        return o.join(c, sa.and_(c.c.id == o.c.contact_id, c.c.account_id == o.c.account_id))

    def apply(self, rc: RunContext, ids: list[int]) -> set[int]:
        lo, hi = ids[0], ids[-1]
        family = ch.family_of(self.field)
        o = log.alias("o")
        theirs = self._theirs(rc, o, lo, hi)
        holds = family.holds(rc, o)
        jo = t.job_output
        left = rc.conn.execute(
            dialect_insert(rc.conn, jo)
            .from_select(
                ["account_id", "job_id", "position", "contact_id", "value"],
                sa.select(
                    sa.literal(rc.account_id, sa.BigInteger()),
                    sa.literal(rc.job_id, sa.BigInteger()),
                    sa.literal(rc.position, sa.Integer()),
                    o.c.contact_id,
                    family.found(rc, o),
                )
                .select_from(self._joined(o))
                .where(*theirs, sa.not_(holds)),
            )
            .on_conflict_do_nothing()
            .returning(jo.c.contact_id)
        ).all()
        if left:
            repository.add_conflicts(rc.conn, rc.job_id, len(left))
        turned = {
            "contact_id": o.c.contact_id,
            "field": o.c.field,
            "ref": o.c.ref,
            "before": o.c.after,
            "before_at": o.c.after_at,
            "after": o.c.before,
            "after_at": o.c.before_at,
            "before_extra": o.c.after_extra,
            "after_extra": o.c.before_extra,
        }
        constants = ch.stamp(rc, self.type)
        source = sa.select(*turned.values(), *constants.values()).select_from(self._joined(o))
        source = source.where(*theirs, holds)
        if isinstance(family, ch.Column) and rc.conn.dialect.name == "postgresql":
            source = source.with_for_update(of=c)
        changed = set(
            rc.conn.execute(
                sa.insert(log)
                .from_select([*turned, *constants], source)
                .returning(log.c.contact_id)
            ).scalars()
        )
        if changed:
            family.restore(rc, lo, hi)
        return changed

    def would_change(self, rc: RunContext) -> tuple[int, int]:
        """(contacts it would give back, contacts it would leave alone) today. Where later
        steps of the job changed the same thing again, their revert runs first and gives
        back what this step left: the state to compare is the job's last change of it."""
        family = ch.family_of(self.field)
        o = log.alias("o")
        last = log.alias("last")
        later = log.alias("later")
        same = [
            last.c.account_id == o.c.account_id,
            last.c.job_id == o.c.job_id,
            last.c.contact_id == o.c.contact_id,
            last.c.field == o.c.field,
            last.c.ref == o.c.ref,
        ]
        final = (
            sa.select(sa.func.max(later.c.step))
            .where(
                later.c.account_id == o.c.account_id,
                later.c.job_id == o.c.job_id,
                later.c.contact_id == o.c.contact_id,
                later.c.field == o.c.field,
                later.c.ref == o.c.ref,
            )
            .scalar_subquery()
        )
        holds = family.holds(rc, last)
        restored, left = rc.conn.execute(
            sa.select(
                sa.func.count(sa.distinct(sa.case((holds, o.c.contact_id)))),
                sa.func.count(sa.distinct(sa.case((sa.not_(holds), o.c.contact_id)))),
            )
            .select_from(self._joined(o).join(last, sa.and_(*same, last.c.step == final)))
            .where(*self._theirs(rc, o))
        ).one()
        return restored, left
