"""From a checked selection to ONE set-based SELECT of contact ids.

One function per node kind, dispatched by `match` with an exhaustive default. Every
predicate this module returns is two-valued (never NULL), so NOT is an exact complement.
Shapes chosen for speed: selectors and set tests are `id IN (SELECT contact_id …)`
semi-joins on link-table indexes; aggregates are grouped before they are joined
(`id IN (SELECT contact_id … GROUP BY contact_id HAVING …)`); sibling tag/group/mailing
selectors in an OR merge into one semi-join.
"""

import calendar
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from app import tables as t
from app.errors import Invalid
from app.names import name_key
from app.selection import spec as s
from app.selection.fields import FIELDS, ExactNumber, email_domain, fold, month_day

c = t.contacts
POSITIVE = {
    "eq",
    "in",
    "contains",
    "starts_with",
    "ends_with",
    "lt",
    "lte",
    "gt",
    "gte",
    "between",
    "within_last_days",
    "older_than_days",
    "birthday_within_days",
}
NEGATIVE = {"ne": "eq", "not_in": "in", "not_contains": "contains"}
LOWERCASE_STORED = {"email", "email_domain", "owner"}
MAX_SEGMENT_DEPTH = 16


@dataclass
class Context:
    account_id: int
    as_of: datetime
    segments: dict[str, s.Selection] = field(default_factory=dict)
    _stack: list[str] = field(default_factory=list)

    @property
    def today(self) -> date:
        return self.as_of.date()


# --- the selection ----------------------------------------------------------------------


def selection_where(sel: s.Selection, ctx: Context) -> ColumnElement[bool]:
    deleted = {
        "exclude": c.c.deleted.is_(sa.false()),
        "only": c.c.deleted.is_(sa.true()),
        "include": sa.true(),
    }[sel.deleted]
    return sa.and_(c.c.account_id == ctx.account_id, deleted, _body(sel, ctx))


def compile_selection(sel: s.Selection, ctx: Context) -> sa.Select:
    """SELECT contacts.id of every selected contact."""
    return sa.select(c.c.id).where(selection_where(sel, ctx))


def count_query(sel: s.Selection, ctx: Context) -> sa.Select:
    return sa.select(sa.func.count()).select_from(c).where(selection_where(sel, ctx))


def _body(sel: s.Selection, ctx: Context) -> ColumnElement[bool]:
    include = _any_of(sel.include, ctx) if sel.include else sa.true()
    exclude = sa.not_(_any_of(sel.exclude, ctx)) if sel.exclude else sa.true()
    condition = compile_condition(sel.filter, ctx) if sel.filter is not None else sa.true()
    return sa.and_(include, exclude, condition)


def compile_condition(node: Any, ctx: Context) -> ColumnElement[bool]:
    match node:
        case s.And():
            return balanced(sa.and_, [compile_condition(n, ctx) for n in node.and_], sa.true())
        case s.Or():
            return _any_of(node.or_, ctx)
        case s.Not():
            return sa.not_(compile_condition(node.not_, ctx))
        case s.FieldTest():
            return _field_test(node, ctx)
        case s.DetailTest():
            return _detail_test(node, ctx)
        case s.EventTest():
            return _event_test(node, ctx)
        case s.TagSelector():
            return _tag_selector(node, ctx)
        case s.FunnelSelector():
            return _funnel_selector(node, ctx)
        case s.MailingSelector():
            return _mailing_selector(node, ctx)
        case s.GroupSelector():
            return _group_selector(node, ctx)
        case s.SegmentSelector():
            return _segment_selector(node, ctx)
        case _:
            raise AssertionError(f"unknown condition node {type(node).__name__}")


def _any_of(nodes: list, ctx: Context) -> ColumnElement[bool]:
    """OR of nodes; an empty OR is false. Sibling selectors of one kind merge into one
    semi-join (one index probe with `IN (…)` instead of one per selector)."""
    merged = _merge_siblings(nodes)
    return balanced(sa.or_, [compile_condition(n, ctx) for n in merged], sa.false())


def balanced(op, items: list, empty) -> ColumnElement[bool]:
    """AND/OR of many items as a balanced tree of parenthesised groups: SQLite parses a
    flat chain as a left-deep tree and refuses one deeper than 1,000."""
    if not items:
        return empty
    if len(items) <= 32:
        return op(*items)
    middle = len(items) // 2
    return op(
        Paren(balanced(op, items[:middle], empty)),
        Paren(balanced(op, items[middle:], empty)),
    )


class Paren(ColumnElement):
    """A parenthesised boolean that AND/OR will not flatten into their chain."""

    type = sa.Boolean()
    inherit_cache = True
    _traverse_internals = [("inner", InternalTraversal.dp_clauseelement)]

    def __init__(self, inner: ColumnElement):
        self.inner = inner


@compiles(Paren)
def _paren(element: Paren, compiler, **kw) -> str:
    return f"({compiler.process(element.inner, **kw)})"


def _merge_siblings(nodes: list) -> list:
    tags: list[str] = []
    groups: list[str] = []
    mailings: dict[str, list[int]] = {}
    rest = []
    for node in nodes:
        if isinstance(node, s.TagSelector) and (node.match == "any" or len(node.tags) == 1):
            tags += node.tags
        elif isinstance(node, s.GroupSelector):
            groups += node.groups
        elif isinstance(node, s.MailingSelector):
            mailings.setdefault(node.event, []).extend(node.mailings)
        else:
            rest.append(node)
    out = []
    if tags:
        out.append(s.TagSelector(type="tag", tags=tags, match="any"))
    if groups:
        out.append(s.GroupSelector(type="group", groups=groups))
    for event, ids in mailings.items():
        out.append(s.MailingSelector(type="mailing", mailings=ids, event=event))
    return out + rest


class Member(ColumnElement):
    """`contacts.id IN (subquery)`, a semi-join; negated, `NOT EXISTS (… correlated)`, an
    anti-join. PostgreSQL never turns NOT IN into an anti-join, and once the subquery's
    rows outgrow work_mem it scans them again for every contact (a count that took 30 s)."""

    type = sa.Boolean()
    inherit_cache = True
    _traverse_internals = [
        ("subquery", InternalTraversal.dp_clauseelement),
        ("negated", InternalTraversal.dp_boolean),
    ]

    def __init__(self, subquery: sa.Select, negated: bool = False):
        self.subquery = subquery
        self.negated = negated

    def _negate(self) -> "Member":
        return Member(self.subquery, not self.negated)


@compiles(Member)
def _member_sql(element: Member, compiler, **kw) -> str:
    if not element.negated:
        return compiler.process(c.c.id.in_(element.subquery), **kw)
    sub = element.subquery
    correlated = sub.where(sub.selected_columns[0] == c.c.id).correlate(c)
    return compiler.process(sa.not_(correlated.exists()), **kw)


def _member(subquery: sa.Select) -> ColumnElement[bool]:
    return Member(subquery)


def _keys(names: list[str]) -> list[str]:
    return sorted({name_key(n) for n in names})


# --- selectors --------------------------------------------------------------------------


def _tag_ids(keys: list[str], ctx: Context) -> sa.Select:
    return sa.select(t.tags.c.id).where(
        t.tags.c.account_id == ctx.account_id, t.tags.c.name_key.in_(keys)
    )


def _tag_selector(node: s.TagSelector, ctx: Context) -> ColumnElement[bool]:
    keys = _keys(node.tags)
    ct = t.contact_tags
    having = sa.select(ct.c.contact_id).where(
        ct.c.account_id == ctx.account_id, ct.c.tag_id.in_(_tag_ids(keys, ctx))
    )
    if node.match == "all" and len(keys) > 1:
        having = having.group_by(ct.c.contact_id).having(sa.func.count() == len(keys))
    return _member(having)


def _funnel_selector(node: s.FunnelSelector, ctx: Context) -> ColumnElement[bool]:
    cf = t.contact_funnels
    funnel_ids = sa.select(t.funnels.c.id).where(
        t.funnels.c.account_id == ctx.account_id, t.funnels.c.name_key == name_key(node.funnel)
    )
    query = sa.select(cf.c.contact_id).where(
        cf.c.account_id == ctx.account_id, cf.c.funnel_id.in_(funnel_ids)
    )
    if node.stages:
        stage_ids = sa.select(t.stages.c.id).where(
            t.stages.c.account_id == ctx.account_id,
            t.stages.c.funnel_id.in_(funnel_ids),
            t.stages.c.name_key.in_(_keys(node.stages)),
        )
        query = query.where(cf.c.stage_id.in_(stage_ids))
    return _member(query)


def _mailing_selector(node: s.MailingSelector, ctx: Context) -> ColumnElement[bool]:
    r = t.mailing_recipients
    query = sa.select(r.c.contact_id).where(
        r.c.account_id == ctx.account_id, r.c.mailing_id.in_(sorted(set(node.mailings)))
    )
    event = {
        "sent": sa.true(),
        "opened": r.c.opened_at.is_not(None),
        "not_opened": r.c.opened_at.is_(None),
        "clicked": r.c.clicked_at.is_not(None),
        "bounced": r.c.bounced.is_(sa.true()),
    }[node.event]
    return _member(query.where(event))


def _group_selector(node: s.GroupSelector, ctx: Context) -> ColumnElement[bool]:
    gm = t.group_members
    group_ids = sa.select(t.groups.c.id).where(
        t.groups.c.account_id == ctx.account_id, t.groups.c.name_key.in_(_keys(node.groups))
    )
    return _member(
        sa.select(gm.c.contact_id).where(
            gm.c.account_id == ctx.account_id, gm.c.group_id.in_(group_ids)
        )
    )


def _segment_selector(node: s.SegmentSelector, ctx: Context) -> ColumnElement[bool]:
    parts = []
    for key in _keys(node.segments):
        if key in ctx._stack:
            raise Invalid.at("segments", f"segment '{key}' refers to itself")
        if len(ctx._stack) >= MAX_SEGMENT_DEPTH:
            raise Invalid.at("segments", f"segments nest deeper than {MAX_SEGMENT_DEPTH}")
        saved = ctx.segments.get(key)
        if saved is None:
            raise Invalid.at("segments", f"unknown segment '{key}'")
        ctx._stack.append(key)
        try:
            parts.append(_body(saved, ctx))
        finally:
            ctx._stack.pop()
    return sa.or_(*parts)


# --- tests: scalar, set and aggregate ---------------------------------------------------


def _like_pattern(value: str, op: str) -> str:
    escaped = value.replace("/", "//").replace("%", "/%").replace("_", "/_")
    return {"contains": f"%{escaped}%", "starts_with": f"{escaped}%", "ends_with": f"%{escaped}"}[
        op
    ]


def _number(value):
    """A number operand: a fractional one bound exactly (fields.ExactNumber), never
    rounded to the column's type nor turning the column into double precision."""
    return sa.literal(value, ExactNumber()) if isinstance(value, float) else value


def _compare(expr, kind: str, op: str, operand: Any, *, lowered: bool) -> ColumnElement[bool]:
    """The positive comparison `expr OP operand` for a value that is present.

    Text ignores case: a column stored lower-cased (`lowered`) against the operand
    lower-cased the same way (Python's, as it was stored); any other column and its
    operand both through fields.fold, in SQL, so the two sides are folded alike."""
    textual = kind in ("text", "enum")
    if textual and not lowered:
        expr = fold(expr)

    def norm(v):
        if textual:
            return v.lower() if lowered else fold(sa.literal(v, sa.Text()))
        return _number(v) if kind == "number" else v

    match op:
        case "eq":
            return expr == norm(operand)
        case "in":
            if not operand:
                return sa.false()
            distinct = sorted(set(operand), key=str)
            if kind == "number" and all(isinstance(v, int) for v in distinct):
                return expr.in_(distinct)  # one expanding parameter
            if textual and lowered:
                return expr.in_(sorted({v.lower() for v in distinct}))
            return expr.in_([norm(v) for v in distinct])
        case "contains" | "starts_with" | "ends_with":
            pattern = _like_pattern(operand, op)
            if lowered:
                return expr.like(pattern.lower(), escape="/")
            return expr.like(fold(sa.literal(pattern, sa.Text())), escape="/")
        case "lt":
            return expr < norm(operand)
        case "lte":
            return expr <= norm(operand)
        case "gt":
            return expr > norm(operand)
        case "gte":
            return expr >= norm(operand)
        case "between":
            return sa.and_(expr >= norm(operand[0]), expr <= norm(operand[1]))
        case _:
            raise AssertionError(op)


def _has_value(expr, kind: str) -> ColumnElement[bool]:
    if kind in ("text", "enum"):
        return sa.and_(expr.is_not(None), expr != "")
    return expr.is_not(None)


def _relative(expr, kind: str, op: str, days: int, ctx: Context) -> ColumnElement[bool]:
    """within_last_days / older_than_days against as_of (its date, for dates)."""
    now: date | datetime = ctx.today if kind == "date" else ctx.as_of
    low = _shift(now, -days)
    if op == "within_last_days":
        return sa.and_(expr >= low, expr <= now) if low is not None else expr <= now
    return expr < low if low is not None else sa.false()


def _shift(moment, days: int):
    try:
        return moment + timedelta(days=days)
    except OverflowError:
        return None


def scalar_test(
    expr,
    kind: str,
    op: str,
    operand: Any,
    ctx: Context,
    *,
    always: bool = False,
    lowered: bool = False,
) -> ColumnElement[bool]:
    """A test on one value per contact (a column, or an aggregate in HAVING)."""
    has = sa.true() if always else _has_value(expr, kind)
    if op == "is_empty":
        return sa.not_(has)
    if op == "is_not_empty":
        return has
    if op in NEGATIVE:
        return sa.not_(
            scalar_test(expr, kind, NEGATIVE[op], operand, ctx, always=always, lowered=lowered)
        )
    if op in ("within_last_days", "older_than_days"):
        return sa.and_(has, _relative(expr, kind, op, operand, ctx))
    if op == "birthday_within_days":
        return sa.and_(has, _birthday_window(expr, operand, ctx))
    return sa.and_(has, _compare(expr, kind, op, operand, lowered=lowered))


def set_test(
    rows_where, expr, kind: str, op: str, operand: Any, ctx: Context, *, lowered: bool = False
) -> ColumnElement[bool]:
    """A test on a contact's set of values (owners, a detail): positive operators hold
    when any value does, negative ones when none does, is_empty when there is none."""
    has = _has_value(expr, kind)
    if op in ("is_empty", "is_not_empty"):
        member = _member(rows_where(has))
        return sa.not_(member) if op == "is_empty" else member
    if op in NEGATIVE:
        return sa.not_(
            set_test(rows_where, expr, kind, NEGATIVE[op], operand, ctx, lowered=lowered)
        )
    return _member(rows_where(scalar_test(expr, kind, op, operand, ctx, lowered=lowered)))


def aggregate_test(
    source: sa.Select, agg, kind: str, op: str, operand: Any, default: Any, ctx: Context
) -> ColumnElement[bool]:
    """A test on an aggregate of a contact's rows, grouped before it is joined.

    `source` selects `contact_id` from the matching rows; `default` is the aggregate's
    value for a contact with no rows (0 for counts and sums, None for max)."""
    always = default is not None
    test = scalar_test(agg, kind, op, operand, ctx, always=always)
    grouped = source.group_by(source.selected_columns[0])
    if not evaluate(kind, op, operand, default, ctx):
        return _member(grouped.having(test))
    return sa.not_(_member(grouped.having(sa.not_(test))))


def _field_test(node: s.FieldTest, ctx: Context) -> ColumnElement[bool]:
    spec = FIELDS[node.field]
    op, operand = node.op, node._operand
    match spec.shape:
        case "column":
            return scalar_test(
                c.c[node.field],
                spec.kind,
                op,
                operand,
                ctx,
                always=spec.always,
                lowered=node.field in LOWERCASE_STORED,
            )
        case "email_domain":
            return scalar_test(email_domain(c.c.email), "text", op, operand, ctx, lowered=True)
        case "age":
            return _age_test(op, operand, ctx)
        case "owner":
            co, u = t.contact_owners, t.users

            def owners_where(cond):
                return (
                    sa.select(co.c.contact_id)
                    .join(u, u.c.id == co.c.user_id)
                    .where(co.c.account_id == ctx.account_id, cond)
                )

            return set_test(owners_where, u.c.email, "text", op, operand, ctx, lowered=True)
        case "tag_count":
            ct = t.contact_tags
            source = sa.select(ct.c.contact_id).where(ct.c.account_id == ctx.account_id)
            return aggregate_test(source, sa.func.count(), "number", op, operand, 0, ctx)
        case _:
            raise AssertionError(spec.shape)


def _detail_test(node: s.DetailTest, ctx: Context) -> ColumnElement[bool]:
    cd = t.contact_details
    kind, expr = {
        "string": ("text", cd.c.value),
        "number": ("number", sa.func.audience_try_number(cd.c.value, type_=sa.Numeric)),
        "date": ("date", sa.func.audience_try_date(cd.c.value, type_=sa.Date)),
    }[node.as_]

    def details_where(cond):
        return sa.select(cd.c.contact_id).where(
            cd.c.account_id == ctx.account_id, cd.c.name == node.detail, cond
        )

    return set_test(details_where, expr, kind, node.op, node._operand, ctx)


def _event_test(node: s.EventTest, ctx: Context) -> ColumnElement[bool]:
    e = t.events
    f = node.event
    where = [e.c.account_id == ctx.account_id]
    if f.type is not None:
        where.append(e.c.type == f.type)
    if f.within_days is not None:
        low = _shift(ctx.as_of, -f.within_days)
        where.append(e.c.occurred_at <= ctx.as_of)
        if low is not None:
            where.append(e.c.occurred_at >= low)
    if f.from_ is not None:
        where.append(e.c.occurred_at >= f.from_)
    if f.to is not None:
        where.append(e.c.occurred_at <= f.to)
    if f.products_contains is not None:
        pattern = _like_pattern(f.products_contains, "contains")
        where.append(fold(e.c.products).like(fold(sa.literal(pattern, sa.Text())), escape="/"))
    if f.value_gte is not None:
        where.append(e.c.value >= _number(f.value_gte))
    if f.value_lte is not None:
        where.append(e.c.value <= _number(f.value_lte))
    source = sa.select(e.c.contact_id).where(*where)
    agg, kind, default = {
        "count": (sa.func.count(), "number", 0),
        "sum": (sa.func.coalesce(sa.func.sum(e.c.value), 0.0), "number", 0),
        "max": (sa.func.max(e.c.value), "number", None),
        "last_at": (sa.func.max(e.c.occurred_at), "datetime", None),
    }[node.agg]
    return aggregate_test(source, agg, kind, node.op, node._operand, default, ctx)


# --- age and birthdays ------------------------------------------------------------------


def years_before(day: date, years: int) -> date | None:
    """The same month and day `years` earlier (29 February → 28 February); None when
    out of the calendar."""
    year = day.year - years
    if year < 1 or year > 9999:
        return None
    dom = day.day
    if day.month == 2 and dom == 29 and not calendar.isleap(year):
        dom = 28
    return date(year, day.month, dom)


def _age_at_least(n: int, ctx: Context) -> ColumnElement[bool]:
    bd = c.c.birth_date
    year = ctx.today.year - n
    if year < 1:
        return sa.false()
    if year > 9999:
        return bd.is_not(None)
    return bd <= years_before(ctx.today, n)


def _age_test(op: str, operand: Any, ctx: Context) -> ColumnElement[bool]:
    """Age in whole years at as_of, as ranges of birth_date (index-friendly)."""
    bd = c.c.birth_date
    has = bd.is_not(None)
    if op == "is_empty":
        return sa.not_(has)
    if op == "is_not_empty":
        return has
    if op in NEGATIVE:
        return sa.not_(_age_test(NEGATIVE[op], operand, ctx))

    def at_least(x: float):
        return _age_at_least(math.ceil(x), ctx)

    def at_most(x: float):
        return sa.not_(_age_at_least(math.floor(x) + 1, ctx))

    match op:
        case "eq":
            if operand != int(operand):
                return sa.false()
            return sa.and_(has, at_least(operand), at_most(operand))
        case "in":
            return sa.or_(sa.false(), *(_age_test("eq", v, ctx) for v in operand))
        case "gte":
            return sa.and_(has, at_least(operand))
        case "gt":
            return sa.and_(has, _age_at_least(math.floor(operand) + 1, ctx))
        case "lte":
            return sa.and_(has, at_most(operand))
        case "lt":
            return sa.and_(has, sa.not_(at_least(operand)))
        case "between":
            return sa.and_(has, at_least(operand[0]), at_most(operand[1]))
        case _:
            raise AssertionError(op)


def birthday_days(days: int, today: date) -> set[int] | None:
    """month*100+day values whose birthday falls within `days` days from today; None for
    every day of the year. 29 February counts as 28 February in other years."""
    if days >= 366:
        return None
    out: set[int] = set()
    for k in range(days + 1):
        d = _shift(today, k)
        if d is None:
            break
        out.add(d.month * 100 + d.day)
        if d.month == 2 and d.day == 28 and not calendar.isleap(d.year):
            out.add(229)
    return out


def _birthday_window(expr, days: int, ctx: Context) -> ColumnElement[bool]:
    mds = birthday_days(days, ctx.today)
    if mds is None:
        return sa.true()
    md = month_day(expr)
    ranges, start, prev = [], None, None
    for value in sorted(mds):
        if start is None:
            start = prev = value
        elif value - prev == 1 or (value % 100 == 1 and value // 100 == prev // 100 + 1):
            prev = value
        else:
            ranges.append((start, prev))
            start = prev = value
    if start is not None:
        ranges.append((start, prev))
    return sa.or_(*(md == lo if lo == hi else md.between(lo, hi) for lo, hi in ranges))


# --- evaluating a test on a constant (an aggregate's value for "no rows") ---------------


def evaluate(kind: str, op: str, operand: Any, value: Any, ctx: Context) -> bool:
    if op == "is_empty":
        return value is None
    if op == "is_not_empty":
        return value is not None
    if op in NEGATIVE:
        return not evaluate(kind, NEGATIVE[op], operand, value, ctx)
    if value is None:
        return False
    match op:
        case "eq":
            return value == operand
        case "in":
            return value in operand
        case "lt":
            return value < operand
        case "lte":
            return value <= operand
        case "gt":
            return value > operand
        case "gte":
            return value >= operand
        case "between":
            return operand[0] <= value <= operand[1]
        case _:
            raise AssertionError(f"{op} on a constant {kind}")


def now_utc() -> datetime:
    return datetime.now(UTC)
