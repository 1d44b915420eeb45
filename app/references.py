"""References cannot dangle. A saved segment or rule that names a group or a segment, or
runs a rule, keeps it from being renamed or deleted: a 409 naming every referrer, as a
foreign key would refuse it. Tags and funnels have no rename or delete; mailings are
named by id, and so are rules (`run_rule`), so renaming a rule is always free.

Who refers to what is read from the stored JSON of the account's segments and rules (a
few thousand at most), narrowed in SQL first by the marker each kind of reference always
writes (`"group…`, `"segment…`, `"run_rule"`). On PostgreSQL a rename or delete locks its
row first (FOR UPDATE) and only then looks for referrers, while a save locks the rows it
names (FOR SHARE) before it checks that they exist: whichever comes second waits for the
first to commit and sees what it did, so a reference cannot slip in beside a delete.
SQLite runs one write transaction at a time."""

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from app import tables as t
from app.db import in_values, is_postgres
from app.errors import InUse, NotFound
from app.names import name_key

Kind = Literal["group", "segment", "rule"]
TABLES: dict[Kind, sa.Table] = {"group": t.groups, "segment": t.segments, "rule": t.rules}
# What the stored JSON of every reference of a kind holds (LIKE patterns; `_` matches
# itself too): a selector's `"type": "group"` or an action's `"group": …` key; a
# selector's `"type": "segment"`; a `"type": "run_rule"` action.
MARKERS: dict[Kind, str] = {"group": '%"group%', "segment": '%"segment%', "rule": '%"run_rule"%'}
SHOWN = 3  # referrers named in the message (the details name them all)


@dataclass(frozen=True)
class Use:
    """One reference in a stored segment or rule: to a name key, or a rule id."""

    kind: Kind
    key: str | int
    path: str  # where in the referrer


# --- what a segment or rule uses --------------------------------------------------------


def selection_uses(selection: Any, prefix: str = "selection") -> Iterator[Use]:
    """The references of a selection spec (JSON: stored, or a parsed one dumped)."""
    if not isinstance(selection, dict):
        return
    for part in ("include", "exclude"):
        for i, selector in enumerate(selection.get(part) or ()):
            yield from condition_uses(selector, f"{prefix}.{part}[{i}]")
    if selection.get("filter") is not None:
        yield from condition_uses(selection["filter"], f"{prefix}.filter")


def condition_uses(condition: Any, path: str) -> Iterator[Use]:
    """The groups and segments a condition tree names (iteratively: trees are deep)."""
    stack = [(condition, path)]
    while stack:
        node, at = stack.pop()
        if not isinstance(node, dict):
            continue
        for op in ("and", "or"):
            for i, child in enumerate(node.get(op) or ()):
                stack.append((child, f"{at}.{op}[{i}]"))
        if "not" in node:
            stack.append((node["not"], f"{at}.not"))
        kind = node.get("type")
        if kind in ("group", "segment"):
            for i, name in enumerate(node.get(f"{kind}s") or ()):
                if isinstance(name, str):
                    yield Use(kind, name_key(name), f"{at}.{kind}s[{i}]")


def rule_uses(condition: Any, actions: Any) -> Iterator[Use]:
    """The references of a rule: its condition's, the groups its actions name (created at
    run time when missing, but named all the same) and the rules it runs."""
    if condition is not None:
        yield from condition_uses(condition, "condition")
    for i, action in enumerate(actions or ()):
        if not isinstance(action, dict):
            continue
        kind = action.get("type")
        if kind == "run_rule" and isinstance(action.get("rule"), int):
            yield Use("rule", action["rule"], f"actions[{i}].rule")
        elif kind in ("add_to_group", "remove_from_group") and isinstance(action.get("group"), str):
            yield Use("group", name_key(action["group"]), f"actions[{i}].group")


# --- a save: hold what it names ---------------------------------------------------------


def hold(conn: Connection, account_id: int, uses: Iterable[Use]) -> None:
    """Lock (FOR SHARE) the groups, segments and rules a segment or rule being saved names,
    before its check reads them: none can be renamed or deleted until the save commits, and
    one renamed or deleted meanwhile is no longer found (a 422). Nothing to do on SQLite."""
    if not is_postgres(conn):
        return
    wanted: dict[Kind, set] = {}
    for use in uses:
        wanted.setdefault(use.kind, set()).add(use.key)
    for kind in sorted(wanted):
        table = TABLES[kind]
        column, type_ = (
            (table.c.id, sa.BigInteger) if kind == "rule" else (table.c.name_key, sa.Text)
        )
        conn.execute(
            sa.select(table.c.id)
            .where(
                table.c.account_id == account_id,
                in_values(conn, column, sorted(wanted[kind]), type_),
            )
            .order_by(table.c.id)
            .with_for_update(read=True)
        ).all()


# --- a rename or delete: refused while referred to ------------------------------------


@dataclass(frozen=True)
class Referrer:
    kind: Literal["segment", "rule"]
    id: int
    name: str
    path: str  # where in it the first use is


def guard(
    conn: Connection, account_id: int, kind: Kind, thing_id: int, *, rename_to: str | None = None
) -> None:
    """Before renaming (`rename_to`) or deleting the group, segment or rule `thing_id`:
    lock its row, 404 when there is none, 409 (InUse) naming every saved segment and rule
    that refers to it. A rename that keeps the name key (a change of case, or a rule's:
    rules are referred to by id) refers to nothing new and passes."""
    table = TABLES[kind]
    row = conn.execute(
        sa.select(table.c.name, table.c.name_key)
        .where(table.c.account_id == account_id, table.c.id == thing_id)
        .with_for_update()
    ).first()
    if row is None:
        raise NotFound(f"{kind} {thing_id} not found")
    if rename_to is not None and (kind == "rule" or name_key(rename_to) == row.name_key):
        return
    key = thing_id if kind == "rule" else row.name_key
    found = referrers(conn, account_id, kind, key)
    if not found:
        return
    what = f"{kind} '{row.name}'"
    names = ", ".join(f"{r.kind} '{r.name}'" for r in found[:SHOWN])
    more = f" and {len(found) - SHOWN} more" if len(found) > SHOWN else ""
    verb = "rename" if rename_to is not None else "delete"
    raise InUse(
        f"cannot {verb} {what}: {names}{more} use{'s' if len(found) == 1 else ''} it; "
        "change or delete them first",
        details=[
            {"path": f"{r.kind}s/{r.id}", "message": f"{r.kind} '{r.name}' uses {what} at {r.path}"}
            for r in found
        ],
    )


def referrers(conn: Connection, account_id: int, kind: Kind, key: str | int) -> list[Referrer]:
    """The saved segments and rules that refer to the `kind` with this name key (a rule:
    id), segments first, each in id order."""
    found: list[Referrer] = []
    needle = str(key)
    if kind != "rule":  # segments run no rules
        sg = t.segments
        text = _text(sg.c.selection)
        for row in conn.execute(
            sa.select(sg.c.id, sg.c.name, text)
            .where(sg.c.account_id == account_id, text.like(MARKERS[kind]))
            .order_by(sg.c.id)
        ):
            if _may_name(row.text, needle):
                uses = selection_uses(json.loads(row.text))
                found.extend(_first(row, "segment", uses, kind, key))
    r = t.rules
    condition, actions = _text(r.c.condition), _text(r.c.actions)
    for row in conn.execute(
        sa.select(r.c.id, r.c.name, condition.label("condition"), actions.label("actions"))
        .where(
            r.c.account_id == account_id,
            sa.or_(condition.like(MARKERS[kind]), actions.like(MARKERS[kind])),
        )
        .order_by(r.c.id)
    ):
        if _may_name(row.condition, needle) or _may_name(row.actions, needle):
            uses = rule_uses(_parsed(row.condition), _parsed(row.actions))
            found.extend(_first(row, "rule", uses, kind, key))
    return found


def _text(column: sa.Column):
    """A JSON column as the text stored (PostgreSQL `json` keeps it as written)."""
    return sa.cast(column, sa.Text).label("text")


def _may_name(text: str | None, needle: str) -> bool:
    """False only when stored JSON text cannot hold a name whose key (or a rule id) is
    `needle`: ASCII text without escapes holds every name as written, so its lower-case
    holds the key of each. Other text may (an escaped 'Ł'), and is parsed to be sure. Saves
    parsing the account's every segment for each rename or delete."""
    if text is None:
        return False
    if text.isascii() and "\\" not in text:
        return needle in text.lower()
    return True


def _parsed(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _first(row, referrer: Literal["segment", "rule"], uses, kind: Kind, key) -> list[Referrer]:
    for use in uses:
        if use.kind == kind and use.key == key:
            return [Referrer(referrer, row.id, row.name, use.path)]
    return []
