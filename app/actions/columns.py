"""Contact columns: opt-ins, validity, state, score, soft delete."""

from typing import Any, Literal

import sqlalchemy as sa
from pydantic import Field, StrictBool

from app.actions import changes
from app.actions.base import ActionHandler, ActionModel, RunContext, c, handles
from app.contacts.schemas import StateField
from app.db import in_ids
from app.types import Int64


class ColumnUpdate(ActionHandler):
    """An action that sets one contact column where it differs."""

    column: str

    def values(self, rc: RunContext) -> dict[str, Any]:
        raise NotImplementedError

    def apply(self, rc: RunContext, ids: list[int]) -> set[int]:
        return update_column(rc, self, ids, self.changes(rc), self.values(rc)[self.column])


def update_column(rc: RunContext, handler: ActionHandler, ids: list[int], where, value) -> set[int]:
    """Set `handler.column` to `value` (a constant or an expression over the row) on the
    chunk's contacts matching `where`, logged; the contacts changed."""
    mine = [c.c.account_id == rc.account_id, in_ids(rc.conn, c.c.id, ids), where]
    return changes.update_logged(rc, handler.type, handler.column, mine, value)


class SetColumn(ColumnUpdate):
    """One column to one value (the action's `value` unless `target` says otherwise)."""

    column: str

    def target(self) -> Any:
        return self.action.value

    def values(self, rc: RunContext) -> dict[str, Any]:
        return {self.column: self.target()}

    def changes(self, rc: RunContext):
        return c.c[self.column] != self.target()


class SetEmailOptIn(ActionModel):
    """Sets the contact's e-mail consent: opted in or out."""

    type: Literal["set_email_opt_in"]
    value: StrictBool = Field(description="`true`: opted in; `false`: opted out.")


@handles(SetEmailOptIn)
class SetEmailOptInHandler(SetColumn):
    column = "email_opt_in"


class SetPhoneOptIn(ActionModel):
    """Sets the contact's phone consent: opted in or out."""

    type: Literal["set_phone_opt_in"]
    value: StrictBool = Field(description="`true`: opted in; `false`: opted out.")


@handles(SetPhoneOptIn)
class SetPhoneOptInHandler(SetColumn):
    column = "phone_opt_in"


class SetEmailValid(ActionModel):
    """Marks the contact's e-mail address valid or invalid."""

    type: Literal["set_email_valid"]
    value: StrictBool = Field(description="`true`: valid; `false`: invalid.")


@handles(SetEmailValid)
class SetEmailValidHandler(SetColumn):
    column = "email_valid"


class SetState(ActionModel):
    """Sets the contact's state."""

    type: Literal["set_state"]
    state: StateField = Field(description="The new state (any case).")


@handles(SetState)
class SetStateHandler(SetColumn):
    column = "state"

    def target(self) -> Any:
        return str(
            self.action.state.value if hasattr(self.action.state, "value") else self.action.state
        )


class Delete(ActionModel):
    """Soft-deletes the contact: it drops out of every selection that does not ask for
    deleted contacts (`undelete` or a revert brings it back)."""

    type: Literal["delete"]


@handles(Delete)
class DeleteHandler(SetColumn):
    column = "deleted"

    def target(self) -> Any:
        return True


class Undelete(ActionModel):
    """Brings a soft-deleted contact back (select deleted ones with `"deleted": "only"`)."""

    type: Literal["undelete"]


@handles(Undelete)
class UndeleteHandler(SetColumn):
    column = "deleted"

    def target(self) -> Any:
        return False


class SetScore(ActionModel):
    """Sets the contact's score, or adds to it."""

    type: Literal["set_score"]
    mode: Literal["set", "add"] = Field(
        "set", description="`set`: the score becomes `value`; `add`: `value` is added to it."
    )
    value: Int64 = Field(description="An integer; negative with `add` lowers the score.")


@handles(SetScore)
class SetScoreHandler(ColumnUpdate):
    """`set` replaces the score (as SALESmanago does); `add` adds to it."""

    column = "score"

    def values(self, rc: RunContext) -> dict[str, Any]:
        if self.action.mode == "add":
            return {"score": c.c.score + self.action.value}
        return {"score": self.action.value}

    def changes(self, rc: RunContext):
        if self.action.mode == "add":
            return sa.true() if self.action.value != 0 else sa.false()
        return c.c.score != self.action.value
