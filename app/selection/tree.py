"""The checked selection: an immutable, typed tree, made from the parsed spec by check.py.

Every node is a frozen dataclass. Each says which parsed node it is made from
(`parsed_from`) and how (`checked`, calling on the check pass for everything that can be
wrong: operators, operands, saved segments); everything wrong is a 422 there and then, so
the passes that read this tree (compile, the test oracle) never meet a user error. Names
are kept as their case-folded keys and, once the check pass has looked them up (one query
a kind for the whole request), with their ids (`ids`, None when names were not looked up),
which the compiler binds as values the planner sees; saved segments are resolved into their
own checked bodies (one object per segment, however often it is referred to).

A pass over the tree subclasses visitor.Visitor: it must handle every node kind listed
in KINDS, or it fails at import.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from app.names import name_key
from app.selection import spec as s
from app.selection.fields import FIELDS, FieldSpec
from app.selection.operators import Kind, Operator

if TYPE_CHECKING:
    from app.selection.check import Checking

KINDS: list[type[Node]] = []


class Node:
    """A node of the checked tree. Subclasses register themselves in KINDS."""

    parsed_from: ClassVar[type]
    visit_name: ClassVar[str]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.visit_name = "visit_" + "".join(
            f"_{ch.lower()}" if ch.isupper() else ch for ch in cls.__name__
        ).lstrip("_")
        KINDS.append(cls)

    @classmethod
    def checked(cls, parsed: Any, at: Checking, path: str) -> Node:
        raise NotImplementedError


def _keys(names: list[str]) -> tuple[str, ...]:
    return tuple(sorted({name_key(n) for n in names}))


# --- boolean structure --------------------------------------------------------------------


@dataclass(frozen=True)
class And(Node):
    """Every item holds; an empty And holds for everyone."""

    parsed_from = s.And
    items: tuple[Node, ...]

    @classmethod
    def checked(cls, parsed: s.And, at: Checking, path: str) -> And:
        return cls(at.each(parsed.and_, f"{path}.and"))


@dataclass(frozen=True)
class Or(Node):
    """Some item holds; an empty Or holds for nobody."""

    parsed_from = s.Or
    items: tuple[Node, ...]

    @classmethod
    def checked(cls, parsed: s.Or, at: Checking, path: str) -> Or:
        return cls(at.each(parsed.or_, f"{path}.or"))


@dataclass(frozen=True)
class Not(Node):
    parsed_from = s.Not
    item: Node

    @classmethod
    def checked(cls, parsed: s.Not, at: Checking, path: str) -> Not:
        return cls(at.condition(parsed.not_, f"{path}.not"))


# --- selectors ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TagSelector(Node):
    parsed_from = s.TagSelector
    keys: tuple[str, ...]
    match_all: bool = False
    ids: tuple[int, ...] | None = None  # the tags' ids, in the order of keys

    @classmethod
    def checked(cls, parsed: s.TagSelector, at: Checking, path: str) -> TagSelector:
        at.names("tag", parsed.tags, f"{path}.tags")
        keys = _keys(parsed.tags)
        return cls(keys, match_all=parsed.match == "all" and len(keys) > 1)


@dataclass(frozen=True)
class FunnelSelector(Node):
    parsed_from = s.FunnelSelector
    funnel: str
    stages: tuple[str, ...] | None
    funnel_id: int | None = None
    stage_ids: tuple[int, ...] | None = None  # in the order of stages

    @classmethod
    def checked(cls, parsed: s.FunnelSelector, at: Checking, path: str) -> FunnelSelector:
        at.references.add("funnel", parsed.funnel, f"{path}.funnel")
        at.names("stage", parsed.stages or [], f"{path}.stages", funnel=parsed.funnel)
        stages = _keys(parsed.stages) if parsed.stages else None
        return cls(name_key(parsed.funnel), stages)


MailingEvent = Literal["sent", "opened", "not_opened", "clicked", "bounced"]


@dataclass(frozen=True)
class MailingSelector(Node):
    parsed_from = s.MailingSelector
    mailings: tuple[int, ...]
    event: MailingEvent

    @classmethod
    def checked(cls, parsed: s.MailingSelector, at: Checking, path: str) -> MailingSelector:
        at.names("mailing", parsed.mailings, f"{path}.mailings")
        return cls(tuple(sorted(set(parsed.mailings))), parsed.event)


@dataclass(frozen=True)
class GroupSelector(Node):
    parsed_from = s.GroupSelector
    keys: tuple[str, ...]
    ids: tuple[int, ...] | None = None  # the groups' ids, in the order of keys

    @classmethod
    def checked(cls, parsed: s.GroupSelector, at: Checking, path: str) -> GroupSelector:
        at.names("group", parsed.groups, f"{path}.groups")
        return cls(_keys(parsed.groups))


@dataclass(frozen=True, eq=False)
class SavedSegment:
    """A saved segment, checked: its include, exclude and filter (its `deleted` and
    `as_of` are the referring selection's)."""

    key: str
    body: Body


@dataclass(frozen=True)
class SegmentSelector(Node):
    parsed_from = s.SegmentSelector
    segments: tuple[SavedSegment, ...]

    @classmethod
    def checked(cls, parsed: s.SegmentSelector, at: Checking, path: str) -> SegmentSelector:
        return cls(at.segments(_keys(parsed.segments), f"{path}.segments"))


# --- tests --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldTest(Node):
    parsed_from = s.FieldTest
    field: FieldSpec
    op: Operator
    operand: Any

    @classmethod
    def checked(cls, parsed: s.FieldTest, at: Checking, path: str) -> FieldTest:
        field = FIELDS[parsed.field]
        op, operand = at.test(parsed, field.kind, path, field.choices, field.extra_ops)
        return cls(field, op, operand)


DETAIL_KINDS: dict[str, Kind] = {"string": "text", "number": "number", "date": "date"}


@dataclass(frozen=True)
class DetailTest(Node):
    """A test on the contact's detail `name`, read as `kind` (a value that does not parse
    as a number or date is no value)."""

    parsed_from = s.DetailTest
    name: str
    kind: Kind
    op: Operator
    operand: Any

    @classmethod
    def checked(cls, parsed: s.DetailTest, at: Checking, path: str) -> DetailTest:
        kind = DETAIL_KINDS[parsed.as_]
        op, operand = at.test(parsed, kind, path)
        return cls(parsed.detail, kind, op, operand)


@dataclass(frozen=True)
class EventFilter:
    """Which of the contact's events count; None: no condition."""

    type: str | None = None
    within_days: int | None = None
    from_: datetime | None = None
    to: datetime | None = None
    products_contains: str | None = None
    value_gte: float | None = None
    value_lte: float | None = None


Aggregate = Literal["count", "sum", "max", "last_at"]
AGGREGATE_KINDS: dict[str, Kind] = {
    "count": "number",
    "sum": "number",
    "max": "number",
    "last_at": "datetime",
}


@dataclass(frozen=True)
class EventTest(Node):
    parsed_from = s.EventTest
    events: EventFilter
    agg: Aggregate
    op: Operator
    operand: Any

    @classmethod
    def checked(cls, parsed: s.EventTest, at: Checking, path: str) -> EventTest:
        op, operand = at.test(parsed, AGGREGATE_KINDS[parsed.agg], path)
        f = parsed.event
        if f.from_ and f.to and f.from_ > f.to:
            at.error(f"{path}.event.to", "'to' is before 'from'")
        events = EventFilter(
            f.type, f.within_days, f.from_, f.to, f.products_contains, f.value_gte, f.value_lte
        )
        return cls(events, parsed.agg, op, operand)


# --- the whole selection ------------------------------------------------------------------


@dataclass(frozen=True)
class Body:
    """Contacts matching some include selector (everyone when there is none), no exclude
    selector, and the filter (when there is one)."""

    include: tuple[Node, ...] = ()
    exclude: tuple[Node, ...] = ()
    filter: Node | None = None


DeletedMode = Literal["exclude", "only", "include"]


@dataclass(frozen=True)
class Selection:
    body: Body
    deleted: DeletedMode = "exclude"
    as_of: datetime | None = None


BY_PARSED: dict[type, type[Node]] = {kind.parsed_from: kind for kind in KINDS}
assert set(BY_PARSED) == set(s.CONDITION_KINDS), "every parsed condition has one tree node"
