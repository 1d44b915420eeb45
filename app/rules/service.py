"""Rules: a name, an optional condition and a stored action list (run by `run_rule`). A
rule that another rule runs cannot be deleted (app.references)."""

import sqlalchemy as sa
from pydantic import TypeAdapter
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from app import references
from app import tables as t
from app.actions import prepare
from app.errors import Conflict, NotFound
from app.names import name_key
from app.rules.schemas import RuleIn
from app.selection import spec as s
from app.selection.service import prepare_condition

COLUMNS = [
    t.rules.c.id,
    t.rules.c.name,
    t.rules.c.condition,
    t.rules.c.actions,
    t.rules.c.created_at,
    t.rules.c.updated_at,
]


def _check(conn: Connection, account_id: int, body: RuleIn, rule_id: int | None) -> dict:
    """The rule's row values, once what it names is locked (so none of it can be renamed or
    deleted before this save commits) and checked."""
    values = _values(body)
    references.hold(conn, account_id, references.rule_uses(values["condition"], values["actions"]))
    if body.condition is not None:  # every test checked, every segment it names known
        prepare_condition(conn, account_id, body.condition, "condition")
    # Resolving the actions follows run_rule into stored rules: a loop back to this rule
    # (or any loop) is refused here, at save time.
    stack = (rule_id,) if rule_id is not None else ()
    prepare(conn, account_id, body.actions, create=False, stack=stack)
    return values


def _values(body: RuleIn) -> dict:
    return {
        "name": body.name,
        "name_key": name_key(body.name),
        "condition": (_dump_condition(body) if body.condition is not None else None),
        "actions": [a.model_dump(mode="json", by_alias=True) for a in body.actions],
    }


def _dump_condition(body: RuleIn):
    return TypeAdapter(s.Condition).dump_python(
        body.condition, mode="json", by_alias=True, exclude_unset=True
    )


def get_rule(conn: Connection, account_id: int, rule_id: int) -> dict:
    row = (
        conn.execute(
            sa.select(*COLUMNS).where(t.rules.c.account_id == account_id, t.rules.c.id == rule_id)
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"rule {rule_id} not found")
    return dict(row)


def list_rules(conn: Connection, account_id: int) -> list[dict]:
    rows = conn.execute(
        sa.select(*COLUMNS).where(t.rules.c.account_id == account_id).order_by(t.rules.c.id)
    ).mappings()
    return [dict(r) for r in rows]


def create_rule(conn: Connection, account_id: int, body: RuleIn) -> dict:
    values = _check(conn, account_id, body, None)
    now = t.utcnow()
    try:
        with conn.begin_nested():
            rule_id = conn.execute(
                sa.insert(t.rules)
                .values(account_id=account_id, created_at=now, updated_at=now, **values)
                .returning(t.rules.c.id)
            ).scalar_one()
    except IntegrityError:
        raise Conflict(f"a rule named '{body.name}' exists") from None
    return get_rule(conn, account_id, rule_id)


def update_rule(conn: Connection, account_id: int, rule_id: int, body: RuleIn) -> dict:
    # Locked first (rules are run by id: a new name is free): a save that runs this rule
    # meanwhile waits, then checks what it does now, so no loop slips in between the two.
    references.guard(conn, account_id, "rule", rule_id, rename_to=body.name)
    values = _check(conn, account_id, body, rule_id)
    try:
        with conn.begin_nested():
            conn.execute(
                sa.update(t.rules)
                .where(t.rules.c.account_id == account_id, t.rules.c.id == rule_id)
                .values(updated_at=t.utcnow(), **values)
            )
    except IntegrityError:
        raise Conflict(f"a rule named '{body.name}' exists") from None
    return get_rule(conn, account_id, rule_id)


def delete_rule(conn: Connection, account_id: int, rule_id: int) -> None:
    references.guard(conn, account_id, "rule", rule_id)  # no rule may run it
    conn.execute(
        sa.delete(t.rules).where(t.rules.c.account_id == account_id, t.rules.c.id == rule_id)
    )
