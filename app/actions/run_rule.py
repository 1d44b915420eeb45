"""run_rule: a stored action list (and optional condition) run on the selection."""

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from functools import cache
from typing import Literal

import sqlalchemy as sa
from pydantic import Field, StrictBool, TypeAdapter, ValidationError
from sqlalchemy.sql.elements import ColumnElement

from app import tables as t
from app.actions.base import ActionHandler, ActionModel, ResolveContext, RunContext, c, handles
from app.db import in_ids
from app.errors import Invalid
from app.selection import spec as s
from app.selection.service import condition_where, prepare_condition
from app.types import Id

CONDITION = TypeAdapter(s.Condition)
MAX_RULE_DEPTH = 8

# The rule's condition compiled for one run: (account_id, as_of) → a predicate on contacts.
CompiledCondition = Callable[[int, datetime], ColumnElement[bool]]


class RunRule(ActionModel):
    """Runs a saved rule's actions, in order, on the contact. `affected` counts the contacts
    that any of them changed."""

    type: Literal["run_rule"]
    rule: Id = Field(description="The rule's id; it must exist (a 422 at submit).")
    check_condition: StrictBool = Field(
        False,
        description="`true`: only contacts that satisfy the rule's condition; `false`: "
        "every selected contact.",
    )


@cache
def _action_list() -> TypeAdapter:
    from app.actions.schemas import ActionList  # the union holds RunRule: import on first use

    return TypeAdapter(ActionList)


def load_rule(conn, account_id: int, rule_id: int):
    return conn.execute(
        sa.select(t.rules.c.id, t.rules.c.name, t.rules.c.condition, t.rules.c.actions).where(
            t.rules.c.account_id == account_id, t.rules.c.id == rule_id
        )
    ).first()


def parse_rule(row, path: str):
    try:
        actions = _action_list().validate_python(row.actions)
        condition = CONDITION.validate_python(row.condition) if row.condition else None
    except ValidationError as exc:  # stored before a schema change; say so, never 500
        raise Invalid.at(
            path, f"rule {row.id} no longer validates: {exc.errors()[0]['msg']}"
        ) from None
    return condition, actions


def rule_condition(conn, account_id: int, condition, path: str) -> CompiledCondition:
    """The one place run_rule uses the selection pipeline: the condition is checked now
    (its segments as they are at submit and at job start), compiled for each run."""
    checked = prepare_condition(conn, account_id, condition, path)

    def compiled(account_id: int, as_of: datetime) -> ColumnElement[bool]:
        return condition_where(checked, account_id, as_of)

    return compiled


@handles(RunRule)
class RunRuleHandler(ActionHandler):
    def resolve(self, ctx: ResolveContext) -> None:
        from app.actions import prepare  # prepare resolves this handler too

        rule_id = self.action.rule
        path = f"{ctx.path}.rule"
        if rule_id in ctx.rule_stack:
            raise Invalid.at(path, f"rule {rule_id} runs itself")
        if len(ctx.rule_stack) >= MAX_RULE_DEPTH:
            raise Invalid.at(path, f"rules nest deeper than {MAX_RULE_DEPTH}")
        resolved = ctx.expansion.rules.get(rule_id)
        if resolved is not None:  # this rule again: the same handlers, counted again
            self.condition, self.handlers, size = resolved
            ctx.expansion.add(size, path)
            return
        row = load_rule(ctx.conn, ctx.account_id, rule_id)
        if row is None:
            raise Invalid.at(path, f"unknown rule {rule_id}")
        condition, actions = parse_rule(row, path)
        self.condition: CompiledCondition | None = None
        if condition is not None:  # its segments as they are now, at submit and start
            self.condition = rule_condition(
                ctx.conn, ctx.account_id, condition, f"{path}.condition"
            )
        before = ctx.expansion.actions
        self.handlers = prepare(
            ctx.conn,
            ctx.account_id,
            actions,
            path,
            create=ctx.create,
            stack=(*ctx.rule_stack, rule_id),
            expansion=ctx.expansion,
        )
        size = ctx.expansion.actions - before
        ctx.expansion.rules[rule_id] = (self.condition, self.handlers, size)

    def _condition(self, rc: RunContext):
        if not self.action.check_condition or self.condition is None:
            return None
        return self.condition(rc.account_id, rc.as_of)

    def apply(self, rc: RunContext, ids: list[int]) -> set[int]:
        condition = self._condition(rc)
        if condition is not None:
            ids = list(
                rc.conn.execute(
                    sa.select(c.c.id)
                    .where(c.c.account_id == rc.account_id, in_ids(rc.conn, c.c.id, ids), condition)
                    .order_by(c.c.id)
                ).scalars()
            )
        changed: set[int] = set()
        step = rc.step
        for handler in self.handlers:
            if ids:
                changed |= handler.apply(replace(rc, step=step), ids)
            step += handler.steps()
        return changed

    def steps(self) -> int:
        return sum(h.steps() for h in self.handlers)

    def changes(self, rc: RunContext):
        parts = [h.changes(rc) for h in self.handlers]
        if any(p is None for p in parts):
            return None
        condition = self._condition(rc)
        either = sa.or_(sa.false(), *parts)
        return either if condition is None else sa.and_(condition, either)

    def would_change(self, rc: RunContext, members: sa.Select) -> int:
        if self.changes(rc) is not None:
            return super().would_change(rc, members)
        condition = self._condition(rc)
        if condition is not None:
            members = sa.select(c.c.id).where(c.c.id.in_(members), condition)
        return max(h.would_change(rc, members) for h in self.handlers)
