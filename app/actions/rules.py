"""run_rule: a stored action list (and optional condition) run on the selection."""

import sqlalchemy as sa
from pydantic import TypeAdapter, ValidationError

from app import tables as t
from app.actions.base import ActionHandler, RunContext, c, register
from app.actions.schemas import ActionList
from app.db import in_ids
from app.errors import Invalid
from app.selection import spec as s
from app.selection.service import condition_where, prepare_condition

ACTIONS = TypeAdapter(ActionList)
CONDITION = TypeAdapter(s.Condition)
MAX_RULE_DEPTH = 8


def load_rule(conn, account_id: int, rule_id: int):
    return conn.execute(
        sa.select(t.rules.c.id, t.rules.c.name, t.rules.c.condition, t.rules.c.actions).where(
            t.rules.c.account_id == account_id, t.rules.c.id == rule_id
        )
    ).first()


def parse_rule(row, path: str):
    try:
        actions = ACTIONS.validate_python(row.actions)
        condition = CONDITION.validate_python(row.condition) if row.condition else None
    except ValidationError as exc:  # stored before a schema change; say so, never 500
        raise Invalid.at(
            path, f"rule {row.id} no longer validates: {exc.errors()[0]['msg']}"
        ) from None
    return condition, actions


@register
class RunRule(ActionHandler):
    type = "run_rule"

    def resolve(self, conn, account_id, path, *, create, stack=()):
        from app.actions import prepare

        rule_id = self.action.rule
        if rule_id in stack:
            raise Invalid.at(f"{path}.rule", f"rule {rule_id} runs itself")
        if len(stack) >= MAX_RULE_DEPTH:
            raise Invalid.at(f"{path}.rule", f"rules nest deeper than {MAX_RULE_DEPTH}")
        row = load_rule(conn, account_id, rule_id)
        if row is None:
            raise Invalid.at(f"{path}.rule", f"unknown rule {rule_id}")
        self.condition, actions = parse_rule(row, f"{path}.rule")
        self.checked = None
        if self.condition is not None:  # its segments as they are now, at submit and start
            self.checked = prepare_condition(
                conn, account_id, self.condition, f"{path}.rule.condition"
            )
        self.handlers = prepare(
            conn, account_id, actions, f"{path}.rule", create=create, stack=(*stack, rule_id)
        )

    def _condition(self, rc: RunContext):
        if not self.action.check_condition or self.checked is None:
            return None
        return condition_where(self.checked, rc.account_id, rc.as_of)

    def apply(self, rc, ids):
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
        for handler in self.handlers:
            if ids:
                changed |= handler.apply(rc, ids)
        return changed

    def changes(self, rc):
        parts = [h.changes(rc) for h in self.handlers]
        if any(p is None for p in parts):
            return None
        condition = self._condition(rc)
        either = sa.or_(sa.false(), *parts)
        return either if condition is None else sa.and_(condition, either)

    def would_change(self, rc, members):
        if self.changes(rc) is not None:
            return super().would_change(rc, members)
        condition = self._condition(rc)
        if condition is not None:
            members = sa.select(c.c.id).where(c.c.id.in_(members), condition)
        return max(h.would_change(rc, members) for h in self.handlers)
