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


def compiled(spec: dict, dialect: str, segments: dict | None = None):
    checked = check_selection(parse_selection(spec, prefix=""), (segments or {}).get)
    return count_query(checked, CTX).compile(dialect=DIALECTS[dialect])


@pytest.fixture(params=list(DIALECTS))
def dialect(request) -> str:
    return request.param


SECRET = "x' or 1=1 --"  # names are compared by their lower-cased keys
BOUND = [
    {"include": [{"type": "tag", "tags": [SECRET]}]},
    {"include": [{"type": "funnel", "funnel": SECRET, "stages": [SECRET]}]},
    {"exclude": [{"type": "group", "groups": [SECRET]}]},
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


def test_match_all_groups_and_counts(dialect):
    text = str(
        compiled({"include": [{"type": "tag", "tags": ["a", "b"], "match": "all"}]}, dialect)
    )
    assert "GROUP BY contact_tags.contact_id \nHAVING count(*) = " in text


def test_aggregates_are_grouped_before_they_are_joined(dialect):
    spec = {"filter": {"event": {"type": "PURCHASE"}, "agg": "count", "op": "eq", "value": 0}}
    text = str(compiled(spec, dialect))
    assert "NOT (EXISTS (SELECT events.contact_id" in text and "GROUP BY events.contact_id" in text


def test_dialect_functions():
    spec = {
        "filter": {
            "and": [
                {"field": "email_domain", "op": "eq", "value": "x.pl"},
                {"field": "birth_date", "op": "birthday_within_days", "value": 3},
                {"field": "city", "op": "eq", "value": "Łódź"},
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
    assert text.count("FROM contact_tags") == 1 and text.count(" AS \n(SELECT contacts.id") == 2
    assert "NOT (EXISTS (SELECT segment_" in text  # excluded: an anti-join on the CTE


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
