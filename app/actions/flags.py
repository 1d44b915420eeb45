"""Contact columns: opt-ins, validity, state, score, soft delete."""

from typing import Any

import sqlalchemy as sa

from app.actions.base import ColumnUpdate, RunContext, c, register


class _SetColumn(ColumnUpdate):
    column: str

    def target(self) -> Any:
        return self.action.value

    def values(self, rc: RunContext) -> dict[str, Any]:
        return {self.column: self.target()}

    def changes(self, rc: RunContext):
        return c.c[self.column] != self.target()


@register
class SetEmailOptIn(_SetColumn):
    type = "set_email_opt_in"
    column = "email_opt_in"


@register
class SetPhoneOptIn(_SetColumn):
    type = "set_phone_opt_in"
    column = "phone_opt_in"


@register
class SetEmailValid(_SetColumn):
    type = "set_email_valid"
    column = "email_valid"


@register
class SetState(_SetColumn):
    type = "set_state"
    column = "state"

    def target(self) -> Any:
        return str(
            self.action.state.value if hasattr(self.action.state, "value") else self.action.state
        )


@register
class Delete(_SetColumn):
    type = "delete"
    column = "deleted"

    def target(self) -> Any:
        return True


@register
class Undelete(_SetColumn):
    type = "undelete"
    column = "deleted"

    def target(self) -> Any:
        return False


@register
class SetScore(ColumnUpdate):
    """`set` replaces the score (as SALESmanago does); `add` adds to it."""

    type = "set_score"

    def values(self, rc: RunContext) -> dict[str, Any]:
        if self.action.mode == "add":
            return {"score": c.c.score + self.action.value}
        return {"score": self.action.value}

    def changes(self, rc: RunContext):
        if self.action.mode == "add":
            return sa.true() if self.action.value != 0 else sa.false()
        return c.c.score != self.action.value
