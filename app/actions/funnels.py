"""Funnels: one stage per funnel per contact, with the time it entered the stage."""

from typing import Literal

import sqlalchemy as sa
from pydantic import Field

from app import tables as t
from app.actions import changes
from app.actions.base import (
    ActionHandler,
    ActionModel,
    ResolveContext,
    RunContext,
    c,
    chunk_contacts,
    handles,
)
from app.actions.relations import RemoveRelation, find_id
from app.db import dialect_insert
from app.errors import Invalid
from app.names import Name, name_key


def _funnel_id(ctx: ResolveContext, name: str) -> int:
    funnel_id = find_id(ctx.conn, t.funnels, ctx.account_id, "name_key", name_key(name))
    if funnel_id is None:
        raise Invalid.at(f"{ctx.path}.funnel", f"unknown funnel '{name}'")
    return funnel_id


class SetFunnelStage(ActionModel):
    """Puts the contact at a stage of a funnel (in place of its stage there, if any)."""

    type: Literal["set_funnel_stage"]
    funnel: Name = Field(
        description="The funnel's name, ignoring case; it must exist (a 422 at submit)."
    )
    stage: Name = Field(
        description="A stage of that funnel, ignoring case; it must exist (a 422 at submit)."
    )


@handles(SetFunnelStage)
class SetFunnelStageHandler(ActionHandler):
    def resolve(self, ctx: ResolveContext) -> None:
        self.funnel_id = _funnel_id(ctx, self.action.funnel)
        self.stage_id = ctx.conn.execute(
            sa.select(t.stages.c.id).where(
                t.stages.c.funnel_id == self.funnel_id,
                t.stages.c.name_key == name_key(self.action.stage),
            )
        ).scalar_one_or_none()
        if self.stage_id is None:
            raise Invalid.at(
                f"{ctx.path}.stage",
                f"unknown stage '{self.action.stage}' in '{self.action.funnel}'",
            )

    def changes(self, rc: RunContext):
        cf = t.contact_funnels
        return sa.not_(
            sa.exists().where(
                cf.c.contact_id == c.c.id,
                cf.c.funnel_id == self.funnel_id,
                cf.c.stage_id == self.stage_id,
            )
        )

    def apply(self, rc: RunContext, ids: list[int]) -> set[int]:
        cf = t.contact_funnels
        chunk = chunk_contacts(rc, ids).subquery()
        held = sa.and_(cf.c.contact_id == chunk.c.id, cf.c.funnel_id == self.funnel_id)
        logged = changes.log_changes(
            rc,
            self.type,
            sa.select(
                *changes.rows(
                    chunk.c.id,
                    "funnel",
                    ref=self.funnel_id,
                    before=changes.as_text(cf.c.stage_id),
                    before_at=cf.c.entered_at,
                    after=changes.as_text(sa.literal(self.stage_id, sa.BigInteger())),
                    after_at=rc.now,
                )
            )
            .select_from(chunk.outerjoin(cf, held))
            .where(sa.or_(cf.c.stage_id.is_(None), cf.c.stage_id != self.stage_id)),
        )
        source = sa.select(
            chunk.c.id,
            sa.literal(self.funnel_id),
            sa.literal(self.stage_id),
            sa.literal(rc.account_id),
            sa.literal(rc.now, t.UTCDateTime),
        ).where(sa.true())  # SQLite parses INSERT … SELECT … ON CONFLICT only with a WHERE
        ins = dialect_insert(rc.conn, cf).from_select(
            ["contact_id", "funnel_id", "stage_id", "account_id", "entered_at"], source
        )
        stmt = ins.on_conflict_do_update(
            index_elements=["account_id", "contact_id", "funnel_id"],
            set_={"stage_id": ins.excluded.stage_id, "entered_at": ins.excluded.entered_at},
            where=cf.c.stage_id != ins.excluded.stage_id,
        ).returning(cf.c.contact_id)
        changed = set(rc.conn.execute(stmt).scalars())
        changes.reconcile(rc, logged, changed)
        return changed


class RemoveFromFunnel(ActionModel):
    """Takes the contact out of a funnel."""

    type: Literal["remove_from_funnel"]
    funnel: Name = Field(
        description="The funnel's name, ignoring case; it must exist (a 422 at submit)."
    )


@handles(RemoveFromFunnel)
class RemoveFromFunnelHandler(RemoveRelation):
    table = t.contact_funnels
    thing_column = "funnel_id"
    field = "funnel"
    time_column = "entered_at"
    value_column = "stage_id"

    def resolve(self, ctx: ResolveContext) -> None:
        self.thing_id = _funnel_id(ctx, self.action.funnel)
