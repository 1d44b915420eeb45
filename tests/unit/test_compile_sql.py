"""The compile pass to SQL text, for PostgreSQL and SQLite, without a database: the shapes
chosen for speed, and every user value bound as a parameter (never in the SQL text)."""

from datetime import UTC, datetime

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from app.selection import tree
from app.selection.check import check_selection, parse_selection
from app.selection.compile import Compiler, Context, count_query
from app.selection.visitor import Visitor

DIALECTS = {"postgresql": postgresql.dialect(), "sqlite": sqlite.dialect()}
CTX = Context(account_id=7, as_of=datetime(2026, 3, 1, 12, tzinfo=UTC))


class EveryName:
    """A NameSource in which every name exists, with an id of its own (from 1001)."""

    def __init__(self):
        self.ids: dict = {}

    def existing(self, kind, keys) -> dict:
        return {key: self.ids.setdefault((kind, key), 1001 + len(self.ids)) for key in keys}

    def names(self, kind, funnel=None) -> list[str]:
        return []


def compiled(spec: dict, dialect: str, segments: dict | None = None):
    parsed = parse_selection(spec, prefix="")
    checked = check_selection(parsed, (segments or {}).get, EveryName())
    return count_query(checked, CTX).compile(dialect=DIALECTS[dialect])


@pytest.fixture(params=list(DIALECTS))
def dialect(request) -> str:
    return request.param


SECRET = "x' or 1=1 --"
NAMED = [
    {"include": [{"type": "tag", "tags": [SECRET]}]},
    {"include": [{"type": "tag", "tags": [SECRET, "b"], "match": "all"}]},
    {"include": [{"type": "funnel", "funnel": SECRET, "stages": [SECRET]}]},
    {"exclude": [{"type": "group", "groups": [SECRET, "b"]}]},
]
BOUND = [
    {"filter": {"field": "city", "op": "contains", "value": SECRET}},
    {"filter": {"field": "email", "op": "in", "value": [SECRET, "a@b.c"]}},
    {"filter": {"detail": SECRET, "op": "eq", "value": SECRET}},
    {"filter": {"field": "owner", "op": "ne", "value": SECRET}},
    {
        "filter": {
            "event": {"type": SECRET, "products_contains": SECRET},
            "agg": "count",
            "op": "gte",
            "value": 1,
        }
    },
]


@pytest.mark.parametrize("spec", BOUND, ids=[next(iter(s)) + str(i) for i, s in enumerate(BOUND)])
def test_values_are_bound(spec, dialect):
    sql = compiled(spec, dialect)
    assert "1=1" not in str(sql)
    assert any(SECRET in str(v) for v in sql.params.values()), sql.params


@pytest.mark.parametrize("spec", NAMED, ids=[next(iter(s)) + str(i) for i, s in enumerate(NAMED)])
def test_names_are_ids_bound_as_values(spec, dialect):
    """Names were looked up by the check pass: the count binds their ids, and neither
    names nor a lookup of them are in it."""
    sql = compiled(spec, dialect)
    text = str(sql)
    assert "1=1" not in text and "name_key" not in text
    assert not any(SECRET in str(v) for v in sql.params.values()), sql.params
    assert any(
        v == 1001 or (isinstance(v, list | str) and "1001" in str(v)) for v in sql.params.values()
    ), sql.params


def test_the_account_is_always_a_condition(dialect):
    sql = compiled({}, dialect)
    assert "contacts.account_id = " in str(sql) and 7 in sql.params.values()


def test_negated_set_tests_are_anti_joins(dialect):
    text = str(compiled({"exclude": [{"type": "tag", "tags": ["a"]}]}, dialect))
    assert "NOT (EXISTS (SELECT contact_tags.contact_id" in text
    assert "contact_tags.contact_id = contacts.id" in text
    assert "NOT IN" not in text


def test_sibling_selectors_merge_into_one_semi_join(dialect):
    spec = {
        "include": [
            {"type": "tag", "tags": ["a"]},
            {"type": "tag", "tags": ["b"]},
            {"type": "group", "groups": ["g"]},
        ]
    }
    text = str(compiled(spec, dialect))
    assert text.count("FROM contact_tags") == 1 and text.count("FROM group_members") == 1


def test_match_all_is_a_semi_join_a_tag(dialect):
    """`match: all` of a few tags: one semi-join a tag (the planner joins them from the
    rarest), nothing grouped; excluded, one anti-join probe a tag, never NOT over IN."""
    spec = {"include": [{"type": "tag", "tags": ["a", "b"], "match": "all"}]}
    text = str(compiled(spec, dialect))
    assert text.count("contacts.id IN (SELECT contact_tags.contact_id") == 2
    assert "GROUP BY" not in text
    excluded = str(compiled({"exclude": spec["include"]}, dialect))
    assert excluded.count("NOT (EXISTS (SELECT contact_tags.contact_id") == 2
    assert " IN (SELECT contact_tags" not in excluded


def test_aggregates_are_grouped_before_they_are_joined(dialect):
    spec = {"filter": {"event": {"type": "PURCHASE"}, "agg": "count", "op": "lt", "value": 3}}
    text = str(compiled(spec, dialect))
    assert "NOT (EXISTS (SELECT events.contact_id" in text and "GROUP BY events.contact_id" in text


@pytest.mark.parametrize(
    ("op", "value", "shape"),
    [
        ("gte", 1, "IN (SELECT events.contact_id"),
        ("gt", 0, "IN (SELECT events.contact_id"),
        ("ne", 0, "IN (SELECT events.contact_id"),
        ("eq", 0, "NOT (EXISTS (SELECT events.contact_id"),
        ("lt", 1, "NOT (EXISTS (SELECT events.contact_id"),
        ("lte", 0.5, "NOT (EXISTS (SELECT events.contact_id"),
    ],
)
def test_a_count_asking_only_whether_there_is_a_row_counts_nothing(op, value, shape, dialect):
    """'At least one' is a semi-join, 'none' an anti-join: no GROUP BY, no count."""
    spec = {"filter": {"event": {"type": "PURCHASE"}, "agg": "count", "op": op, "value": value}}
    text = str(compiled(spec, dialect))
    assert shape in text and "GROUP BY" not in text and "count(*) >" not in text
    tags = {"filter": {"field": "tag_count", "op": op, "value": value}}
    assert "GROUP BY" not in str(compiled(tags, dialect))


def test_dialect_functions():
    spec = {
        "filter": {
            "and": [
                {"field": "email_domain", "op": "eq", "value": "x.pl"},
                {"field": "birth_date", "op": "birthday_within_days", "value": 3},
                {"field": "city", "op": "eq", "value": "ΟΔΟΣ"},
                {"field": "company", "op": "eq", "value": "Łódź"},
            ]
        }
    }
    pg, lite = str(compiled(spec, "postgresql")), str(compiled(spec, "sqlite"))
    assert "split_part(contacts.email, '@', 2)" in pg and "instr(contacts.email, '@')" in lite
    assert (
        "EXTRACT(MONTH FROM contacts.birth_date)" in pg
        and "strftime('%m%d', contacts.birth_date)" in lite
    )
    assert "translate(lower(contacts.city), 'ς', 'σ')" in pg and "lower(contacts.city)" in lite
    # no sigma in the operand: lower() alone compares alike, for less a row
    assert (
        "lower(contacts.company) = lower(" in pg and "translate(lower(contacts.company)" not in pg
    )


def test_age_is_a_range_of_birth_dates(dialect):
    sql = compiled({"filter": {"field": "age", "op": "between", "value": [25, 40]}}, dialect)
    assert "contacts.birth_date <= " in str(sql)
    assert {str(v) for v in sql.params.values()} >= {"2001-03-01", "1985-03-01"}


def test_a_segment_used_twice_compiles_once(dialect):
    """A saved segment is one CTE, however often (and however deep) it is used."""
    segments = {
        "s": {"include": [{"type": "tag", "tags": ["t"]}]},
        "outer": {"include": [{"type": "segment", "segments": ["s"]}] * 3},
    }
    spec = {
        "include": [{"type": "segment", "segments": ["s", "outer"]}],
        "exclude": [{"type": "segment", "segments": ["s"]}],
    }
    text = str(compiled(spec, dialect, segments))
    assert text.startswith("WITH segment_")
    # s: one CTE; outer, used once, is its body inline
    assert text.count("FROM contact_tags") == 1 and text.count(" AS \n(SELECT contacts.id") == 1
    assert "NOT (EXISTS (SELECT segment_" in text  # excluded: an anti-join on the CTE


def test_a_segment_used_once_is_its_body_inline(dialect):
    """Used once, a saved segment is its body's predicate over the same row (one scan of
    contacts); excluded once, an anti-join on its members."""
    segments = {"s": {"include": [{"type": "tag", "tags": ["t"]}], "filter": ENGAGED}}
    text = str(compiled({"include": [{"type": "segment", "segments": ["s"]}]}, dialect, segments))
    assert "WITH" not in text and text.count("FROM contacts") == 1
    assert "contacts.email_opt_in" in text
    excluded = str(
        compiled({"exclude": [{"type": "segment", "segments": ["s"]}]}, dialect, segments)
    )
    assert excluded.startswith("WITH segment_") and "NOT (EXISTS (SELECT segment_" in excluded


ENGAGED = {"field": "email_opt_in", "op": "eq", "value": True}


def test_a_pass_that_forgets_a_node_kind_fails_when_it_is_defined():
    with pytest.raises(TypeError, match="visit_segment_selector"):

        class Forgetful(Visitor[bool]):
            def __getattr__(self, name):  # not a method of the class: still missing
                return None

    class Partial(Visitor[bool], abstract=True):
        pass

    assert issubclass(Compiler, Visitor)
    assert all(callable(getattr(Compiler, k.visit_name)) for k in tree.KINDS)


def test_many_anded_tags_are_one_match_all(dialect):
    """A thousand AND-ed one-tag selectors (\"match all\" in disguise) compile to one
    grouped semi-join."""
    spec = {"filter": {"and": [{"type": "tag", "tags": [f"t{i}"]} for i in range(1000)]}}
    text = str(compiled(spec, dialect))
    assert text.count("FROM contact_tags") == 1 and "HAVING count(*) = " in text
    few = {"filter": {"and": [{"type": "tag", "tags": [f"t{i}"]} for i in range(3)]}}
    assert str(compiled(few, dialect)).count("FROM contact_tags") == 3


def test_received_minus_opened_of_one_mailing_reads_its_row_once(dialect):
    """Received mailing M, minus those who opened it: one probe of M's rows (`opened_at
    IS NULL`), not a semi-join and an anti-join; with two mailings, both (the row differs)."""
    spec = {
        "include": [{"type": "mailing", "mailings": [5], "event": "sent"}],
        "exclude": [{"type": "mailing", "mailings": [5], "event": "opened"}],
    }
    text = str(compiled(spec, dialect))
    assert text.count("FROM mailing_recipients") == 1 and "opened_at IS NULL" in text
    two = {**spec, "exclude": [{"type": "mailing", "mailings": [5, 6], "event": "opened"}]}
    assert str(compiled(two, dialect)).count("FROM mailing_recipients") == 2


def test_lists_share_one_compiled_statement():
    """Lists are one parameter: statements that differ only in their values have the same
    cache key, so SQLAlchemy compiles them once."""

    def key(tags, emails):
        spec = {
            "include": [{"type": "tag", "tags": tags}],
            "filter": {"field": "email", "op": "in", "value": emails},
        }
        checked = check_selection(parse_selection(spec, prefix=""), {}.get, EveryName())
        return count_query(checked, CTX)._generate_cache_key()

    assert key(["a", "b"], ["x@y.z", "q@r.s"]) == key(["c", "d"], ["t@u.v"])
