"""The check pass without a database: parsed spec → checked tree, every 422 at its path,
saved segments from a dict."""

import dataclasses

import pytest

from app.errors import Invalid
from app.selection import tree
from app.selection.check import MAX_SEGMENT_DEPTH, check_condition, check_selection
from app.selection.check import parse_selection as parse
from app.selection.operators import OPERATORS


def check(spec: dict, segments: dict | None = None, **kw) -> tree.Selection:
    return check_selection(parse(spec, prefix=""), (segments or {}).get, **kw)


def errors(spec: dict, segments: dict | None = None, **kw) -> list[tuple[str, str]]:
    with pytest.raises(Invalid) as caught:
        check(spec, segments, **kw)
    return [(d["path"], d["message"]) for d in caught.value.details]


def test_the_checked_tree_is_typed_and_immutable():
    checked = check(
        {
            "include": [{"type": "tag", "tags": ["VIP", " vip ", "News"], "match": "all"}],
            "filter": {
                "and": [
                    {"field": "birth_date", "op": "between", "value": ["1990-01-01", "1999-12-31"]}
                ]
            },
        }
    )
    tag = checked.body.include[0]
    assert tag == tree.TagSelector(("news", "vip"), match_all=True)
    test = checked.body.filter.items[0]
    assert test.field.name == "birth_date" and test.op is OPERATORS["between"]
    assert [d.isoformat() for d in test.operand] == ["1990-01-01", "1999-12-31"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        tag.keys = ()


def test_parsing_is_left_alone():
    """Check builds a new tree; the parsed spec keeps no private state for compile."""
    parsed = parse({"filter": {"field": "score", "op": "gt", "value": 5}}, prefix="")
    before = parsed.model_dump()
    check_selection(parsed, {}.get)
    assert parsed.model_dump() == before and not parsed.filter.__pydantic_private__


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"filter": {"field": "city", "op": "gt", "value": "a"}},
            [
                (
                    "filter.op",
                    "operator 'gt' does not apply here; use one of contains, ends_with, eq, in, is_empty, is_not_empty, ne, not_contains, not_in, starts_with",
                )
            ],
        ),
        (
            {
                "filter": {
                    "and": [
                        {"field": "score", "op": "eq", "value": 1},
                        {"field": "score", "op": "eq", "value": "x"},
                    ]
                }
            },
            [("filter.and[1].value", "must be a number")],
        ),
        (
            {
                "filter": {
                    "or": [
                        {"detail": "d", "op": "lt", "value": "x", "as": "number"},
                        {"not": {"field": "sex", "op": "eq", "value": "robot"}},
                    ]
                }
            },
            [
                ("filter.or[0].value", "must be a number"),
                ("filter.or[1].not.value", "must be one of female, male, unknown"),
            ],
        ),
        (
            {
                "filter": {
                    "event": {"from": "2026-02-01", "to": "2026-01-01"},
                    "agg": "count",
                    "op": "gte",
                    "value": 1,
                }
            },
            [("filter.event.to", "'to' is before 'from'")],
        ),
        (
            {"filter": {"field": "score", "op": "birthday_within_days", "value": 3}},
            [
                (
                    "filter.op",
                    "operator 'birthday_within_days' does not apply here; use one of between, eq, gt, gte, in, is_empty, is_not_empty, lt, lte, ne, not_in",
                )
            ],
        ),
        (
            {"exclude": [{"type": "segment", "segments": ["nope"]}]},
            [("exclude[0].segments", "unknown segment 'nope'")],
        ),
    ],
    ids=[
        "operator-by-kind",
        "operand-type",
        "every-error-at-once",
        "event-window",
        "birthday-only-on-birth-date",
        "unknown-segment",
    ],
)
def test_errors_point_at_their_path(spec, expected):
    assert errors(spec) == expected


def test_prefix_says_where_the_selection_sits():
    spec = {"filter": {"field": "score", "op": "gt", "value": "x"}}
    with pytest.raises(Invalid) as caught:
        check_selection(parse(spec, prefix="selection"), {}.get, prefix="selection")
    assert caught.value.details[0]["path"] == "selection.filter.value"


def test_a_rule_condition_is_checked_like_a_selection():
    condition = parse(
        {"filter": {"field": "age", "op": "contains", "value": "1"}}, prefix=""
    ).filter
    with pytest.raises(Invalid) as caught:
        check_condition(condition, {}.get, "condition")
    assert caught.value.details[0]["path"] == "condition.op"


def _chain(n: int) -> dict:
    """Segments s1 … sn, each using the next; sn selects a tag."""
    segments = {
        f"s{i}": {"include": [{"type": "segment", "segments": [f"s{i + 1}"]}]} for i in range(1, n)
    }
    segments[f"s{n}"] = {"include": [{"type": "tag", "tags": ["t"]}]}
    return segments


def test_segments_are_resolved_once_into_the_tree():
    segments = {"a": {"include": [{"type": "tag", "tags": ["T"]}]}}
    checked = check(
        {
            "include": [{"type": "segment", "segments": ["A"]}],
            "exclude": [{"type": "segment", "segments": ["a"]}],
        },
        segments,
    )
    one, two = checked.body.include[0].segments[0], checked.body.exclude[0].segments[0]
    assert one is two and one.body.include == (tree.TagSelector(("t",)),)


def test_nesting_up_to_the_limit_is_fine_and_beyond_is_422_at_the_selector():
    segments = _chain(MAX_SEGMENT_DEPTH)
    check({"include": [{"type": "segment", "segments": ["s1"]}]}, segments)
    segments = _chain(MAX_SEGMENT_DEPTH + 3)
    assert errors({"filter": {"not": {"type": "segment", "segments": ["s1"]}}}, segments) == [
        ("filter.not.segments", f"segments nest deeper than {MAX_SEGMENT_DEPTH}")
    ]


def test_depth_counts_a_segment_met_again_deeper():
    """A segment checked once near the top may not be reused where it would nest too deep."""
    segments = _chain(MAX_SEGMENT_DEPTH)
    spec = {"include": [{"type": "segment", "segments": ["s2", "s1"]}]}
    check(spec, segments)
    segments["s0"] = {"include": [{"type": "segment", "segments": ["s1"]}]}
    spec = {"include": [{"type": "segment", "segments": ["s1", "s0"]}]}
    assert errors(spec, segments)[0][1] == f"segments nest deeper than {MAX_SEGMENT_DEPTH}"


def test_cycles():
    segments = {
        "a": {"include": [{"type": "segment", "segments": ["b"]}]},
        "b": {"filter": {"type": "segment", "segments": ["A"]}},
    }
    assert errors({"include": [{"type": "segment", "segments": ["a"]}]}, segments) == [
        ("include[0].segments", "segments refer to each other in a cycle: a → b → a")
    ]
    saving = {"include": [{"type": "segment", "segments": ["b"]}]}
    assert errors(saving, segments, saving="a", prefix="selection") == [
        (
            "selection.include[0].segments",
            "a segment may not refer to itself through others: a → b → a",
        )
    ]
    assert errors({"include": [{"type": "segment", "segments": ["me"]}]}, {}, saving="me") == [
        ("include[0].segments", "a segment may not refer to itself")
    ]


def test_a_stored_segment_that_no_longer_validates_is_named():
    segments = {
        "old": {"filter": {"field": "score", "op": "gt", "value": "x"}},
        "bad": {"bogus": 1},
    }
    assert errors({"include": [{"type": "segment", "segments": ["old"]}]}, segments) == [
        ("segment 'old'.filter.value", "must be a number")
    ]
    path, _ = errors({"include": [{"type": "segment", "segments": ["bad"]}]}, segments)[0]
    assert path == "segment 'bad'.bogus"


def test_segments_multiplied_by_reuse_are_refused_at_once():
    """Six segments each using the previous ten times: 10⁶ conditions once expanded. The
    check counts each segment's size once and stops at the limit, in milliseconds."""
    import time

    from app.selection.check import MAX_EXPANDED_NODES

    segments = {"s0": {"include": [{"type": "tag", "tags": ["a"]}]}}
    for i in range(1, 7):
        segments[f"s{i}"] = {"include": [{"type": "segment", "segments": [f"s{i - 1}"]}] * 10}
    started = time.perf_counter()
    found = errors({"filter": {"not": {"type": "segment", "segments": ["s6"]}}}, segments)
    assert time.perf_counter() - started < 0.5
    assert found == [
        (
            "filter.not.segments",
            f"the selection expands to more than {MAX_EXPANDED_NODES} conditions "
            "(a saved segment counts every time it is used)",
        )
    ]
    check({"include": [{"type": "segment", "segments": ["s3"]}]}, segments)  # 1,111 nodes


def test_values_are_capped_across_the_whole_request():
    from app.selection.check import MAX_EXPANDED_VALUES

    many = [f"x{i}" for i in range(10_000)]
    spec = {"filter": {"or": [{"field": "city", "op": "in", "value": many}] * 3}}
    assert errors(spec)[0] == (
        "filter.or[2]",
        f"the selection holds more than {MAX_EXPANDED_VALUES} values in all "
        "(a saved segment counts every time it is used)",
    )
    check({"filter": {"or": [{"field": "city", "op": "in", "value": many}] * 2}})


class Tags:
    """An account's tags (check.NameSource), counting how often its names are listed."""

    def __init__(self, names: list[str]):
        self.all = names
        self.listed = 0

    def existing(self, kind, keys):
        return {k for k in keys if k in {n.lower() for n in self.all}} if kind == "tag" else set()

    def names(self, kind, funnel=None):
        self.listed += 1
        return self.all if kind == "tag" else []


def test_unknown_names_are_each_named_and_the_first_few_get_suggestions_cheaply():
    """10,000 unknown tags in one list took 80-160 s (a fuzzy search through the account's
    names for each): now the names are listed once and suggestions stop at MAX_OFFERS."""
    from app.selection.check import MAX_OFFERS

    tags = Tags([f"tag{i}" for i in range(100)])
    unknown = [f"t{i}" for i in range(1000)] + ["t0"] * 1000
    found = errors({"include": [{"type": "tag", "tags": unknown}]}, names=tags)
    assert len(found) == 2000 and tags.listed == 1
    assert found[0] == ("include[0].tags[0]", "no tag named 't0'; did you mean 'tag0'?")
    assert found[MAX_OFFERS] == (f"include[0].tags[{MAX_OFFERS}]", f"no tag named 't{MAX_OFFERS}'")
    assert found[1000] == ("include[0].tags[1000]", found[0][1])  # the same name again
