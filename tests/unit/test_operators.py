"""The operator table (app.selection.operators): its rows agree with each other, with the
spec's `Op`, and each operator's Python twin decides what the contract says."""

import re
import typing
from datetime import UTC, date, datetime

import pytest

from app.selection import spec
from app.selection.fields import FIELDS
from app.selection.operators import (
    EVERY,
    OPERATORS,
    Operand,
    OperandError,
    holds,
    holds_for_any,
    operators_for,
)

CLOCK = type(
    "Clock", (), {"as_of": datetime(2026, 3, 1, 12, tzinfo=UTC), "today": date(2026, 3, 1)}
)


def test_the_spec_offers_exactly_the_table_in_its_order():
    assert typing.get_args(spec.Op) == tuple(OPERATORS)
    assert typing.get_args(spec.FieldName) == tuple(FIELDS)


@pytest.mark.parametrize("name", list(OPERATORS))
def test_each_row_is_complete(name):
    op = OPERATORS[name]
    if op.presence is not None:
        assert op.operand is Operand.NONE and op.negates is None and op.sql is None
    elif op.negates:
        positive = OPERATORS[op.negates]
        assert positive.negates is None and positive.presence is None
        assert (positive.operand, positive.kinds) == (op.operand, op.kinds)
        assert op.sql is None and op.python is None
    else:
        assert callable(op.sql) and callable(op.python)


def test_every_field_takes_the_operators_of_its_kind():
    assert FIELDS["city"].operators == operators_for("text")
    assert "birthday_within_days" in FIELDS["birth_date"].operators
    assert "birthday_within_days" not in operators_for("date")
    assert "contains" not in FIELDS["score"].operators
    for field in FIELDS.values():
        assert {"eq", "ne", "is_empty", "is_not_empty"} <= set(field.operators), field.name
        assert field.kind in EVERY


# (operator, kind, value, operand, holds?): one present value, or None for no value.
CASES = [
    ("eq", "text", "Łódź", "ŁÓDŹ", True),
    ("eq", "text", None, "x", False),
    ("ne", "text", None, "x", True),
    ("ne", "text", "", "x", True),
    ("ne", "enum", "male", "MALE", False),
    ("in", "number", 3, (1, 3), True),
    ("in", "number", 2, (), False),
    ("not_in", "number", 2, (), True),
    ("not_in", "number", None, (1,), True),
    ("is_empty", "text", "", None, True),
    ("is_empty", "number", 0, None, False),
    ("is_not_empty", "bool", False, None, True),
    ("contains", "text", "Kraków", "AKÓ", True),
    ("not_contains", "text", None, "a", True),
    ("starts_with", "text", "Gdańsk", "gd", True),
    ("ends_with", "text", "Gdańsk", "SK", True),
    ("ends_with", "text", "Gdańsk", "gd", False),
    ("lt", "number", 1, 2, True),
    ("lte", "number", 2, 2, True),
    ("gt", "number", 2, 2, False),
    ("gte", "date", date(2026, 1, 1), date(2026, 1, 1), True),
    ("between", "number", 5, (5, 7), True),
    ("between", "number", 8, (5, 7), False),
    ("within_last_days", "date", date(2026, 2, 22), 7, True),
    ("within_last_days", "date", date(2026, 2, 21), 7, False),
    ("within_last_days", "datetime", datetime(2026, 3, 2, tzinfo=UTC), 7, False),
    ("older_than_days", "date", date(2026, 2, 21), 7, True),
    ("older_than_days", "datetime", datetime(2026, 2, 22, 13, tzinfo=UTC), 7, False),
    ("birthday_within_days", "date", date(1990, 3, 8), 7, True),
    ("birthday_within_days", "date", date(1990, 3, 9), 7, False),
    ("birthday_within_days", "date", date(1992, 2, 29), 0, False),
]


@pytest.mark.parametrize(
    ("op", "kind", "value", "operand", "expected"),
    CASES,
    ids=[f"{op}-{kind}-{value}-{operand}" for op, kind, value, operand, _ in CASES],
)
def test_python_twin(op, kind, value, operand, expected):
    assert holds(OPERATORS[op], kind, value, operand, CLOCK) is expected


def test_set_of_values():
    owners = ["ann@x.pl", "bob@y.pl"]
    assert holds_for_any(OPERATORS["eq"], "text", owners, "BOB@y.pl", CLOCK)
    assert not holds_for_any(OPERATORS["ne"], "text", owners, "bob@y.pl", CLOCK)
    assert holds_for_any(OPERATORS["ne"], "text", owners, "cat@z.pl", CLOCK)
    assert holds_for_any(OPERATORS["is_empty"], "text", [], None, CLOCK)
    assert holds_for_any(OPERATORS["not_contains"], "text", [], "x", CLOCK)


OPERANDS = [
    ("eq", "number", "5", "must be a number"),
    ("eq", "number", True, "must be a number"),
    ("eq", "number", 2**63, "must be within 64-bit range"),
    ("eq", "enum", "robot", "must be one of"),
    ("eq", "text", None, "a value is required"),
    ("eq", "text", "a\x00", "must not contain NUL"),
    ("eq", "date", "2026-02-30", "must be a date"),
    ("eq", "datetime", 5, "must be an ISO 8601"),
    ("in", "number", 5, "takes a list"),
    ("between", "number", [1], "takes [low, high]"),
    ("within_last_days", "date", -1, "whole number of days"),
    ("within_last_days", "date", 1.5, "whole number of days"),
    ("is_empty", "text", "x", "takes no value"),
]


@pytest.mark.parametrize(
    ("op", "kind", "value", "message"), OPERANDS, ids=[f"{o}-{k}-{v!r}" for o, k, v, _ in OPERANDS]
)
def test_bad_operands(op, kind, value, message):
    row = OPERATORS[op]
    with pytest.raises(OperandError, match=re.escape(message)):
        row.operand.parse(op, kind, value, ("female", "male", "unknown"))


def test_operands_are_parsed_to_their_kind():
    assert Operand.SCALAR.parse("eq", "date", "2026-01-02", ()) == date(2026, 1, 2)
    assert Operand.SCALAR.parse("eq", "datetime", "2026-01-02", ()) == datetime(
        2026, 1, 2, tzinfo=UTC
    )
    assert Operand.LIST.parse("in", "number", [1, 2.5], ()) == (1, 2.5)
    assert Operand.PAIR.parse(
        "between", "datetime", ["2026-01-01T10:00:00+02:00", "2026-01-02"], ()
    )[0] == datetime(2026, 1, 1, 8, tzinfo=UTC)
