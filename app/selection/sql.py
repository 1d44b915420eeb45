"""SQL building blocks of the compiler that SQLAlchemy lacks: the same text-folding, date
and e-mail functions on both databases, exact fractional operands, semi- and anti-joins,
and AND/OR trees SQLite can parse."""

import json
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.visitors import InternalTraversal

from app import tables as t


class email_domain(FunctionElement):
    """The part of an e-mail after '@'."""

    type = sa.Text()
    inherit_cache = True
    name = "email_domain"


@compiles(email_domain, "postgresql")
def _email_domain_pg(element, compiler, **kw):
    return f"split_part({compiler.process(element.clauses, **kw)}, '@', 2)"


@compiles(email_domain)
def _email_domain_default(element, compiler, **kw):
    arg = compiler.process(element.clauses, **kw)
    return f"substr({arg}, instr({arg}, '@') + 1)"


class month_day(FunctionElement):
    """month * 100 + day of a date, for birthday windows."""

    type = sa.Integer()
    inherit_cache = True
    name = "month_day"


@compiles(month_day, "postgresql")
def _month_day_pg(element, compiler, **kw):
    arg = compiler.process(element.clauses, **kw)
    return f"(EXTRACT(MONTH FROM {arg})::int * 100 + EXTRACT(DAY FROM {arg})::int)"


@compiles(month_day)
def _month_day_default(element, compiler, **kw):
    arg = compiler.process(element.clauses, **kw)
    return f"CAST(strftime('%m%d', {arg}) AS INTEGER)"


class fold(FunctionElement):
    """Text as compared ignoring case: the database's lower(), with final sigma 'ς' as
    'σ' (PostgreSQL lowers character by character, so 'ΟΔΟΣ' is 'οδοσ'). Applied to
    BOTH sides of a comparison, in SQL, so a value always matches itself."""

    type = sa.Text()
    inherit_cache = True
    name = "fold"


@compiles(fold, "postgresql")
def _fold_pg(element, compiler, **kw):
    return f"translate(lower({compiler.process(element.clauses, **kw)}), 'ς', 'σ')"


@compiles(fold)
def _fold_default(element, compiler, **kw):
    # SQLite's lower is app.db's, which already folds like PostgreSQL's.
    return f"lower({compiler.process(element.clauses, **kw)})"


def folding(*operands: str):
    """How to fold a text compared with these operands: `fold`, or plain `lower` when no
    operand holds a sigma. Then the two agree (fold only turns 'ς' into 'σ', and an
    operand without either matches neither), and lower() alone costs less a row."""
    return fold if any(ch in text for text in operands for ch in "Σσς") else sa.func.lower


class ExactNumber(sa.types.TypeDecorator):
    """A fractional operand compared exactly. PostgreSQL: numeric, because a float8
    parameter turns a bigint or numeric column into double precision (2**53 + 1 > 2.0**53
    is false there, and a numeric detail of 1e400 overflows). SQLite: float, which it
    compares with integers exactly."""

    impl = sa.Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect):
        kind = sa.Numeric() if dialect.name == "postgresql" else sa.Float()
        return dialect.type_descriptor(kind)

    def process_bind_param(self, value, dialect):
        if value is None or dialect.name != "postgresql":
            return value
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def number(value):
    """A number operand: a fractional one bound exactly (ExactNumber), never rounded to
    the column's type nor turning the column into double precision."""
    return sa.literal(value, ExactNumber()) if isinstance(value, float) else value


def like_pattern(value: str, where: str) -> str:
    """A LIKE pattern (escape '/') matching `value` at the start, the end or anywhere."""
    escaped = value.replace("/", "//").replace("%", "/%").replace("_", "/_")
    return {"start": f"{escaped}%", "end": f"%{escaped}", "anywhere": f"%{escaped}%"}[where]


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


def balanced(op, items: list, empty) -> ColumnElement[bool]:
    """AND/OR of many items as a balanced tree of parenthesised groups: SQLite parses a
    flat chain as a left-deep tree and refuses one deeper than 1,000."""
    if not items:
        return empty
    if len(items) == 1:  # itself: a NOT of it then reaches a Member (an anti-join)
        return items[0]
    if len(items) <= 32:
        return op(*items)
    middle = len(items) // 2
    return op(
        Paren(balanced(op, items[:middle], empty)),
        Paren(balanced(op, items[middle:], empty)),
    )


class Member(ColumnElement):
    """`contacts.id IN (subquery)`, a semi-join; negated, `NOT EXISTS (… correlated)`, an
    anti-join. PostgreSQL never turns NOT IN into an anti-join, and once the subquery's
    rows outgrow work_mem it scans them again for every contact (a count that took 30 s)."""

    type = sa.Boolean()
    inherit_cache = True
    # A predicate as it is: SQLite would otherwise get `id IN (…) = 1`, which its planner
    # cannot drive by an index (a rare-tag count: 200 ms → 58 ms).
    _is_implicitly_boolean = True
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
    contacts = t.contacts
    if not element.negated:
        return compiler.process(contacts.c.id.in_(element.subquery), **kw)
    sub = element.subquery
    correlated = sub.where(sub.selected_columns[0] == contacts.c.id).correlate(contacts)
    return compiler.process(sa.not_(correlated.exists()), **kw)


class Inline(ColumnElement):
    """A predicate shown as it is, whose negation takes another form: a saved segment
    used once is its body inline (one scan of contacts, not a join of two); negated, an
    anti-join on its members (never a NOT over semi-joins)."""

    type = sa.Boolean()
    inherit_cache = True
    _is_implicitly_boolean = True
    _traverse_internals = [
        ("shown", InternalTraversal.dp_clauseelement),
        ("negation", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, shown: ColumnElement, negation: ColumnElement):
        self.shown = shown
        self.negation = negation

    def _negate(self) -> "Inline":
        return Inline(self.negation, self.shown)


@compiles(Inline)
def _inline_sql(element: Inline, compiler, **kw) -> str:
    return compiler.process(Paren(element.shown), **kw)


class AllOf(ColumnElement):
    """Semi-joins that must all hold (`id IN (…) AND id IN (…)`: the planner joins them
    from the rarest); negated, `NOT EXISTS (…) OR NOT EXISTS (…)`, anti-join probes, never
    a NOT over IN."""

    type = sa.Boolean()
    inherit_cache = True
    _is_implicitly_boolean = True
    _traverse_internals = [
        ("members", InternalTraversal.dp_clauseelement_tuple),
        ("negated", InternalTraversal.dp_boolean),
    ]

    def __init__(self, members: list[Member], negated: bool = False):
        self.members = tuple(members)
        self.negated = negated

    def _negate(self) -> "AllOf":
        return AllOf(list(self.members), not self.negated)


@compiles(AllOf)
def _all_of_sql(element: AllOf, compiler, **kw) -> str:
    if element.negated:
        clause = balanced(sa.or_, [sa.not_(m) for m in element.members], sa.false())
    else:
        clause = balanced(sa.and_, list(element.members), sa.true())
    return compiler.process(Paren(clause), **kw)


class ValueList(sa.types.TypeDecorator):
    """A list of values bound as ONE parameter: an array of `kind` on PostgreSQL, JSON
    text on SQLite (read back by json_each). `kind` is "bigint", "numeric" or "text" (a
    name, so statements that differ only in their values share one compiled form)."""

    impl = sa.types.NullType
    cache_ok = True
    KINDS = {"bigint": sa.BigInteger, "numeric": sa.Numeric, "text": sa.Text}

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def load_dialect_impl(self, dialect):
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import ARRAY

            return dialect.type_descriptor(ARRAY(self.KINDS[self.kind]()))
        return dialect.type_descriptor(sa.String())

    def process_bind_param(self, value, dialect):
        if dialect.name != "postgresql":
            return json.dumps(value)
        if self.kind == "numeric":
            return [Decimal(repr(v)) if isinstance(v, float) else Decimal(v) for v in value]
        return value


class OneOf(ColumnElement):
    """`expr IN values` bound as ONE parameter however many values there are: an array on
    PostgreSQL (`= ANY`, or `IN (SELECT … unnest)` when folded), a JSON text on SQLite
    (`IN (SELECT value FROM json_each(?))`). No statement text grows with the list, no
    parameter limit is reached, and the compiled statement is cached whatever the values.
    `folded`: compare ignoring case (sql.fold on both sides)."""

    type = sa.Boolean()
    inherit_cache = True
    _is_implicitly_boolean = True
    _traverse_internals = [
        ("expr", InternalTraversal.dp_clauseelement),
        ("param", InternalTraversal.dp_clauseelement),
        ("folded", InternalTraversal.dp_boolean),
    ]

    def __init__(self, expr, values: list, kind: str, *, folded: bool = False):
        self.expr = expr
        self.param = sa.bindparam(None, list(values), type_=ValueList(kind))
        self.folded = folded


@compiles(OneOf, "postgresql")
def _one_of_pg(element: OneOf, compiler, **kw) -> str:
    from sqlalchemy.dialects.postgresql import ARRAY

    array = sa.cast(element.param, ARRAY(ValueList.KINDS[element.param.type.kind]()))
    if not element.folded:
        return compiler.process(element.expr == sa.any_(array), **kw)
    each = sa.func.unnest(array).table_valued("value").render_derived()
    return compiler.process(fold(element.expr).in_(sa.select(fold(each.c.value))), **kw)


@compiles(OneOf)
def _one_of_default(element: OneOf, compiler, **kw) -> str:
    each = sa.func.json_each(element.param).table_valued("value")
    if not element.folded:
        return compiler.process(element.expr.in_(sa.select(each.c.value)), **kw)
    return compiler.process(fold(element.expr).in_(sa.select(fold(each.c.value))), **kw)


def ids_in(column, ids) -> ColumnElement[bool]:
    """`column` is one of `ids` (ids the check pass looked up, bound as values the planner
    sees): `= :id` for one, one array (or JSON) parameter for more (OneOf)."""
    ids = list(ids)
    if len(ids) == 1:
        return column == ids[0]
    return OneOf(column, ids, "bigint")
