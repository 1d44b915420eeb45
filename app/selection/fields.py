"""The allow-list of fields a condition may test: name → type, operators, SQL expression.

A field name from a request is only ever a key into FIELDS; it never reaches SQL text.
"""

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from app import tables as t

Kind = Literal["text", "enum", "number", "date", "datetime", "bool"]

# How a field is compiled: a plain contact column, or a special shape.
Shape = Literal["column", "email_domain", "age", "owner", "tag_count"]


@dataclass(frozen=True)
class FieldSpec:
    kind: Kind
    shape: Shape = "column"
    choices: tuple[str, ...] = ()
    # Always has a value (never matches is_empty): defaults fill it.
    always: bool = False


SEXES = ("female", "male", "unknown")
STATES = ("UNKNOWN", "PROSPECT", "CUSTOMER", "PARTNER", "OTHER")

FIELDS: dict[str, FieldSpec] = {
    "email": FieldSpec("text"),
    "email_domain": FieldSpec("text", "email_domain"),
    "first_name": FieldSpec("text"),
    "last_name": FieldSpec("text"),
    "phone": FieldSpec("text"),
    "company": FieldSpec("text"),
    "city": FieldSpec("text"),
    "country": FieldSpec("text"),
    "sex": FieldSpec("enum", choices=SEXES, always=True),
    "state": FieldSpec("enum", choices=STATES, always=True),
    "score": FieldSpec("number", always=True),
    "age": FieldSpec("number", "age"),
    "birth_date": FieldSpec("date"),
    "created_at": FieldSpec("datetime", always=True),
    "updated_at": FieldSpec("datetime", always=True),
    "email_opt_in": FieldSpec("bool", always=True),
    "phone_opt_in": FieldSpec("bool", always=True),
    "email_valid": FieldSpec("bool", always=True),
    "owner": FieldSpec("text", "owner"),
    "tag_count": FieldSpec("number", "tag_count", always=True),
}


def column(name: str) -> sa.ColumnElement:
    """The contacts column of a plain field (only names in FIELDS ever get here)."""
    assert FIELDS[name].shape == "column", name
    return t.contacts.c[name]


class email_domain(FunctionElement):
    """The part of an e-mail after '@'."""

    type = sa.Text()
    inherit_cache = True
    name = "email_domain"


@compiles(email_domain, "postgresql")
def _email_domain_pg(element, compiler, **kw):
    return f"split_part({compiler.process(element.clauses, **kw)}, '@', 2)"


@compiles(email_domain)
def _email_domain_default(element, compiler, **kw):
    arg = compiler.process(element.clauses, **kw)
    return f"substr({arg}, instr({arg}, '@') + 1)"


class month_day(FunctionElement):
    """month * 100 + day of a date, for birthday windows."""

    type = sa.Integer()
    inherit_cache = True
    name = "month_day"


@compiles(month_day, "postgresql")
def _month_day_pg(element, compiler, **kw):
    arg = compiler.process(element.clauses, **kw)
    return f"(EXTRACT(MONTH FROM {arg})::int * 100 + EXTRACT(DAY FROM {arg})::int)"


@compiles(month_day)
def _month_day_default(element, compiler, **kw):
    arg = compiler.process(element.clauses, **kw)
    return f"CAST(strftime('%m%d', {arg}) AS INTEGER)"


class fold(FunctionElement):
    """Text as compared ignoring case: the database's lower(), with final sigma 'ς' as
    'σ' (PostgreSQL lowers character by character, so 'ΟΔΟΣ' is 'οδοσ'). Applied to
    BOTH sides of a comparison, in SQL, so a value always matches itself."""

    type = sa.Text()
    inherit_cache = True
    name = "fold"


@compiles(fold, "postgresql")
def _fold_pg(element, compiler, **kw):
    return f"translate(lower({compiler.process(element.clauses, **kw)}), 'ς', 'σ')"


@compiles(fold)
def _fold_default(element, compiler, **kw):
    # SQLite's lower is app.db's, which already folds like PostgreSQL's.
    return f"lower({compiler.process(element.clauses, **kw)})"


class ExactNumber(sa.types.TypeDecorator):
    """A fractional operand compared exactly. PostgreSQL: numeric, because a float8
    parameter turns a bigint or numeric column into double precision (2**53 + 1 > 2.0**53
    is false there, and a numeric detail of 1e400 overflows). SQLite: float, which it
    compares with integers exactly."""

    impl = sa.Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect):
        kind = sa.Numeric() if dialect.name == "postgresql" else sa.Float()
        return dialect.type_descriptor(kind)

    def process_bind_param(self, value, dialect):
        if value is None or dialect.name != "postgresql":
            return value
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
