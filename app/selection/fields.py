"""The fields a condition may test: the one registry. Name → kind, choices, and how the
compiler reaches the value (`shape`).

A field name from a request is only ever a key into FIELDS (the spec's `FieldName` is
derived from it); it never reaches SQL text. A plain contact column is one row here.
"""

from dataclasses import dataclass
from typing import Literal

from app.selection.operators import Kind, operators_for

# How a field is compiled: a contact column, or a shape of its own (compile.py).
Shape = Literal["column", "email_domain", "age", "owner", "tag_count"]


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: Kind
    shape: Shape = "column"
    choices: tuple[str, ...] = ()
    # Always has a value (never matches is_empty): NOT NULL with a default.
    always: bool = False
    # Stored lower-cased: compared with the operand lower-cased in Python.
    lowered: bool = False
    # Operators of no kind that this field takes too.
    extra_ops: tuple[str, ...] = ()

    @property
    def operators(self) -> list[str]:
        return operators_for(self.kind, self.extra_ops)


SEXES = ("female", "male", "unknown")
STATES = ("UNKNOWN", "PROSPECT", "CUSTOMER", "PARTNER", "OTHER")

FIELDS: dict[str, FieldSpec] = {
    f.name: f
    for f in (
        FieldSpec("email", "text", lowered=True),
        FieldSpec("email_domain", "text", "email_domain", lowered=True),
        FieldSpec("first_name", "text"),
        FieldSpec("last_name", "text"),
        FieldSpec("phone", "text"),
        FieldSpec("company", "text"),
        FieldSpec("city", "text"),
        FieldSpec("country", "text"),
        FieldSpec("sex", "enum", choices=SEXES, always=True),
        FieldSpec("state", "enum", choices=STATES, always=True),
        FieldSpec("score", "number", always=True),
        FieldSpec("age", "number", "age"),
        FieldSpec("birth_date", "date", extra_ops=("birthday_within_days",)),
        FieldSpec("created_at", "datetime", always=True),
        FieldSpec("updated_at", "datetime", always=True),
        FieldSpec("email_opt_in", "bool", always=True),
        FieldSpec("phone_opt_in", "bool", always=True),
        FieldSpec("email_valid", "bool", always=True),
        FieldSpec("owner", "text", "owner", lowered=True),
        FieldSpec("tag_count", "number", "tag_count", always=True),
    )
}
