"""The operators of field, detail and event tests: one row each.

A row says what `value` the operator takes (its operand), which kinds of value it applies
to, which operator it is the complement of, and how it holds for ONE PRESENT value — in SQL
(over a Subject: the compiled value) and in Python (the oracle's twin, and the compiler's
answer for a contact with no rows to aggregate). What an absent value does is decided once,
below the table, from `negates` and `presence`: a negative operator matches the contacts its
positive one does not (those without a value included); `is_empty` matches exactly those.

Adding an operator is adding a row (and its tests); check, compile and the oracle read it.
"""

import calendar
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from typing import Any, Literal, Protocol

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from app.selection.sql import OneOf, folding, like_pattern, month_day, number

Kind = Literal["text", "enum", "number", "date", "datetime", "bool"]
TEXTUAL: frozenset[Kind] = frozenset({"text", "enum"})
ORDERED: frozenset[Kind] = frozenset({"number", "date", "datetime"})
TEMPORAL: frozenset[Kind] = frozenset({"date", "datetime"})
EVERY: frozenset[Kind] = TEXTUAL | ORDERED | {"bool"}
MAX_VALUES = 10_000
MAX_DAYS = 1_000_000
INT64 = 2**63


class Clock(Protocol):
    """The moment a selection is evaluated at (`as_of`) and its date."""

    @property
    def as_of(self) -> datetime: ...

    @property
    def today(self) -> date: ...


class Subject:
    """What a test compares, in SQL: one value per contact (a column, an expression or an
    aggregate). Operators are written against these few relations."""

    def __init__(self, expr, kind: Kind, *, always: bool = False, lowered: bool = False):
        self.expr = expr
        self.kind = kind
        self.always = always  # never absent (NOT NULL with a default)
        self.lowered = lowered  # stored lower-cased: compare with the operand lower-cased

    def present(self) -> ColumnElement[bool]:
        if self.always:
            return sa.true()
        if self.kind in TEXTUAL:
            return sa.and_(self.expr.is_not(None), self.expr != "")
        return self.expr.is_not(None)

    def _side(self, value):
        if self.kind in TEXTUAL and not self.lowered:
            return folding(value)(self.expr)
        return self.expr

    def _operand(self, value):
        if self.kind in TEXTUAL:
            return value.lower() if self.lowered else folding(value)(sa.literal(value, sa.Text()))
        return number(value) if self.kind == "number" else value

    def compare(self, relation: str, value) -> ColumnElement[bool]:
        """`value RELATION operand`, relation one of = < <= > >=."""
        return RELATIONS[relation](self._side(value), self._operand(value))

    def one_of(self, values: list) -> ColumnElement[bool]:
        """`value IN values`, the list bound as one parameter (sql.OneOf)."""
        if not values:
            return sa.false()
        distinct = sorted(set(values), key=str)
        if self.kind == "number":
            whole = all(isinstance(v, int) for v in distinct)
            return OneOf(self.expr, distinct, "bigint" if whole else "numeric")
        if self.kind in TEXTUAL:
            if self.lowered:
                return OneOf(self.expr, sorted({v.lower() for v in distinct}), "text")
            return OneOf(self.expr, distinct, "text", folded=True)
        return self.expr.in_([self._operand(v) for v in distinct])  # dates, times, true/false

    def like(self, pattern: str) -> ColumnElement[bool]:
        if self.lowered:
            return self.expr.like(pattern.lower(), escape="/")
        folded = folding(pattern)
        return folded(self.expr).like(folded(sa.literal(pattern, sa.Text())), escape="/")

    def month_day(self):
        return month_day(self.expr)


RELATIONS: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "=": lambda a, b: a == b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


# --- operands -----------------------------------------------------------------------------


class OperandError(ValueError):
    """The operand does not fit the operator or the kind (a 422 at `….value`)."""


def fold_text(text: str) -> str:
    """Python's twin of sql.fold: lower case as PostgreSQL lowers, character by character."""
    return text.replace("İ", "i").lower().replace("ς", "σ")


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


def _text(value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str):
        raise OperandError("must be a string")
    if "\x00" in value:
        raise OperandError("must not contain NUL characters")
    if choices and value.lower() not in {c.lower() for c in choices}:
        raise OperandError(f"must be one of {', '.join(choices)}")
    return value


def _number(value: Any, _choices) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise OperandError("must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise OperandError("must be a finite number")
    if abs(value) >= INT64:
        raise OperandError("must be within 64-bit range")
    return value


def _bool(value: Any, _choices) -> bool:
    if not isinstance(value, bool):
        raise OperandError("must be true or false")
    return value


def _date(value: Any, _choices) -> date:
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise OperandError("must be a date (YYYY-MM-DD)")


SCALARS: dict[Kind, Callable[[Any, tuple[str, ...]], Any]] = {
    "text": _text,
    "enum": _text,
    "number": _number,
    "bool": _bool,
    "date": _date,
    "datetime": lambda value, _choices: parse_datetime(value),
}


def parse_scalar(kind: Kind, value: Any, choices: tuple[str, ...] = ()) -> Any:
    if value is None:
        raise OperandError("a value is required")
    return SCALARS[kind](value, choices)


class Operand(Enum):
    """The shape of `value` an operator takes."""

    NONE = "none"  # no value
    SCALAR = "scalar"  # one value of the test's kind
    LIST = "list"  # a list of values of the test's kind
    PAIR = "pair"  # [low, high]
    DAYS = "days"  # a whole number of days
    TEXT = "text"  # a string, whatever the kind (a pattern)

    def parse(self, name: str, kind: Kind, value: Any, choices: tuple[str, ...]) -> Any:
        match self:
            case Operand.NONE:
                if value is not None:
                    raise OperandError(f"'{name}' takes no value")
                return None
            case Operand.SCALAR:
                return parse_scalar(kind, value, choices)
            case Operand.LIST:
                if not isinstance(value, list):
                    raise OperandError(f"'{name}' takes a list of values")
                if len(value) > MAX_VALUES:
                    raise OperandError(f"at most {MAX_VALUES} values")
                return tuple(parse_scalar(kind, v, choices) for v in value)
            case Operand.PAIR:
                if not isinstance(value, list) or len(value) != 2:
                    raise OperandError(f"'{name}' takes [low, high]")
                return tuple(parse_scalar(kind, v, choices) for v in value)
            case Operand.DAYS:
                if isinstance(value, bool) or not isinstance(value, int):
                    raise OperandError(f"'{name}' takes a whole number of days (0 or more)")
                if not 0 <= value <= MAX_DAYS:
                    raise OperandError(f"'{name}' takes a whole number of days (0 or more)")
                return value
            case Operand.TEXT:
                return parse_scalar("text", value)


# --- time windows, shared by SQL and Python ------------------------------------------------


def shift(moment, days: int):
    """moment + days, or None past the calendar."""
    try:
        return moment + timedelta(days=days)
    except OverflowError:
        return None


def _now(kind: Kind, clock: Clock):
    return clock.today if kind == "date" else clock.as_of


def birthday_days(days: int, today: date) -> set[int] | None:
    """month*100+day values whose birthday falls within `days` days from today; None for
    every day of the year. 29 February counts as 28 February in other years."""
    if days >= 366:
        return None
    out: set[int] = set()
    for k in range(days + 1):
        d = shift(today, k)
        if d is None:
            break
        out.add(d.month * 100 + d.day)
        if d.month == 2 and d.day == 28 and not calendar.isleap(d.year):
            out.add(229)
    return out


def _day_ranges(days: set[int]) -> list[tuple[int, int]]:
    """Runs of consecutive month*100+day values (31 January then 1 February run on)."""
    ranges: list[tuple[int, int]] = []
    for value in sorted(days):
        if ranges:
            start, prev = ranges[-1]
            if value - prev == 1 or (value % 100 == 1 and value // 100 == prev // 100 + 1):
                ranges[-1] = (start, value)
                continue
        ranges.append((value, value))
    return ranges


def next_birthday(birth: date, today: date) -> date:
    """The first birthday on or after today; 29 February is 28 February in other years."""
    for year in (today.year, today.year + 1):
        day = birth.day
        if birth.month == 2 and birth.day == 29 and not calendar.isleap(year):
            day = 28
        if year > 9999:
            break
        candidate = date(year, birth.month, day)
        if candidate >= today:
            return candidate
    return date.max


# --- the table ----------------------------------------------------------------------------

SqlTest = Callable[[Subject, Any, Clock], ColumnElement[bool]]
PyTest = Callable[[Kind, Any, Any, Clock], bool]


@dataclass(frozen=True)
class Operator:
    name: str
    operand: Operand
    kinds: frozenset[Kind]  # the kinds it applies to (fields may add more: FieldSpec.extra_ops)
    sql: SqlTest | None = None  # on a present value
    python: PyTest | None = None  # on a present value
    negates: str | None = None  # the complement of that operator
    presence: bool | None = None  # is_not_empty (True) / is_empty (False)


def _same(kind: Kind, value, operand) -> bool:
    if kind in TEXTUAL:
        return fold_text(value) == fold_text(operand)
    return value == operand


def _within(s: Subject, days: int, clock: Clock):
    now = _now(s.kind, clock)
    low = shift(now, -days)
    upper = s.compare("<=", now)
    return upper if low is None else sa.and_(s.compare(">=", low), upper)


def _within_py(kind: Kind, value, days: int, clock: Clock) -> bool:
    now = _now(kind, clock)
    low = shift(now, -days)
    return (low is None or low <= value) and value <= now


def _older(s: Subject, days: int, clock: Clock):
    low = shift(_now(s.kind, clock), -days)
    return sa.false() if low is None else s.compare("<", low)


def _older_py(kind: Kind, value, days: int, clock: Clock) -> bool:
    low = shift(_now(kind, clock), -days)
    return low is not None and value < low


def _birthday(s: Subject, days: int, clock: Clock):
    wanted = birthday_days(days, clock.today)
    if wanted is None:
        return sa.true()
    md = s.month_day()
    return sa.or_(*(md == lo if lo == hi else md.between(lo, hi) for lo, hi in _day_ranges(wanted)))


def _birthday_py(kind: Kind, value, days: int, clock: Clock) -> bool:
    return (next_birthday(value, clock.today) - clock.today).days <= days


def _pattern(where: str) -> tuple[SqlTest, PyTest]:
    def sql(s: Subject, text: str, clock: Clock):
        return s.like(like_pattern(text, where))

    def python(kind: Kind, value, text: str, clock: Clock) -> bool:
        v, o = fold_text(value), fold_text(text)
        return {"start": v.startswith(o), "end": v.endswith(o), "anywhere": o in v}[where]

    return sql, python


def _relation(relation: str, check: Callable[[Any, Any], bool]) -> tuple[SqlTest, PyTest]:
    return (
        lambda s, v, clock: s.compare(relation, v),
        lambda kind, value, v, clock: check(value, v),
    )


OPERATORS: dict[str, Operator] = {
    op.name: op
    for op in (
        Operator(
            "eq",
            Operand.SCALAR,
            EVERY,
            lambda s, v, clock: s.compare("=", v),
            lambda kind, value, v, clock: _same(kind, value, v),
        ),
        Operator("ne", Operand.SCALAR, EVERY, negates="eq"),
        Operator(
            "in",
            Operand.LIST,
            EVERY,
            lambda s, vs, clock: s.one_of(list(vs)),
            lambda kind, value, vs, clock: any(_same(kind, value, v) for v in vs),
        ),
        Operator("not_in", Operand.LIST, EVERY, negates="in"),
        Operator("is_empty", Operand.NONE, EVERY, presence=False),
        Operator("is_not_empty", Operand.NONE, EVERY, presence=True),
        Operator("contains", Operand.TEXT, TEXTUAL, *_pattern("anywhere")),
        Operator("not_contains", Operand.TEXT, TEXTUAL, negates="contains"),
        Operator("starts_with", Operand.TEXT, TEXTUAL, *_pattern("start")),
        Operator("ends_with", Operand.TEXT, TEXTUAL, *_pattern("end")),
        Operator("lt", Operand.SCALAR, ORDERED, *_relation("<", lambda a, b: a < b)),
        Operator("lte", Operand.SCALAR, ORDERED, *_relation("<=", lambda a, b: a <= b)),
        Operator("gt", Operand.SCALAR, ORDERED, *_relation(">", lambda a, b: a > b)),
        Operator("gte", Operand.SCALAR, ORDERED, *_relation(">=", lambda a, b: a >= b)),
        Operator(
            "between",
            Operand.PAIR,
            ORDERED,
            lambda s, v, clock: sa.and_(s.compare(">=", v[0]), s.compare("<=", v[1])),
            lambda kind, value, v, clock: v[0] <= value <= v[1],
        ),
        Operator("within_last_days", Operand.DAYS, TEMPORAL, _within, _within_py),
        Operator("older_than_days", Operand.DAYS, TEMPORAL, _older, _older_py),
        # No kind of its own: fields opt in (birth_date).
        Operator("birthday_within_days", Operand.DAYS, frozenset(), _birthday, _birthday_py),
    )
}


def operators_for(kind: Kind, extra: tuple[str, ...] = ()) -> list[str]:
    """The operator names a test of this kind accepts, in table order."""
    return [name for name, op in OPERATORS.items() if kind in op.kinds or name in extra]


# --- absent values, decided once ----------------------------------------------------------


def present(kind: Kind, value) -> bool:
    return value is not None and not (kind in TEXTUAL and value == "")


def holds_sql(op: Operator, subject: Subject, operand, clock: Clock) -> ColumnElement[bool]:
    """The test on a one-value subject, two-valued (never NULL, so NOT is exact)."""
    if op.presence is not None:
        return subject.present() if op.presence else sa.not_(subject.present())
    if op.negates:
        return sa.not_(holds_sql(OPERATORS[op.negates], subject, operand, clock))
    assert op.sql is not None, op.name
    return sa.and_(subject.present(), op.sql(subject, operand, clock))


def holds(op: Operator, kind: Kind, value, operand, clock: Clock) -> bool:
    """Python's twin of holds_sql, for one value (None: no value)."""
    if op.presence is not None:
        return present(kind, value) == op.presence
    if op.negates:
        return not holds(OPERATORS[op.negates], kind, value, operand, clock)
    assert op.python is not None, op.name
    return present(kind, value) and op.python(kind, value, operand, clock)


def holds_for_any(op: Operator, kind: Kind, values, operand, clock: Clock) -> bool:
    """A test on a set of values (a contact's owners, …): a positive operator holds when
    some value does, a negative one when none does its positive, is_empty when none is."""
    values = [v for v in values if present(kind, v)]
    if op.presence is not None:
        return bool(values) == op.presence
    if op.negates:
        return not holds_for_any(OPERATORS[op.negates], kind, values, operand, clock)
    assert op.python is not None, op.name
    return any(op.python(kind, v, operand, clock) for v in values)
