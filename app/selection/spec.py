"""The selection spec as pydantic models: the parse pass.

Parsing (this module) checks shapes; check.py turns the parsed spec into the checked tree
(tree.py), where every operator, operand and saved segment is checked; compile.py turns
that into SQL. Size limits are enforced on the raw JSON first, without recursion, so a
hostile tree never reaches a recursive validator.
"""

from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    model_validator,
)

from app.names import Name
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
from app.types import Int64, Number, OffsetDatetime, UTCDatetime, integer, text

MAX_DEPTH = 64
MAX_NODES = 2_000

# Both derived from their one registry (operators.py, fields.py), in its order.
Op = Literal[tuple(OPERATORS)]  # type: ignore[valid-type]
FieldName = Literal[tuple(FIELDS)]  # type: ignore[valid-type]

# --- the operator and field tables of the OpenAPI document, rendered from the registries ---
# The registries say what an operator takes and where it applies; these say what it means,
# in words. Adding an operator or a field without its words fails here, at import.

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
    raise TypeError(f"describe these in spec.py: {_words_missing()}")


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


def _detail_ops(schema: dict[str, Any]) -> None:
    from app.selection.tree import DETAIL_KINDS  # tree.py imports this module

    _operators_by(DETAIL_KINDS, "as")(schema)


def _event_ops(schema: dict[str, Any]) -> None:
    from app.selection.tree import AGGREGATE_KINDS  # tree.py imports this module

    _operators_by(AGGREGATE_KINDS, "agg")(schema)


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# --- selectors ------------------------------------------------------------------------


MUST_EXIST = "each must exist in the account (else a 422 at it that offers the closest names)"


class TagSelector(_Node):
    """Contacts that have any of the tags (with `match: all`, every one of them)."""

    type: Literal["tag"] = Field(description="The kind of selector.")
    tags: list[Name] = Field(
        min_length=1,
        max_length=MAX_VALUES,
        description=f"Tag names, matched ignoring case; {MUST_EXIST}.",
    )
    match: Literal["any", "all"] = Field(
        "any", description="`any`: at least one of the tags; `all`: every one of them."
    )


class FunnelSelector(_Node):
    """Contacts in the funnel at one of the stages (without `stages`: at any stage)."""

    type: Literal["funnel"] = Field(description="The kind of selector.")
    funnel: Name = Field(
        description="The funnel's name, matched ignoring case; it must exist in the account."
    )
    stages: list[Name] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_VALUES,
        description=f"Stage names of that funnel, matched ignoring case; {MUST_EXIST}. "
        "Null or absent: any stage.",
    )


class MailingSelector(_Node):
    """Recipients of any of the mailings, narrowed by what they did with it (`event`)."""

    type: Literal["mailing"] = Field(description="The kind of selector.")
    mailings: list[Int64] = Field(
        min_length=1,
        max_length=MAX_VALUES,
        description="Mailing ids (`GET /v1/mailings` lists them); each must exist in the account.",
    )
    event: Literal["sent", "opened", "not_opened", "clicked", "bounced"] = Field(
        "sent",
        description="`sent`: every recipient; `opened`, `clicked`, `bounced`: recipients with "
        "an open, a click, a bounce; `not_opened`: recipients without an open, bounced ones "
        "included.",
    )


class GroupSelector(_Node):
    """Members of any of the groups."""

    type: Literal["group"] = Field(description="The kind of selector.")
    groups: list[Name] = Field(
        min_length=1,
        max_length=MAX_VALUES,
        description=f"Group names, matched ignoring case; {MUST_EXIST}.",
    )


class SegmentSelector(_Node):
    """Contacts any of the saved segments selects: the segment's include, exclude and
    filter, under the outer selection's `deleted` and `as_of`. Always its current
    definition."""

    type: Literal["segment"] = Field(description="The kind of selector.")
    segments: list[Name] = Field(
        min_length=1,
        max_length=100,
        description=f"Saved segment names, matched ignoring case; {MUST_EXIST}.",
    )


def _selector_kind(value: Any) -> str | None:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return f"~{kind}" if kind in ("tag", "funnel", "mailing", "group", "segment") else None


Selector = Annotated[
    Annotated[TagSelector, Tag("~tag")]
    | Annotated[FunnelSelector, Tag("~funnel")]
    | Annotated[MailingSelector, Tag("~mailing")]
    | Annotated[GroupSelector, Tag("~group")]
    | Annotated[SegmentSelector, Tag("~segment")],
    Discriminator(
        _selector_kind,
        custom_error_type="invalid_selector",
        custom_error_message="'type' must be one of tag, funnel, mailing, group, segment",
    ),
]

# --- conditions -----------------------------------------------------------------------


class FieldTest(_Node):
    """A test on a field of the contact: `{"field": F, "op": OP, "value": V}`."""

    field: FieldName = Field(description=field_table())
    op: Op = Field(description=operator_table())
    value: Any = Field(
        None,
        description="The operand, of the field's type; `op` decides its shape (one value, a "
        "list, `[low, high]`, a number of days, or none).",
    )


class DetailTest(_Node):
    """A test on one of the contact's details (its own named values, stored as text), read
    as `as` says: a value that does not read as that type counts as no value."""

    detail: text(255, min_length=1) = Field(
        description="The detail's name, matched exactly (case counts); "
        "`GET /v1/details` lists the names in use."
    )
    op: Op = Field(json_schema_extra=_detail_ops)
    value: Any = Field(
        None, description="The operand, of the type `as` names; `op` decides its shape."
    )
    as_: Literal["string", "number", "date"] = Field(
        default="string",
        alias="as",
        description="How the stored text is read: as text, a number, or a date (YYYY-MM-DD).",
    )


class EventFilter(_Node):
    """Which of the contact's events an event test aggregates: those that pass every key
    given (all are optional; `{}` keeps every event)."""

    type: text(64, min_length=1) | None = Field(
        None, description="The event type, compared exactly (case counts), e.g. `PURCHASE`."
    )
    within_days: integer(ge=0, le=1_000_000) | None = Field(
        None,
        description="Events from `as_of` − N days up to `as_of` (both ends included).",
    )
    from_: UTCDatetime | None = Field(
        default=None,
        alias="from",
        description="Events at or after this time (ISO 8601; UTC when it has no offset).",
    )
    to: UTCDatetime | None = Field(
        None, description="Events at or before this time (ISO 8601; UTC when it has no offset)."
    )
    products_contains: text(1000) | None = Field(
        None, description="Events whose `products` text contains this, ignoring case."
    )
    value_gte: Number | None = Field(
        None, description="Events whose value is at least this (events without one drop out)."
    )
    value_lte: Number | None = Field(
        None, description="Events whose value is at most this (events without one drop out)."
    )


class EventTest(_Node):
    """Aggregates the contact's matching events and tests the aggregate:
    `{"event": {…}, "agg": "count", "op": "gte", "value": 1}` is "at least one such event",
    `… "op": "eq", "value": 0` "none". `agg` and `op` are required: a silent default on an
    aggregate hides mistakes."""

    event: EventFilter = Field(description="Which of the contact's events count.")
    agg: Literal["count", "sum", "max", "last_at"] = Field(
        description="How the events fold into one value: `count` how many (0 with none); "
        "`sum` the total of their values, events without a value left out (0 with none); "
        "`max` the largest value (no value with none); `last_at` the latest `occurred_at`, "
        "a date-time (no value with none)."
    )
    op: Op = Field(json_schema_extra=_event_ops)
    value: Any = Field(
        None,
        description="The operand: a number for `count`, `sum` and `max`, a date-time for "
        "`last_at`; `op` decides its shape.",
    )


class And(_Node):
    """True when every condition holds; an empty list is always true."""

    and_: list["Condition"] = Field(alias="and", max_length=MAX_NODES, description="Conditions.")


class Or(_Node):
    """True when at least one condition holds; an empty list is never true."""

    or_: list["Condition"] = Field(alias="or", max_length=MAX_NODES, description="Conditions.")


class Not(_Node):
    """True when the condition does not hold: its exact complement, contacts without a
    value for the tested field included."""

    not_: "Condition" = Field(alias="not", description="The condition negated.")


_TEST_TAGS = {
    And: "~and",
    Or: "~or",
    Not: "~not",
    FieldTest: "~field",
    DetailTest: "~detail",
    EventTest: "~event",
}


def _condition_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        for key in ("and", "or", "not"):
            if key in value:
                return f"~{key}"
        if "type" in value:
            return _selector_kind(value) or "~badselector"
        for key in ("field", "detail", "event"):
            if key in value:
                return f"~{key}"
        return None
    for cls, tag in _TEST_TAGS.items():
        if isinstance(value, cls):
            return tag
    return _selector_kind(value)


Condition = Annotated[
    Annotated[And, Tag("~and")]
    | Annotated[Or, Tag("~or")]
    | Annotated[Not, Tag("~not")]
    | Annotated[FieldTest, Tag("~field")]
    | Annotated[DetailTest, Tag("~detail")]
    | Annotated[EventTest, Tag("~event")]
    | Annotated[TagSelector, Tag("~tag")]
    | Annotated[FunnelSelector, Tag("~funnel")]
    | Annotated[MailingSelector, Tag("~mailing")]
    | Annotated[GroupSelector, Tag("~group")]
    | Annotated[SegmentSelector, Tag("~segment")],
    Discriminator(
        _condition_kind,
        custom_error_type="invalid_condition",
        custom_error_message=(
            "a condition is one of {and}, {or}, {not}, a selector {type}, "
            "a field test {field, op, value}, a detail test {detail, op, value} "
            "or an event test {event, agg, op, value}"
        ),
    ),
]

And.model_rebuild()
Or.model_rebuild()
Not.model_rebuild()

# Every kind of parsed condition (tree.py makes one checked node of each).
CONDITION_KINDS = (
    And,
    Or,
    Not,
    FieldTest,
    DetailTest,
    EventTest,
    TagSelector,
    FunnelSelector,
    MailingSelector,
    GroupSelector,
    SegmentSelector,
)


def check_size(data: Any, prefix: str = "") -> None:
    """Depth and node limits on raw JSON, iteratively (no recursion to blow)."""
    nodes = 0
    stack: list[tuple[Any, int, str]] = [(data, 1, prefix)]
    while stack:
        node, depth, path = stack.pop()
        if isinstance(node, dict):
            nodes += 1
            if depth > MAX_DEPTH:
                raise SizeError(path, f"the tree is deeper than {MAX_DEPTH} levels")
            if nodes > MAX_NODES:
                raise SizeError(path, f"the tree has more than {MAX_NODES} nodes")
            for key in ("and", "or"):
                children = node.get(key)
                if isinstance(children, list):
                    for i, child in enumerate(children):
                        stack.append((child, depth + 1, f"{path}.{key}[{i}]"))
            if "not" in node:
                stack.append((node["not"], depth + 1, f"{path}.not"))
        elif isinstance(node, list):
            for i, child in enumerate(node):
                stack.append((child, depth + 1, f"{path}[{i}]"))


class SizeError(ValueError):
    def __init__(self, path: str, message: str):
        super().__init__(message)
        self.path = path.lstrip(".")
        self.message = message


DeletedMode = Literal["exclude", "only", "include"]


class Selection(_Node):
    """Which contacts of the account: those that match any `include` selector (every
    contact when `include` is empty), no `exclude` selector, satisfy `filter` and whose
    deleted flag fits `deleted`. `{}` is every live contact. Every tag, funnel, stage,
    group, mailing and segment named anywhere must exist (a 422 at its path otherwise).
    Limits: 64 levels deep and 2,000 nodes in `filter`, 10,000 values in one list (a 422
    beyond). The operators are described with a field test's `op` (`FieldTest`)."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "include": [{"type": "tag", "tags": ["VIP", "newsletter"]}],
                    "exclude": [{"type": "group", "groups": ["Blacklist"]}],
                    "filter": {
                        "and": [
                            {"field": "age", "op": "between", "value": [25, 40]},
                            {
                                "event": {"type": "PURCHASE", "within_days": 30},
                                "agg": "count",
                                "op": "gte",
                                "value": 1,
                            },
                        ]
                    },
                }
            ]
        },
    )

    include: list[Selector] = Field(
        default_factory=list,
        max_length=MAX_NODES,
        description="A contact matching any of these is in; empty: every contact is.",
    )
    exclude: list[Selector] = Field(
        default_factory=list,
        max_length=MAX_NODES,
        description="A contact matching any of these is out.",
    )
    filter: Condition | None = Field(
        None,
        description="A tree of conditions every selected contact satisfies; null: no condition.",
    )
    deleted: DeletedMode = Field(
        "exclude",
        description="By the deleted flag (a soft delete): `exclude` live contacts only, "
        "`only` deleted ones only, `include` both.",
    )
    as_of: OffsetDatetime | None = Field(
        None,
        description="The moment relative tests (days, ages, birthdays, event windows) are "
        "measured from, ISO 8601 (UTC when it has no offset; a given offset decides the date "
        "that date fields compare with); null: the time of the request.",
    )

    @model_validator(mode="before")
    @classmethod
    def _limits(cls, data: Any) -> Any:
        if isinstance(data, dict) and "filter" in data:
            check_size(data["filter"], "filter")
        return data
