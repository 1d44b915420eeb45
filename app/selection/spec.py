"""The selection spec as pydantic models: the parse pass.

Parsing (this module) checks shapes; check.py turns the parsed spec into the checked tree
(tree.py), where every operator, operand and saved segment is checked; compile.py turns
that into SQL. Size limits are enforced on the raw JSON first, without recursion, so a
hostile tree never reaches a recursive validator.
"""

from typing import Annotated, Any, Literal

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
from app.selection.glossary import detail_operators, event_operators, field_table, operator_table
from app.selection.operators import MAX_VALUES, OPERATORS
from app.types import Int64, Number, OffsetDatetime, UTCDatetime, integer, text

MAX_DEPTH = 64
MAX_NODES = 2_000

# Both derived from their one registry (operators.py, fields.py), in its order.
Op = Literal[tuple(OPERATORS)]  # type: ignore[valid-type]
FieldName = Literal[tuple(FIELDS)]  # type: ignore[valid-type]


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
    op: Op = Field(json_schema_extra=detail_operators)
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
    op: Op = Field(json_schema_extra=event_operators)
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
