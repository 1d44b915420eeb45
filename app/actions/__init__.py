"""The action catalogue: one module per family, each holding its pydantic models and their
handlers side by side (columns, tags, owners, groups, funnels, details, coupons,
personal_links, checks, run_rule). `schemas.ACTION_MODELS` lists them; base.py says what
a handler is."""

from sqlalchemy.engine import Connection

from app.actions.base import ActionHandler, ActionModel, Expansion, ResolveContext, RunContext
from app.actions.schemas import ACTION_MODELS, Action, ActionList


def prepare(
    conn: Connection,
    account_id: int,
    actions: list[ActionModel],
    prefix: str = "actions",
    *,
    create: bool,
    stack: tuple[int, ...] = (),
    expansion: Expansion | None = None,
) -> list[ActionHandler]:
    """Handlers for an action list, resolved (422 for what must exist but does not).
    `stack`: the rules whose action lists hold this one (run_rule refuses a loop);
    `expansion`: the whole list's, when this is a rule's list within it."""
    expansion = expansion or Expansion()
    handlers = []
    for i, action in enumerate(actions):
        handler = type(action).handler(action)
        path = f"{prefix}[{i}]"
        expansion.add(1, path)
        context = ResolveContext(conn, account_id, path, create, stack, expansion)
        handler.resolve(context)
        handlers.append(handler)
    return handlers


__all__ = [
    "ACTION_MODELS",
    "Action",
    "ActionHandler",
    "ActionList",
    "ActionModel",
    "ResolveContext",
    "RunContext",
    "prepare",
]
