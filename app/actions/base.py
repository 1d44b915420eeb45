"""What every action is: a pydantic model (what the client sends) bound to a handler that
resolves it (at submit and at job start), applies it to one chunk, and counts what it
would change (dry run).

`apply` is set-based and returns the ids of the contacts it actually changed, so a job
counts `affected` exactly and `run_rule` can union what its actions changed.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, TypeVar, get_args

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from app import tables as t
from app.config import Settings
from app.db import in_ids, insert_rows

c = t.contacts
# What one action list may expand to, a rule's actions counted every time it is run.
MAX_EXPANDED_ACTIONS = 1_000


@dataclass
class Expansion:
    """One resolution of an action list: how many actions it expands to so far, and the
    rules already resolved (each is resolved once, however often it is run)."""

    actions: int = 0
    rules: dict[int, Any] = field(default_factory=dict)

    def add(self, actions: int, path: str) -> None:
        from app.errors import Invalid

        self.actions += actions
        if self.actions > MAX_EXPANDED_ACTIONS:
            raise Invalid.at(
                path,
                f"the actions expand to more than {MAX_EXPANDED_ACTIONS} "
                "(a rule's actions count every time it is run)",
            )


@dataclass(frozen=True)
class ResolveContext:
    """Where an action is resolved: `path` for its 422s; `create` (job start) makes what the
    action creates when missing, without it (submit, dry run, rule save) names are only
    looked up; `rule_stack` holds the rules whose lists enclose it, so run_rule refuses loops."""

    conn: Connection
    account_id: int
    path: str
    create: bool
    rule_stack: tuple[int, ...] = ()
    expansion: Expansion = field(default_factory=Expansion)


@dataclass
class RunContext:
    conn: Connection
    account_id: int
    job_id: int | None
    now: datetime
    as_of: datetime
    settings: Settings
    position: int = 0  # the action's place in the job's list (for job output rows)
    step: int = 0  # the action's place as run, a rule's actions each one (its change log)


class ActionHandler:
    """An action at work; `handles` binds it to its model and sets `type`."""

    type: ClassVar[str]

    def __init__(self, action: Any):
        self.action = action

    def resolve(self, ctx: ResolveContext) -> None:
        """Look up what the action names; raise Invalid (422) for what must exist.
        With `ctx.create`, create what the action creates when missing (tags, groups, users)."""

    def changes(self, rc: RunContext) -> ColumnElement[bool] | None:
        """A predicate over `contacts`: this contact would change. None when only Python
        can tell (then `would_change` is overridden)."""
        return None

    def apply(self, rc: RunContext, ids: list[int]) -> set[int]:
        """Change the chunk `ids` (ascending), logging each change first
        (app.actions.changes); the contacts changed."""
        raise NotImplementedError

    def steps(self) -> int:
        """How many steps of the change log it takes (a rule: its actions')."""
        return 1

    def would_change(self, rc: RunContext, members: sa.Select) -> int:
        predicate = self.changes(rc)
        assert predicate is not None, f"{self.type} must override would_change"
        return rc.conn.execute(
            sa.select(sa.func.count()).select_from(c).where(c.c.id.in_(members), predicate)
        ).scalar_one()


def _describe_type(schema: dict[str, Any]) -> None:
    schema["properties"]["type"].setdefault("description", "The kind of action.")


class ActionModel(BaseModel):
    """One action of a list, as the client sends it. Subclasses declare
    `type: Literal["…"]`, their tag in the `Action` union, and get `handler` from `handles`;
    their docstring says what the action does to each contact (the schema's description)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_describe_type)

    handler: ClassVar[type[ActionHandler]]

    @classmethod
    def action_type(cls) -> str:
        return get_args(cls.model_fields["type"].annotation)[0]


H = TypeVar("H", bound=type[ActionHandler])


def handles(model: type[ActionModel]) -> Callable[[H], H]:
    """Bind a handler class to the model it runs: the one place an action's type is paired
    with its code (`schemas.ACTION_MODELS` lists the models)."""

    def bind(handler: H) -> H:
        handler.type = model.action_type()
        model.handler = handler
        return handler

    return bind


def chunk_contacts(rc: RunContext, ids: list[int]) -> sa.Select:
    """The chunk's contacts of this account, as a SELECT for INSERT … SELECT."""
    return sa.select(c.c.id).where(c.c.account_id == rc.account_id, in_ids(rc.conn, c.c.id, ids))


def record_output(rc: RunContext, values: dict[int, str]) -> None:
    """One row per contact (a coupon, a link), listed by GET /v1/jobs/{id}/output."""
    if rc.job_id is None or not values:
        return
    rows = [{"contact_id": cid, "value": v} for cid, v in values.items()]
    constants = {"account_id": rc.account_id, "job_id": rc.job_id, "position": rc.position}
    rc.conn.execute(insert_rows(rc.conn, t.job_output, rows, constants).on_conflict_do_nothing())
