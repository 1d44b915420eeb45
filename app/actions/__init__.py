"""The action catalogue. Each action is a small handler in one of these modules:
flags (columns), links (tags, owners, groups, funnels, details), generated (coupons,
links), python_checks (sex, e-mail syntax), rules (run_rule)."""

from sqlalchemy.engine import Connection

from app.actions import flags, generated, links, python_checks, rules  # noqa: F401 - register
from app.actions.base import REGISTRY, ActionHandler, RunContext


def prepare(
    conn: Connection,
    account_id: int,
    actions: list,
    prefix: str = "actions",
    *,
    create: bool,
    stack: tuple = (),
) -> list[ActionHandler]:
    """Handlers for an action list, resolved (422 for what must exist but does not)."""
    handlers = []
    for i, action in enumerate(actions):
        handler = REGISTRY[action.type](action)
        path = f"{prefix}[{i}]"
        if action.type == "run_rule":
            handler.resolve(conn, account_id, path, create=create, stack=stack)
        else:
            handler.resolve(conn, account_id, path, create=create)
        handlers.append(handler)
    return handlers


__all__ = ["REGISTRY", "ActionHandler", "RunContext", "prepare"]
