"""The selection language in words, for the OpenAPI document: the table of operators (a
field test's `op`) and of fields (its `field`), rendered from the registries.

operators.py and fields.py say what an operator takes and where it applies; this module
says what each means. An operator, operand, kind or field note without its words is
refused at import, so the document cannot fall behind the registries.
"""

from typing import Any, get_args

from app.selection.fields import FIELDS
from app.selection.operators import (
    EVERY,
    MAX_VALUES,
    OPERATORS,
    Kind,
    Operand,
    Operator,
    operators_for,
)

KIND_WORDS: dict[Kind, str] = {
    "text": "text",
    "enum": "choice",
    "number": "number",
    "date": "date",
    "datetime": "date-time",
    "bool": "true/false",
}
OPERAND_WORDS: dict[Operand, str] = {
    Operand.NONE: "none (leave `value` out)",
    Operand.SCALAR: "one value",
    Operand.LIST: f"a list of values (at most {MAX_VALUES:,})",
    Operand.PAIR: "`[low, high]`",
    Operand.DAYS: "days: a whole number, 0 or more",
    Operand.TEXT: "text",
}
# What an operator says of a present value ("holds when the value …").
MEANINGS: dict[str, str] = {
    "eq": "equals it",
    "ne": "does not equal it",
    "in": "equals one of them",
    "not_in": "equals none of them",
    "is_empty": "is missing (an empty text counts as missing)",
    "is_not_empty": "is present",
    "contains": "contains it",
    "not_contains": "does not contain it",
    "starts_with": "starts with it",
    "ends_with": "ends with it",
    "lt": "is below it",
    "lte": "is at most it",
    "gt": "is above it",
    "gte": "is at least it",
    "between": "lies between them, both ends included",
    "within_last_days": "lies in the N days up to `as_of`: `as_of` − N days ≤ value ≤ `as_of`",
    "older_than_days": "is more than N days before `as_of`",
    "birthday_within_days": "is a birth date whose next birthday is within N days (0: today); "
    "29 February counts as 28 February in other years",
}
# What a field is, where its name does not say it all.
FIELD_NOTES: dict[str, str] = {
    "email": "stored lower-case",
    "email_domain": "the part of `email` after `@`",
    "country": "ISO 3166-1 alpha-2 code",
    "sex": "default `unknown`",
    "state": "default `PROSPECT`",
    "score": "an integer; default 0",
    "age": "whole years at `as_of`, from `birth_date`",
    "created_at": "when the contact was created",
    "updated_at": "when one of its own fields was last written (tags, details, owners, "
    "funnels and groups do not count)",
    "email_opt_in": "default false",
    "phone_opt_in": "default false",
    "email_valid": "default true",
    "owner": "the e-mails of the contact's owners: a positive operator holds when any owner "
    "matches, a negative one (`ne`, `not_in`, `not_contains`) when none does, `is_empty` "
    "when there is no owner",
    "tag_count": "how many tags the contact has",
}


def _words_missing() -> list[str]:
    return [
        *(f"operator {n}" for n in OPERATORS.keys() - MEANINGS.keys()),
        *(f"operand {o.value}" for o in set(Operand) - OPERAND_WORDS.keys()),
        *(f"kind {k}" for k in set(get_args(Kind)) - KIND_WORDS.keys()),
        *(f"field {n}" for n in FIELD_NOTES.keys() - FIELDS.keys()),
    ]


if _words_missing():
    raise TypeError(f"describe these in glossary.py: {_words_missing()}")


def _codes(names) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _applies_to(op: Operator) -> str:
    if op.kinds == EVERY:
        return "every kind"
    kinds = [word for kind, word in KIND_WORDS.items() if kind in op.kinds]
    fields = [f"`{f.name}`" for f in FIELDS.values() if op.name in f.extra_ops]
    if not kinds:
        return f"{', '.join(fields)} only"
    return ", ".join(kinds + fields)


def _meaning(op: Operator) -> str:
    if op.negates:
        return f"{MEANINGS[op.name]}; also true with no value"
    return MEANINGS[op.name]


def operator_table() -> str:
    """The `op` of a field test, described: every operator of the registry, in its order."""
    rows = [
        f"| `{op.name}` | {OPERAND_WORDS[op.operand]} | {_applies_to(op)} | {_meaning(op)} |"
        for op in OPERATORS.values()
    ]
    negative = [op.name for op in OPERATORS.values() if op.negates]
    return "\n".join(
        [
            "The operator. The field's kind (see `field`) decides which operators apply and "
            "what `value` is:",
            "",
            "| `op` | `value` | applies to | holds when the contact's value… |",
            "|---|---|---|---|",
            *rows,
            "",
            "A contact with no value (an empty text counts as none) matches `is_empty` and "
            f"the negative operators {_codes(negative)}, and no other. Text comparisons "
            "ignore case, Unicode-aware (`eq` and `in` too). `value` has the field's type: a "
            "number; a date `YYYY-MM-DD`; a date-time in ISO 8601 (UTC when it has no offset, "
            "a bare date is its midnight UTC); `true` or `false`; one of a choice's values "
            "(any case). A mismatch is a 422 at `value`.",
        ]
    )


def field_table() -> str:
    """The `field` of a field test, described: every field of the registry, in its order."""
    rows = []
    for f in FIELDS.values():
        notes = [FIELD_NOTES[f.name]] if f.name in FIELD_NOTES else []
        if f.choices:
            notes.insert(0, f"one of {_codes(f.choices)}")
        if f.always:
            notes.append("always has a value")
        if f.extra_ops:
            notes.append(f"also takes {_codes(f.extra_ops)}")
        rows.append(f"| `{f.name}` | {KIND_WORDS[f.kind]} | {'; '.join(notes)} |")
    return "\n".join(
        [
            "The contact field tested; its kind decides the operators that apply (see `op`).",
            "",
            "| `field` | kind | notes |",
            "|---|---|---|",
            *rows,
        ]
    )


def _operators_by(kinds: dict[str, Kind], what: str):
    """A JSON-schema hook describing `op` where `what` (a detail's `as`, an event test's
    `agg`) decides the kind: the operators of each, from the registry."""

    def describe(schema: dict[str, Any]) -> None:
        names_of: dict[Kind, list[str]] = {}
        for name, kind in kinds.items():
            names_of.setdefault(kind, []).append(name)
        by = "; ".join(
            f"{_codes(names)}: {_codes(operators_for(kind))}" for kind, names in names_of.items()
        )
        schema["description"] = (
            f"The operator; `{what}` decides which apply ({by}). They mean what they mean in "
            "a field test (see the table of `FieldTest.op`)."
        )

    return describe


def detail_operators(schema: dict[str, Any]) -> None:
    from app.selection.tree import DETAIL_KINDS  # tree.py imports spec.py, which imports this

    _operators_by(DETAIL_KINDS, "as")(schema)


def event_operators(schema: dict[str, Any]) -> None:
    from app.selection.tree import AGGREGATE_KINDS  # as above

    _operators_by(AGGREGATE_KINDS, "agg")(schema)
