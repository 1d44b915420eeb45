"""A plain-Python evaluator of the selection spec, written from the contract
(`../shared/contract.md`, "The selection spec"), for the differential test of the compiler.

It works on raw spec JSON (no pydantic models, nothing from `app.selection`) over in-memory
contacts, one contact at a time, the obvious way. The only things taken from the app are the
detail parsing rules `app.db.parse_number` / `parse_date`, which define what "parses as a
number / date" means.

Ignoring case is `str.lower` on both sides (the contract's 'ŁÓDŹ' equals 'łódź'); data with
characters whose lower-casing is context dependent (final sigma, dotted capital I) is tested
separately in test_differential.py.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from app.db import parse_date, parse_number

TEXT_FIELDS = {
    "email",
    "email_domain",
    "first_name",
    "last_name",
    "phone",
    "company",
    "city",
    "country",
}
ENUM_FIELDS = {"sex", "state"}
NUMBER_FIELDS = {"score", "age", "tag_count"}
DATE_FIELDS = {"birth_date"}
DATETIME_FIELDS = {"created_at", "updated_at"}
BOOL_FIELDS = {"email_opt_in", "phone_opt_in", "email_valid"}

# Operators that a contact with no value matches (besides is_empty).
NULL_MATCHES = {"is_empty", "ne", "not_in", "not_contains"}
NEGATIONS = {"ne": "eq", "not_in": "in", "not_contains": "contains"}


class UnknownSegment(LookupError):
    pass


def fold(text: str) -> str:
    return text.lower()


def name_key(name: str) -> str:
    return name.strip().lower()


def parse_time(value: str) -> datetime:
    """An ISO 8601 date-time (UTC when no offset) or a bare date (its midnight UTC)."""
    if len(value) == 10:
        d = date.fromisoformat(value)
        return datetime(d.year, d.month, d.day, tzinfo=UTC)
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_as_of(value: str) -> datetime:
    """as_of keeps an offset it is given: "the date of as_of" is the date where it was said
    (2025-12-31T01:30:00+02:00 is the 31st); no offset means UTC."""
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def minus_days(moment, days: int):
    """moment − days, or None below the calendar (then nothing is older, everything newer)."""
    try:
        return moment - timedelta(days=days)
    except OverflowError:
        return None


def age_at(birth: date, today: date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def next_birthday(birth: date, today: date) -> date:
    """The first birthday on or after today; 29 February is 28 February in other years."""
    for year in (today.year, today.year + 1):
        day = birth.day
        if birth.month == 2 and birth.day == 29 and not calendar.isleap(year):
            day = 28
        candidate = date(year, birth.month, day)
        if candidate >= today:
            return candidate
    raise AssertionError("unreachable")


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


@dataclass
class Ctx:
    as_of: datetime

    @property
    def today(self) -> date:
        return self.as_of.date()


# --- operands --------------------------------------------------------------------------


def parse_scalar(kind: str, value: Any) -> Any:
    if kind == "date":
        return date.fromisoformat(value)
    if kind == "datetime":
        return parse_time(value)
    return value


def parse_operand(kind: str, op: str, value: Any) -> Any:
    if op in ("is_empty", "is_not_empty"):
        return None
    if op in ("within_last_days", "older_than_days", "birthday_within_days"):
        return value
    if op in ("contains", "not_contains", "starts_with", "ends_with"):
        return value
    if op in ("in", "not_in", "between"):
        return [parse_scalar(kind, v) for v in value]
    return parse_scalar(kind, value)


# --- one value -------------------------------------------------------------------------


def positive(kind: str, op: str, operand: Any, value: Any, ctx: Ctx) -> bool:
    """A positive operator on a present value."""
    text = kind in ("text", "enum")
    if op in ("contains", "starts_with", "ends_with"):
        v, o = fold(value), fold(operand)
        return {"contains": o in v, "starts_with": v.startswith(o), "ends_with": v.endswith(o)}[op]
    if op == "eq":
        return fold(value) == fold(operand) if text else value == operand
    if op == "in":
        return any(positive(kind, "eq", o, value, ctx) for o in operand)
    if op == "lt":
        return value < operand
    if op == "lte":
        return value <= operand
    if op == "gt":
        return value > operand
    if op == "gte":
        return value >= operand
    if op == "between":
        return operand[0] <= value <= operand[1]
    if op in ("within_last_days", "older_than_days"):
        now = ctx.today if kind == "date" else ctx.as_of
        low = minus_days(now, operand)
        if op == "within_last_days":
            return (low is None or low <= value) and value <= now
        return low is not None and value < low
    if op == "birthday_within_days":
        return (next_birthday(value, ctx.today) - ctx.today).days <= operand
    raise AssertionError(op)


def check_value(kind: str, op: str, operand: Any, value: Any, ctx: Ctx) -> bool:
    """One value (None or an empty text: no value) against one operator."""
    if kind in ("text", "enum") and value == "":
        value = None
    if value is None:
        return op in NULL_MATCHES
    if op == "is_empty":
        return False
    if op == "is_not_empty":
        return True
    if op in NEGATIONS:
        return not positive(kind, NEGATIONS[op], operand, value, ctx)
    return positive(kind, op, operand, value, ctx)


def check_values(kind: str, op: str, operand: Any, values: list, ctx: Ctx) -> bool:
    """A set of values (owners): positive operators when any value matches, negative ones
    when none does, is_empty when there is none."""
    present = [v for v in values if v not in (None, "")]
    if op == "is_empty":
        return not present
    if op == "is_not_empty":
        return bool(present)
    if op in NEGATIONS:
        return not any(positive(kind, NEGATIONS[op], operand, v, ctx) for v in present)
    return any(positive(kind, op, operand, v, ctx) for v in present)


# --- the spec --------------------------------------------------------------------------


class World:
    """The contacts of one account and its saved segments (name → stored spec JSON)."""

    def __init__(self, contacts: list[Contact], segments: dict[str, dict] | None = None):
        self.contacts = contacts
        self.segments = {name_key(k): v for k, v in (segments or {}).items()}

    def select(self, spec: dict) -> set[int]:
        ctx = Ctx(as_of=parse_as_of(spec["as_of"]))
        mode = spec.get("deleted", "exclude")
        out = set()
        for c in self.contacts:
            if (mode == "exclude" and c.deleted) or (mode == "only" and not c.deleted):
                continue
            if self.body(c, spec, ctx):
                out.add(c.id)
        return out

    def body(self, c: Contact, spec: dict, ctx: Ctx) -> bool:
        include = spec.get("include") or []
        if include and not any(self.holds(c, s, ctx) for s in include):
            return False
        if any(self.holds(c, s, ctx) for s in spec.get("exclude") or []):
            return False
        return spec.get("filter") is None or self.holds(c, spec["filter"], ctx)

    def holds(self, c: Contact, node: dict, ctx: Ctx) -> bool:
        if "and" in node:
            return all(self.holds(c, n, ctx) for n in node["and"])
        if "or" in node:
            return any(self.holds(c, n, ctx) for n in node["or"])
        if "not" in node:
            return not self.holds(c, node["not"], ctx)
        if "type" in node:
            return self.selector(c, node, ctx)
        if "field" in node:
            return self.field_test(c, node, ctx)
        if "detail" in node:
            return self.detail_test(c, node, ctx)
        if "event" in node:
            return self.event_test(c, node, ctx)
        raise AssertionError(node)

    # selectors

    def selector(self, c: Contact, node: dict, ctx: Ctx) -> bool:
        kind = node["type"]
        if kind == "tag":
            wanted = {name_key(n) for n in node["tags"]}
            have = {name_key(n) for n in c.tags}
            if node.get("match", "any") == "all":
                return wanted <= have
            return bool(wanted & have)
        if kind == "funnel":
            stage = next(
                (s for f, s in c.funnels.items() if name_key(f) == name_key(node["funnel"])), None
            )
            if stage is None:
                return False
            stages = node.get("stages")
            return stages is None or name_key(stage) in {name_key(s) for s in stages}
        if kind == "mailing":
            event = node.get("event", "sent")
            for mailing_id in node["mailings"]:
                r = c.mailings.get(mailing_id)
                if r is None:
                    continue
                if (
                    event == "sent"
                    or (event == "opened" and r.opened)
                    or (event == "not_opened" and not r.opened)
                    or (event == "clicked" and r.clicked)
                    or (event == "bounced" and r.bounced)
                ):
                    return True
            return False
        if kind == "group":
            return bool({name_key(n) for n in node["groups"]} & {name_key(n) for n in c.groups})
        if kind == "segment":
            for name in node["segments"]:
                saved = self.segments.get(name_key(name))
                if saved is None:
                    raise UnknownSegment(name)
                if self.body(c, saved, ctx):
                    return True
            return False
        raise AssertionError(kind)

    # tests

    def field_test(self, c: Contact, node: dict, ctx: Ctx) -> bool:
        name, op, raw = node["field"], node["op"], node.get("value")
        if name == "owner":
            return check_values("text", op, raw, c.owners, ctx)
        if name in TEXT_FIELDS:
            kind = "text"
            value = c.email.split("@", 1)[1] if name == "email_domain" else getattr(c, name)
        elif name in ENUM_FIELDS:
            kind, value = "enum", getattr(c, name)
        elif name == "age":
            kind = "number"
            value = age_at(c.birth_date, ctx.today) if c.birth_date else None
        elif name == "tag_count":
            kind, value = "number", len({name_key(t) for t in c.tags})
        elif name in NUMBER_FIELDS:
            kind, value = "number", getattr(c, name)
        elif name in DATE_FIELDS:
            kind, value = "date", getattr(c, name)
        elif name in DATETIME_FIELDS:
            kind, value = "datetime", getattr(c, name)
        elif name in BOOL_FIELDS:
            kind, value = "bool", getattr(c, name)
        else:
            raise AssertionError(name)
        return check_value(kind, op, parse_operand(kind, op, raw), value, ctx)

    def detail_test(self, c: Contact, node: dict, ctx: Ctx) -> bool:
        as_ = node.get("as", "string")
        raw = c.details.get(node["detail"])
        kind, value = {
            "string": ("text", raw),
            "number": ("number", parse_number(raw)),
            "date": ("date", parse_date(raw)),
        }[as_]
        op = node["op"]
        return check_value(kind, op, parse_operand(kind, op, node.get("value")), value, ctx)

    def event_test(self, c: Contact, node: dict, ctx: Ctx) -> bool:
        f = node["event"]
        events = []
        for e in c.events:
            if "type" in f and e.type != f["type"]:
                continue
            if "within_days" in f:
                low = minus_days(ctx.as_of, f["within_days"])
                if e.occurred_at > ctx.as_of or (low is not None and e.occurred_at < low):
                    continue
            if "from" in f and e.occurred_at < parse_time(f["from"]):
                continue
            if "to" in f and e.occurred_at > parse_time(f["to"]):
                continue
            if "products_contains" in f and (
                e.products is None or fold(f["products_contains"]) not in fold(e.products)
            ):
                continue
            if "value_gte" in f and (e.value is None or e.value < f["value_gte"]):
                continue
            if "value_lte" in f and (e.value is None or e.value > f["value_lte"]):
                continue
            events.append(e)
        agg = node.get("agg", "count")
        if "op" not in node and "value" not in node:
            op, raw = "gte", 1
        else:
            op, raw = node.get("op", "gte"), node.get("value")
        values = [e.value for e in events if e.value is not None]
        kind = "datetime" if agg == "last_at" else "number"
        value = {
            "count": lambda: len(events),
            "sum": lambda: sum(values) if values else 0,
            "max": lambda: max(values) if values else None,
            "last_at": lambda: max(e.occurred_at for e in events) if events else None,
        }[agg]()
        return check_value(kind, op, parse_operand(kind, op, raw), value, ctx)
