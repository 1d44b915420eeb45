"""The check pass: every test's operator and operand against its type, with a path.

Runs after parsing and before compiling. Each test gets its operand parsed to the type
(`node._operand`), so the compiler never sees raw JSON. Iterative, so depth is harmless.
"""

import math
from datetime import UTC, date, datetime
from typing import Any

from app.errors import Invalid
from app.names import name_key
from app.selection import spec as s
from app.selection.fields import FIELDS, Kind

ANY_OPS = {"eq", "ne", "in", "not_in", "is_empty", "is_not_empty"}
TEXT_OPS = ANY_OPS | {"contains", "not_contains", "starts_with", "ends_with"}
ORDERED_OPS = ANY_OPS | {"lt", "lte", "gt", "gte", "between"}
DATE_OPS = ORDERED_OPS | {"within_last_days", "older_than_days"}

OPS_BY_KIND: dict[Kind, set[str]] = {
    "text": TEXT_OPS,
    "enum": TEXT_OPS,
    "number": ORDERED_OPS,
    "date": DATE_OPS,
    "datetime": DATE_OPS,
    "bool": ANY_OPS,
}

INT64 = 2**63


class OperandError(ValueError):
    pass


def parse_scalar(kind: Kind, value: Any, choices: tuple[str, ...] = ()) -> Any:
    if value is None:
        raise OperandError("a value is required")
    if kind in ("text", "enum"):
        if not isinstance(value, str):
            raise OperandError("must be a string")
        if "\x00" in value:
            raise OperandError("must not contain NUL characters")
        if kind == "enum" and value.lower() not in {c.lower() for c in choices}:
            raise OperandError(f"must be one of {', '.join(choices)}")
        return value
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise OperandError("must be a number")
        if isinstance(value, float) and not math.isfinite(value):
            raise OperandError("must be a finite number")
        if abs(value) >= INT64:
            raise OperandError("must be within 64-bit range")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise OperandError("must be true or false")
        return value
    if kind == "date":
        if not isinstance(value, str):
            raise OperandError("must be a date (YYYY-MM-DD)")
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise OperandError("must be a date (YYYY-MM-DD)") from None
    if kind == "datetime":
        return parse_datetime(value)
    raise AssertionError(kind)


def parse_datetime(value: Any) -> datetime:
    if not isinstance(value, str):
        raise OperandError("must be an ISO 8601 date-time or date")
    try:
        if len(value) == 10:
            d = date.fromisoformat(value)
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise OperandError("must be an ISO 8601 date-time or date") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_operand(kind: Kind, op: str, value: Any, choices: tuple[str, ...] = ()) -> Any:
    if op in ("is_empty", "is_not_empty"):
        if value is not None:
            raise OperandError(f"'{op}' takes no value")
        return None
    if op in ("in", "not_in"):
        if not isinstance(value, list):
            raise OperandError(f"'{op}' takes a list of values")
        if len(value) > s.MAX_VALUES:
            raise OperandError(f"at most {s.MAX_VALUES} values")
        return [parse_scalar(kind, v, choices) for v in value]
    if op == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise OperandError("'between' takes [low, high]")
        return [parse_scalar(kind, v, choices) for v in value]
    if op in ("within_last_days", "older_than_days", "birthday_within_days"):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1_000_000:
            raise OperandError(f"'{op}' takes a whole number of days (0 or more)")
        return value
    if op in ("contains", "not_contains", "starts_with", "ends_with"):
        return parse_scalar("text", value)
    return parse_scalar(kind, value, choices)


def _check_test(node, kind: Kind, path: str, errors: list, choices=(), extra_ops=()) -> None:
    allowed = OPS_BY_KIND[kind] | set(extra_ops)
    if node.op not in allowed:
        errors.append(
            {
                "path": f"{path}.op",
                "message": f"operator '{node.op}' does not apply here; use one of "
                f"{', '.join(sorted(allowed))}",
            }
        )
        return
    try:
        node._operand = parse_operand(kind, node.op, node.value, choices)
    except OperandError as exc:
        errors.append({"path": f"{path}.value", "message": str(exc)})


def check_condition(root, path: str, errors: list, segments: dict[str, str] | None = None) -> None:
    """Walk a condition tree, checking every test; collect referenced segment names."""
    stack = [(root, path)]
    while stack:
        node, here = stack.pop()
        match node:
            case s.And():
                stack.extend((c, f"{here}.and[{i}]") for i, c in enumerate(node.and_))
            case s.Or():
                stack.extend((c, f"{here}.or[{i}]") for i, c in enumerate(node.or_))
            case s.Not():
                stack.append((node.not_, f"{here}.not"))
            case s.FieldTest():
                spec = FIELDS[node.field]
                extra = ("birthday_within_days",) if node.field == "birth_date" else ()
                _check_test(node, spec.kind, here, errors, spec.choices, extra)
            case s.DetailTest():
                kind: Kind = {"string": "text", "number": "number", "date": "date"}[node.as_]
                _check_test(node, kind, here, errors)
            case s.EventTest():
                kind = "datetime" if node.agg == "last_at" else "number"
                _check_test(node, kind, here, errors)
                f = node.event
                if f.from_ and f.to and f.from_ > f.to:
                    errors.append({"path": f"{here}.event.to", "message": "'to' is before 'from'"})
            case s.SegmentSelector():
                if segments is not None:
                    for name in node.segments:
                        segments.setdefault(name_key(name), f"{here}.segments")
            case s.TagSelector() | s.FunnelSelector() | s.MailingSelector() | s.GroupSelector():
                pass
            case _:
                raise AssertionError(f"unknown condition node {type(node).__name__}")


def check_selection(selection: s.Selection, prefix: str = "") -> dict[str, str]:
    """Check a parsed selection; raise Invalid with every problem.
    Returns the segments it uses: name key → path of the first selector naming it."""
    errors: list[dict] = []
    segments: dict[str, str] = {}
    dot = f"{prefix}." if prefix else ""
    for i, sel in enumerate(selection.include):
        check_condition(sel, f"{dot}include[{i}]", errors, segments)
    for i, sel in enumerate(selection.exclude):
        check_condition(sel, f"{dot}exclude[{i}]", errors, segments)
    if selection.filter is not None:
        check_condition(selection.filter, f"{dot}filter", errors, segments)
    if errors:
        raise Invalid(f"{errors[0]['path']}: {errors[0]['message']}", details=errors)
    return segments
