"""The compile pass: a checked selection (tree.py) → ONE set-based SELECT of contact ids.

One method per node kind (visitor.Visitor makes a forgotten one fail at import); never a
user error here, check.py has raised them all. Every predicate this module returns is
two-valued (never NULL), so NOT is an exact complement. Shapes chosen for speed: selectors
and set tests are `id IN (SELECT contact_id …)` semi-joins on link-table indexes; negated,
anti-joins (sql.Member); aggregates are grouped before they are joined; sibling
tag/group/mailing selectors in an OR merge into one semi-join.
"""

import calendar
import math
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from app import tables as t
from app.selection import tree
from app.selection.operators import (
    OPERATORS,
    Kind,
    Operator,
    Subject,
    holds,
    holds_sql,
    shift,
)
from app.selection.sql import (
    AllOf,
    Inline,
    Member,
    balanced,
    email_domain,
    fold,
    ids_in,
    like_pattern,
    number,
)
from app.selection.visitor import Visitor

c = t.contacts


@dataclass(frozen=True)
class Context:
    account_id: int
    as_of: datetime  # its offset is kept: "the date of as_of" is the date where it was said

    @property
    def today(self) -> date:
        return self.as_of.date()


def selection_where(selection: tree.Selection, ctx: Context) -> ColumnElement[bool]:
    deleted = {
        "exclude": c.c.deleted.is_(sa.false()),
        "only": c.c.deleted.is_(sa.true()),
        "include": sa.true(),
    }[selection.deleted]
    where = Compiler(ctx, segment_uses(selection.body)).body(selection.body)
    return sa.and_(c.c.account_id == ctx.account_id, deleted, where)


def compile_selection(selection: tree.Selection, ctx: Context) -> sa.Select:
    """SELECT contacts.id of every selected contact."""
    return sa.select(c.c.id).where(selection_where(selection, ctx))


def count_query(selection: tree.Selection, ctx: Context) -> sa.Select:
    return sa.select(sa.func.count()).select_from(c).where(selection_where(selection, ctx))


def condition_sql(node: tree.Node, ctx: Context) -> ColumnElement[bool]:
    """A checked condition (a rule's) as a predicate over `contacts`."""
    return Compiler(ctx, segment_uses(tree.Body(filter=node))).visit(node)


class Compiler(Visitor[ColumnElement[bool]]):
    def __init__(self, ctx: Context, uses: Counter[int] | None = None):
        self.ctx = ctx
        self.uses = uses or Counter()  # id of a SavedSegment → its uses in the statement
        self._segments: dict[int, sa.CTE] = {}  # id of a SavedSegment → its CTE
        self._inline: dict[int, ColumnElement[bool]] = {}  # → its body, inline

    def segment(self, segment: tree.SavedSegment) -> sa.CTE:
        """A saved segment's members, compiled once per statement however often it is
        used: a CTE (PostgreSQL inlines one used once and computes one used more often
        once). Its own `deleted` and `as_of` are the referring selection's."""
        found = self._segments.get(id(segment))
        if found is None:
            members = sa.select(c.c.id).where(
                c.c.account_id == self.ctx.account_id, self.body(segment.body)
            )
            found = members.cte(f"segment_{len(self._segments) + 1}")
            self._segments[id(segment)] = found
        return found

    def body(self, body: tree.Body) -> ColumnElement[bool]:
        included = merge_siblings(body.include)
        excluded = merge_siblings(body.exclude)
        if one_row := one_recipient_row(included, excluded):
            mailing, event, not_events, excluded = one_row
            include = self.one_mailing_rows(mailing, event, not_events)
        else:
            include = self.any_of(body.include) if body.include else sa.true()
        exclude = sa.not_(self.any_of(tuple(excluded))) if excluded else sa.true()
        where = self.visit(body.filter) if body.filter is not None else sa.true()
        return sa.and_(include, exclude, where)

    def one_mailing_rows(self, mailing: int, event: str, not_events: list[str]) -> Member:
        """Contacts whose row of `mailing` is `event` and none of `not_events`."""
        r = t.mailing_recipients
        rows = self.links(r, r.c.mailing_id, [mailing]).where(recipient_event(event))
        return Member(rows.where(*(sa.not_(recipient_event(e)) for e in not_events)))

    def any_of(self, nodes: tuple[tree.Node, ...]) -> ColumnElement[bool]:
        """OR of nodes; an empty OR is false."""
        return balanced(sa.or_, [self.visit(n) for n in merge_siblings(nodes)], sa.false())

    # --- boolean structure ------------------------------------------------------------

    def visit_and(self, node: tree.And) -> ColumnElement[bool]:
        items = [self.visit(n) for n in all_tags_at_once(node.items)]
        return balanced(sa.and_, items, sa.true())

    def visit_or(self, node: tree.Or) -> ColumnElement[bool]:
        return self.any_of(node.items)

    def visit_not(self, node: tree.Not) -> ColumnElement[bool]:
        return sa.not_(self.visit(node.item))

    # --- selectors --------------------------------------------------------------------

    def visit_tag_selector(self, node: tree.TagSelector) -> ColumnElement[bool]:
        """Some tag: one probe of the (account, tag, contact) index for all of them. Every
        tag (`match: all`): a semi-join a tag, which the planner joins from the rarest;
        past MERGE_TAGS_IN_AND tags, one probe grouped and counted."""
        ct, ids = t.contact_tags, bound(node.ids)
        if not node.match_all:
            return Member(self.links(ct, ct.c.tag_id, ids))
        if len(ids) > MERGE_TAGS_IN_AND:
            grouped = self.links(ct, ct.c.tag_id, ids).group_by(ct.c.contact_id)
            return Member(grouped.having(sa.func.count() == len(ids)))
        return AllOf([Member(self.links(ct, ct.c.tag_id, [id_])) for id_ in ids])

    def visit_funnel_selector(self, node: tree.FunnelSelector) -> ColumnElement[bool]:
        cf = t.contact_funnels
        query = self.links(cf, cf.c.funnel_id, [bound(node.funnel_id)])
        if node.stages is not None:
            query = query.where(ids_in(cf.c.stage_id, bound(node.stage_ids)))
        return Member(query)

    def visit_mailing_selector(self, node: tree.MailingSelector) -> ColumnElement[bool]:
        r = t.mailing_recipients
        rows = self.links(r, r.c.mailing_id, node.mailings)
        return Member(rows.where(recipient_event(node.event)))

    def visit_group_selector(self, node: tree.GroupSelector) -> ColumnElement[bool]:
        gm = t.group_members
        return Member(self.links(gm, gm.c.group_id, bound(node.ids)))

    def links(self, table: sa.Table, column, ids) -> sa.Select:
        """The contacts linked to any of `ids` in a link table: one index probe."""
        return sa.select(table.c.contact_id).where(
            table.c.account_id == self.ctx.account_id, ids_in(column, ids)
        )

    def visit_segment_selector(self, node: tree.SegmentSelector) -> ColumnElement[bool]:
        return balanced(sa.or_, [self.members_of(s) for s in node.segments], sa.false())

    def members_of(self, segment: tree.SavedSegment) -> ColumnElement[bool]:
        """A contact is in a saved segment: used once in the statement, the segment's
        body inline, over the same row (negated: an anti-join on its CTE); used more
        often, a semi-join on its CTE, computed once."""
        member = Member(sa.select(self.segment(segment).c.id))
        if self.uses[id(segment)] != 1:
            return member
        inline = self._inline.get(id(segment))
        if inline is None:
            inline = self._inline[id(segment)] = self.body(segment.body)
        return Inline(inline, sa.not_(member))

    # --- tests ------------------------------------------------------------------------

    def visit_field_test(self, node: tree.FieldTest) -> ColumnElement[bool]:
        f, op, operand = node.field, node.op, node.operand
        match f.shape:
            case "column" | "email_domain":
                expr = email_domain(c.c.email) if f.shape == "email_domain" else c.c[f.name]
                subject = Subject(expr, f.kind, always=f.always, lowered=f.lowered)
                return holds_sql(op, subject, operand, self.ctx)
            case "age":
                return holds_sql(op, AgeSubject(self.ctx), operand, self.ctx)
            case "owner":
                co, u = t.contact_owners, t.users

                def owners_where(condition):
                    return (
                        sa.select(co.c.contact_id)
                        .join(u, u.c.id == co.c.user_id)
                        .where(co.c.account_id == self.ctx.account_id, condition)
                    )

                subject = Subject(u.c.email, f.kind, lowered=f.lowered)
                return self.set_test(owners_where, subject, op, operand)
            case "tag_count":
                ct = t.contact_tags
                source = sa.select(ct.c.contact_id).where(ct.c.account_id == self.ctx.account_id)
                if (rows := self.existence(op, operand)) is not None:
                    return Member(source) if rows else sa.not_(Member(source))
                return self.aggregate(source, sa.func.count(), f.kind, op, operand, default=0)

    def visit_detail_test(self, node: tree.DetailTest) -> ColumnElement[bool]:
        cd = t.contact_details
        expr = {
            "text": cd.c.value,
            "number": sa.func.audience_try_number(cd.c.value, type_=sa.Numeric),
            "date": sa.func.audience_try_date(cd.c.value, type_=sa.Date),
        }[node.kind]

        def details_where(condition):
            return sa.select(cd.c.contact_id).where(
                cd.c.account_id == self.ctx.account_id, cd.c.name == node.name, condition
            )

        return self.set_test(details_where, Subject(expr, node.kind), node.op, node.operand)

    def visit_event_test(self, node: tree.EventTest) -> ColumnElement[bool]:
        e = t.events
        source = sa.select(e.c.contact_id).where(*self.event_filter(node.events))
        agg, default = {
            "count": (sa.func.count(), 0),
            "sum": (sa.func.coalesce(sa.func.sum(e.c.value), 0.0), 0),
            "max": (sa.func.max(e.c.value), None),
            "last_at": (sa.func.max(e.c.occurred_at), None),
        }[node.agg]
        kind = tree.AGGREGATE_KINDS[node.agg]
        if node.agg == "count" and (rows := self.existence(node.op, node.operand)) is not None:
            return Member(source) if rows else sa.not_(Member(source))
        return self.aggregate(source, agg, kind, node.op, node.operand, default)

    def event_filter(self, f: tree.EventFilter) -> list[ColumnElement[bool]]:
        e, as_of = t.events, self.ctx.as_of
        where = [e.c.account_id == self.ctx.account_id]
        if f.type is not None:
            where.append(e.c.type == f.type)
        if f.within_days is not None:
            low = shift(as_of, -f.within_days)
            where.append(e.c.occurred_at <= as_of)
            if low is not None:
                where.append(e.c.occurred_at >= low)
        if f.from_ is not None:
            where.append(e.c.occurred_at >= f.from_)
        if f.to is not None:
            where.append(e.c.occurred_at <= f.to)
        if f.products_contains is not None:
            pattern = like_pattern(f.products_contains, "anywhere")
            where.append(fold(e.c.products).like(fold(sa.literal(pattern, sa.Text())), escape="/"))
        if f.value_gte is not None:
            where.append(e.c.value >= number(f.value_gte))
        if f.value_lte is not None:
            where.append(e.c.value <= number(f.value_lte))
        return where

    # --- shapes of tests --------------------------------------------------------------

    def set_test(self, rows_where, subject: Subject, op: Operator, operand) -> ColumnElement[bool]:
        """A test on a contact's set of values (owners, a detail): a positive operator
        holds when some value does, a negative one when none does its positive, is_empty
        when there is none (operators.holds_for_any is its Python twin)."""
        if op.presence is not None:
            member = Member(rows_where(subject.present()))
            return member if op.presence else sa.not_(member)
        if op.negates:
            return sa.not_(self.set_test(rows_where, subject, OPERATORS[op.negates], operand))
        return Member(rows_where(holds_sql(op, subject, operand, self.ctx)))

    def aggregate(
        self, source: sa.Select, agg, kind: Kind, op: Operator, operand, default
    ) -> ColumnElement[bool]:
        """A test on an aggregate of a contact's rows, grouped before it is joined.
        `source` selects `contact_id` from the matching rows; `default` is the aggregate
        of no rows (0 for counts and sums, None for max): whether it passes decides if
        contacts without rows are in (then the complement of the failing groups is)."""
        test = holds_sql(op, Subject(agg, kind, always=default is not None), operand, self.ctx)
        grouped = source.group_by(source.selected_columns[0])
        if not holds(op, kind, default, operand, self.ctx):
            return Member(grouped.having(test))
        return sa.not_(Member(grouped.having(sa.not_(test))))

    def existence(self, op: Operator, operand) -> bool | None:
        """Whether a test on a count of rows only asks if there is one: True when it holds
        for any count but 0 ("at least one"), False when for 0 alone ("none"), None when it
        asks more. Then a semi-join (an anti-join) answers it, nothing counted."""
        monotone = op.name in ("gt", "gte", "lt", "lte") or (
            op.name in ("eq", "ne") and operand == 0
        )
        if not monotone:
            return None
        at = [holds(op, "number", n, operand, self.ctx) for n in (0, 1, 2**62)]
        if at[0] == at[1] or at[1] != at[2]:
            return None
        return at[1]


def segment_uses(body: tree.Body) -> Counter[int]:
    """How often each saved segment is referred to in the statement compiled from `body`:
    each segment's own body is compiled once (a CTE, or inline where it is used once), so
    its references count once however often the segment is used."""
    uses: Counter[int] = Counter()

    def walk(node: tree.Node | None) -> None:
        if isinstance(node, tree.And | tree.Or):
            for item in node.items:
                walk(item)
        elif isinstance(node, tree.Not):
            walk(node.item)
        elif isinstance(node, tree.SegmentSelector):
            for segment in node.segments:
                uses[id(segment)] += 1
                if uses[id(segment)] == 1:
                    walk_body(segment.body)

    def walk_body(b: tree.Body) -> None:
        for node in (*b.include, *b.exclude, b.filter):
            walk(node)

    walk_body(body)
    return uses


def recipient_event(event: str) -> ColumnElement[bool]:
    """What a mailing_recipients row says of `event` (two-valued)."""
    r = t.mailing_recipients
    return {
        "sent": sa.true(),
        "opened": r.c.opened_at.is_not(None),
        "not_opened": r.c.opened_at.is_(None),
        "clicked": r.c.clicked_at.is_not(None),
        "bounced": r.c.bounced.is_(sa.true()),
    }[event]


def one_recipient_row(
    included: list[tree.Node], excluded: list[tree.Node]
) -> tuple[int, str, list[str], list[tree.Node]] | None:
    """Received mailing M (some event) minus contacts with other events of M: both read
    the one row a contact has for M, so one probe answers them (`event AND NOT other`)
    instead of a semi-join and an anti-join. (mailing, event, the other events, what else
    is excluded), or None when the body is not of that shape."""
    if len(included) != 1:
        return None
    (node,) = included
    if not isinstance(node, tree.MailingSelector) or len(node.mailings) != 1:
        return None
    same = [
        n for n in excluded if isinstance(n, tree.MailingSelector) and n.mailings == node.mailings
    ]
    if not same:
        return None
    rest = [n for n in excluded if not any(n is m for m in same)]
    return node.mailings[0], node.event, [n.event for n in same], rest  # type: ignore[misc]


def bound(ids):
    """The ids the check pass gave a node: compiling needs them."""
    assert ids is not None, "compile a tree checked with a NameSource (its names' ids)"
    return ids


def merge_siblings(nodes: tuple[tree.Node, ...]) -> list[tree.Node]:
    """Sibling selectors of one kind in an OR as one selector: one index probe with
    `IN (…)` instead of one per selector."""
    tags: dict[str, int | None] = {}
    groups: dict[str, int | None] = {}
    mailings: dict[str, set[int]] = {}
    segments: dict[int, tree.SavedSegment] = {}
    rest: list[tree.Node] = []
    for node in nodes:
        if isinstance(node, tree.TagSelector) and not node.match_all:
            tags.update(_by_key(node.keys, node.ids))
        elif isinstance(node, tree.GroupSelector):
            groups.update(_by_key(node.keys, node.ids))
        elif isinstance(node, tree.SegmentSelector):
            segments.update((id(s), s) for s in node.segments)
        elif isinstance(node, tree.MailingSelector):
            mailings.setdefault(node.event, set()).update(node.mailings)
        else:
            rest.append(node)
    merged: list[tree.Node] = []
    if tags:
        keys, ids = _keys_ids(tags)
        merged.append(tree.TagSelector(keys, ids=ids))
    if groups:
        keys, ids = _keys_ids(groups)
        merged.append(tree.GroupSelector(keys, ids=ids))
    for event, ids in mailings.items():
        merged.append(tree.MailingSelector(tuple(sorted(ids)), event))  # type: ignore[arg-type]
    if segments:
        merged.append(tree.SegmentSelector(tuple(segments.values())))
    return merged + rest


MERGE_TAGS_IN_AND = 8  # fewer: a semi-join each (cheap to plan, good estimates)


def all_tags_at_once(nodes: tuple[tree.Node, ...]) -> list[tree.Node]:
    """Many tag selectors in an AND, each of one tag or of `match: all`, as ONE `match:
    all` selector: a thousand AND-ed tags plan and run as one grouped semi-join, not a
    thousand."""
    tags = [
        n for n in nodes if isinstance(n, tree.TagSelector) and (n.match_all or len(n.keys) == 1)
    ]
    if len(tags) <= MERGE_TAGS_IN_AND:
        return list(nodes)
    keys, ids = _keys_ids({k: i for n in tags for k, i in _by_key(n.keys, n.ids).items()})
    rest = [n for n in nodes if not any(n is t for t in tags)]
    return [tree.TagSelector(keys, match_all=len(keys) > 1, ids=ids), *rest]


def _by_key(keys: tuple[str, ...], ids: tuple[int, ...] | None) -> dict[str, int | None]:
    return dict(zip(keys, ids or [None] * len(keys), strict=True))


def _keys_ids(by_key: dict[str, int | None]) -> tuple[tuple[str, ...], tuple[int, ...] | None]:
    """Keys in order and their ids (None when names were not looked up)."""
    keys = tuple(sorted(by_key))
    ids = tuple(by_key[k] for k in keys)
    return keys, None if None in ids else ids  # type: ignore[return-value]


# --- age ----------------------------------------------------------------------------------


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


class AgeSubject(Subject):
    """Age in whole years at as_of, compared as ranges of birth_date (index-friendly)."""

    def __init__(self, ctx: Context):
        super().__init__(c.c.birth_date, "number")
        self.today = ctx.today

    def _at_least(self, years: int) -> ColumnElement[bool]:
        year = self.today.year - years
        if year < 1:
            return sa.false()
        if year > 9999:
            return self.expr.is_not(None)
        return self.expr <= years_before(self.today, years)

    def compare(self, relation: str, value) -> ColumnElement[bool]:
        match relation:
            case "=":
                if value != int(value):
                    return sa.false()
                years = int(value)
                return sa.and_(self._at_least(years), sa.not_(self._at_least(years + 1)))
            case ">=":
                return self._at_least(math.ceil(value))
            case ">":
                return self._at_least(math.floor(value) + 1)
            case "<=":
                return sa.not_(self._at_least(math.floor(value) + 1))
            case "<":
                return sa.not_(self._at_least(math.ceil(value)))
        raise AssertionError(relation)

    def one_of(self, values: list) -> ColumnElement[bool]:
        return sa.or_(sa.false(), *(self.compare("=", v) for v in values))
