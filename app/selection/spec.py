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


class TagSelector(_Node):
    type: Literal["tag"]
    tags: list[Name] = Field(min_length=1, max_length=MAX_VALUES)
    match: Literal["any", "all"] = "any"


class FunnelSelector(_Node):
    type: Literal["funnel"]
    funnel: Name
    stages: list[Name] | None = Field(default=None, min_length=1, max_length=MAX_VALUES)


class MailingSelector(_Node):
    type: Literal["mailing"]
    mailings: list[Int64] = Field(min_length=1, max_length=MAX_VALUES)
    event: Literal["sent", "opened", "not_opened", "clicked", "bounced"] = "sent"


class GroupSelector(_Node):
    type: Literal["group"]
    groups: list[Name] = Field(min_length=1, max_length=MAX_VALUES)


class SegmentSelector(_Node):
    type: Literal["segment"]
    segments: list[Name] = Field(min_length=1, max_length=100)


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
    field: FieldName
    op: Op
    value: Any = None


class DetailTest(_Node):
    detail: text(255, min_length=1)
    op: Op
    value: Any = None
    as_: Literal["string", "number", "date"] = Field(default="string", alias="as")


class EventFilter(_Node):
    type: text(64, min_length=1) | None = None
    within_days: integer(ge=0, le=1_000_000) | None = None
    from_: UTCDatetime | None = Field(default=None, alias="from")
    to: UTCDatetime | None = None
    products_contains: text(1000) | None = None
    value_gte: Number | None = None
    value_lte: Number | None = None


class EventTest(_Node):
    """Aggregates the contact's matching events and tests the aggregate:
    `{"event": {…}, "agg": "count", "op": "gte", "value": 1}` is "at least one such event",
    `… "op": "eq", "value": 0` "none". `agg` and `op` are required: a silent default on an
    aggregate hides mistakes."""

    event: EventFilter
    agg: Literal["count", "sum", "max", "last_at"]
    op: Op
    value: Any = None


class And(_Node):
    and_: list["Condition"] = Field(alias="and", max_length=MAX_NODES)


class Or(_Node):
    or_: list["Condition"] = Field(alias="or", max_length=MAX_NODES)


class Not(_Node):
    not_: "Condition" = Field(alias="not")


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
    """Contacts matching any include selector (all when none), no exclude selector,
    the filter, and the deleted mode."""

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

    include: list[Selector] = Field(default_factory=list, max_length=MAX_NODES)
    exclude: list[Selector] = Field(default_factory=list, max_length=MAX_NODES)
    filter: Condition | None = None
    deleted: DeletedMode = "exclude"
    as_of: OffsetDatetime | None = None

    @model_validator(mode="before")
    @classmethod
    def _limits(cls, data: Any) -> Any:
        if isinstance(data, dict) and "filter" in data:
            check_size(data["filter"], "filter")
        return data
