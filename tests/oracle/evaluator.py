"""The test oracle: a plain-Python evaluation of a checked selection over in-memory
contacts, one contact at a time, the obvious way — for the differential test of the SQL
compiler (test_differential.py).

It is a pass over the checked tree (app.selection.tree), like the compiler: the same check
pass (parsing, operands, saved segments) feeds both, and each operator's Python twin comes
from the operator table (app.selection.operators), next to its SQL. Everything else — what
a selector, a field, a detail or an event aggregate means — is read from the contract here,
independently of compile.py. Detail parsing is `app.db.parse_number` / `parse_date`, which
define what "parses as a number / date" means.

Ignoring case is operators.fold_text on both sides; data with characters whose lower-casing
is context dependent (final sigma, dotted capital I) is tested separately in
test_differential.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from app.db import parse_date, parse_number
from app.names import name_key
from app.selection import tree
from app.selection.check import check_selection, parse_selection
from app.selection.fields import FIELDS
from app.selection.operators import fold_text, holds, holds_for_any, shift
from app.selection.visitor import Visitor


def parse_time(value: str) -> datetime:
    """An ISO 8601 date-time (UTC when no offset) or a bare date (its midnight UTC)."""
    if len(value) == 10:
        d = date.fromisoformat(value)
        return datetime(d.year, d.month, d.day, tzinfo=UTC)
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def age_at(birth: date, today: date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


@dataclass
class Event:
    type: str
    occurred_at: datetime
    value: float | None = None
    products: str | None = None


@dataclass
class Recipient:
    opened: bool = False
    clicked: bool = False
    bounced: bool = False


@dataclass
class Contact:
    id: int
    email: str
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    company: str | None = None
    city: str | None = None
    country: str | None = None
    birth_date: date | None = None
    sex: str = "unknown"
    score: int = 0
    state: str = "PROSPECT"
    email_opt_in: bool = False
    phone_opt_in: bool = False
    email_valid: bool = True
    deleted: bool = False
    created_at: datetime = datetime(1970, 1, 1, tzinfo=UTC)
    updated_at: datetime = datetime(1970, 1, 1, tzinfo=UTC)
    tags: list[str] = field(default_factory=list)
    details: dict[str, str] = field(default_factory=dict)
    owners: list[str] = field(default_factory=list)
    funnels: dict[str, str] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    mailings: dict[int, Recipient] = field(default_factory=dict)

    @classmethod
    def from_api(cls, data: dict) -> Contact:
        """A contact as GET /v1/contacts/{id} or a preview answers it."""
        birth = data.get("birth_date")
        return cls(
            id=data["id"],
            email=data["email"],
            first_name=data.get("first_name"),
            last_name=data.get("last_name"),
            phone=data.get("phone"),
            company=data.get("company"),
            city=data.get("city"),
            country=data.get("country"),
            birth_date=date.fromisoformat(birth) if birth else None,
            sex=data["sex"],
            score=data["score"],
            state=data["state"],
            email_opt_in=data["email_opt_in"],
            phone_opt_in=data["phone_opt_in"],
            email_valid=data["email_valid"],
            deleted=data["deleted"],
            created_at=parse_time(data["created_at"]),
            updated_at=parse_time(data["updated_at"]),
            tags=list(data["tags"]),
            details=dict(data["details"]),
            owners=list(data["owners"]),
            funnels=dict(data["funnels"]),
            groups=list(data["groups"]),
        )


@dataclass(frozen=True)
class Clock:
    as_of: datetime

    @property
    def today(self) -> date:
        return self.as_of.date()


# How the oracle reads each field of a contact; a plain column is its attribute.
SPECIAL_FIELDS: dict[str, Callable[[Contact, Clock], Any]] = {
    "email_domain": lambda c, clock: c.email.split("@", 1)[1],
    "age": lambda c, clock: age_at(c.birth_date, clock.today) if c.birth_date else None,
    "tag_count": lambda c, clock: len({name_key(t) for t in c.tags}),
    "owner": lambda c, clock: c.owners,  # a set of values
}
assert {n for n, f in FIELDS.items() if f.shape != "column"} == set(SPECIAL_FIELDS)


def field_value(name: str, c: Contact, clock: Clock) -> Any:
    special = SPECIAL_FIELDS.get(name)
    return special(c, clock) if special else getattr(c, name)


class Catalog:
    """What exists in a World, by kind: tag, group and funnel names, (funnel, stage) name
    pairs, mailing ids (check.NameSource)."""

    def __init__(self, given: dict[str, set]):
        self.given = given

    def _keys(self, kind: str) -> dict:
        def key(name):
            if kind == "mailing":
                return name
            if kind == "stage":
                return (name_key(name[0]), name_key(name[1]))
            return name_key(name)

        return {key(n): n for n in self.given.get(kind, set())}

    def existing(self, kind: str, keys) -> dict:
        """{key: id}; the ids are positions (the oracle reads keys, never ids)."""
        known = sorted(self._keys(kind), key=str)
        return {key: known.index(key) + 1 for key in keys if key in known}

    def names(self, kind: str, funnel: str | None = None) -> list[str]:
        if kind == "stage":
            return [s for (f, s) in self.given.get("stage", set()) if name_key(f) == funnel]
        return [str(n) for n in self.given.get(kind, set())]


class World:
    """The contacts of one account, its saved segments (name → stored spec JSON) and what
    else exists in it (`catalog`: see Catalog; None: names are not checked)."""

    def __init__(
        self,
        contacts: list[Contact],
        segments: dict[str, dict] | None = None,
        catalog: dict[str, set] | None = None,
    ):
        self.contacts = contacts
        self.segments = {name_key(k): v for k, v in (segments or {}).items()}
        self.catalog = Catalog(catalog) if catalog is not None else None

    def select(self, spec: dict) -> set[int]:
        """The ids the spec selects (Invalid, as the API's 422, for a bad spec)."""
        parsed = parse_selection(spec, prefix="")
        checked = check_selection(parsed, self.segments.get, self.catalog)
        oracle = Oracle(Clock(as_of=checked.as_of or datetime.now(UTC)))
        mode = checked.deleted
        return {
            c.id
            for c in self.contacts
            if not ((mode == "exclude" and c.deleted) or (mode == "only" and not c.deleted))
            and oracle.body(checked.body, c)
        }


MAILING_EVENTS: dict[str, Callable[[Recipient], bool]] = {
    "sent": lambda r: True,
    "opened": lambda r: r.opened,
    "not_opened": lambda r: not r.opened,
    "clicked": lambda r: r.clicked,
    "bounced": lambda r: r.bounced,
}


class Oracle(Visitor[bool]):
    """Does a checked node hold for one contact?"""

    def __init__(self, clock: Clock):
        self.clock = clock

    def body(self, body: tree.Body, c: Contact) -> bool:
        if body.include and not any(self.visit(n, c) for n in body.include):
            return False
        if any(self.visit(n, c) for n in body.exclude):
            return False
        return body.filter is None or self.visit(body.filter, c)

    def visit_and(self, node: tree.And, c: Contact) -> bool:
        return all(self.visit(n, c) for n in node.items)

    def visit_or(self, node: tree.Or, c: Contact) -> bool:
        return any(self.visit(n, c) for n in node.items)

    def visit_not(self, node: tree.Not, c: Contact) -> bool:
        return not self.visit(node.item, c)

    def visit_tag_selector(self, node: tree.TagSelector, c: Contact) -> bool:
        have = {name_key(n) for n in c.tags}
        return set(node.keys) <= have if node.match_all else bool(set(node.keys) & have)

    def visit_funnel_selector(self, node: tree.FunnelSelector, c: Contact) -> bool:
        stage = next((s for f, s in c.funnels.items() if name_key(f) == node.funnel), None)
        if stage is None:
            return False
        return node.stages is None or name_key(stage) in node.stages

    def visit_mailing_selector(self, node: tree.MailingSelector, c: Contact) -> bool:
        happened = MAILING_EVENTS[node.event]
        return any(m in c.mailings and happened(c.mailings[m]) for m in node.mailings)

    def visit_group_selector(self, node: tree.GroupSelector, c: Contact) -> bool:
        return bool(set(node.keys) & {name_key(n) for n in c.groups})

    def visit_segment_selector(self, node: tree.SegmentSelector, c: Contact) -> bool:
        return any(self.body(segment.body, c) for segment in node.segments)

    def visit_field_test(self, node: tree.FieldTest, c: Contact) -> bool:
        value = field_value(node.field.name, c, self.clock)
        if node.field.shape == "owner":
            return holds_for_any(node.op, node.field.kind, value, node.operand, self.clock)
        return holds(node.op, node.field.kind, value, node.operand, self.clock)

    def visit_detail_test(self, node: tree.DetailTest, c: Contact) -> bool:
        raw = c.details.get(node.name)
        value = {"text": raw, "number": parse_number(raw), "date": parse_date(raw)}[node.kind]
        return holds(node.op, node.kind, value, node.operand, self.clock)

    def visit_event_test(self, node: tree.EventTest, c: Contact) -> bool:
        events = [e for e in c.events if self.counts(node.events, e)]
        values = [e.value for e in events if e.value is not None]
        value = {
            "count": lambda: len(events),
            "sum": lambda: sum(values) if values else 0,
            "max": lambda: max(values) if values else None,
            "last_at": lambda: max(e.occurred_at for e in events) if events else None,
        }[node.agg]()
        kind = tree.AGGREGATE_KINDS[node.agg]
        return holds(node.op, kind, value, node.operand, self.clock)

    def counts(self, f: tree.EventFilter, e: Event) -> bool:
        """Does the event pass the test's event filter?"""
        as_of = self.clock.as_of
        if f.type is not None and e.type != f.type:
            return False
        if f.within_days is not None:
            low = shift(as_of, -f.within_days)
            if e.occurred_at > as_of or (low is not None and e.occurred_at < low):
                return False
        if (f.from_ is not None and e.occurred_at < f.from_) or (
            f.to is not None and e.occurred_at > f.to
        ):
            return False
        if f.products_contains is not None and (
            e.products is None or fold_text(f.products_contains) not in fold_text(e.products)
        ):
            return False
        if f.value_gte is not None and (e.value is None or e.value < f.value_gte):
            return False
        return f.value_lte is None or (e.value is not None and e.value <= f.value_lte)
