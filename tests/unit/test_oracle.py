"""The test oracle (tests/oracle/evaluator.py) on a few in-memory contacts: it is the
reference the differential test holds the SQL to, so it is tested on its own too."""

from datetime import UTC, date, datetime

from tests.oracle.evaluator import Contact, Event, Recipient, World

AS_OF = "2026-03-01T12:00:00Z"


def world() -> World:
    ann = Contact(
        1,
        "ann@example.com",
        first_name="Ann",
        city="Łódź",
        birth_date=date(1990, 3, 5),
        tags=["VIP"],
        owners=["boss@x.pl"],
        funnels={"Sales": "Won"},
        details={"points": "120"},
        events=[Event("PURCHASE", datetime(2026, 2, 20, tzinfo=UTC), 50.0)],
        mailings={10: Recipient(opened=True)},
    )
    bob = Contact(2, "bob@test.org", city="", score=7, tags=["news"], groups=["G"])
    gone = Contact(3, "gone@example.com", deleted=True, tags=["VIP"])
    return World([ann, bob, gone], {"VIPs": {"include": [{"type": "tag", "tags": ["vip"]}]}})


def select(spec: dict) -> set[int]:
    return world().select({"as_of": AS_OF, **spec})


def test_selectors():
    assert select({}) == {1, 2}
    assert select({"deleted": "only"}) == {3}
    assert select({"include": [{"type": "segment", "segments": ["vips"]}]}) == {1}
    assert select({"exclude": [{"type": "group", "groups": ["g"]}]}) == {1}
    assert select({"include": [{"type": "funnel", "funnel": "SALES", "stages": ["won"]}]}) == {1}
    assert (
        select({"include": [{"type": "mailing", "mailings": [10], "event": "not_opened"}]}) == set()
    )
    assert select({"include": [{"type": "tag", "tags": ["vip", "news"], "match": "all"}]}) == set()


def test_tests():
    assert select({"filter": {"field": "city", "op": "eq", "value": "ŁÓDŹ"}}) == {1}
    assert select({"filter": {"field": "city", "op": "is_empty"}}) == {2}
    assert select({"filter": {"field": "age", "op": "eq", "value": 35}}) == {1}
    assert select(
        {"filter": {"field": "birth_date", "op": "birthday_within_days", "value": 4}}
    ) == {1}
    assert select({"filter": {"field": "owner", "op": "ne", "value": "BOSS@x.pl"}}) == {2}
    assert select({"filter": {"field": "email_domain", "op": "eq", "value": "test.org"}}) == {2}
    assert select({"filter": {"detail": "points", "op": "gt", "value": 100, "as": "number"}}) == {1}
    assert (
        select(
            {
                "filter": {
                    "event": {"type": "PURCHASE", "within_days": 7},
                    "agg": "count",
                    "op": "gte",
                    "value": 1,
                }
            }
        )
        == set()
    )
    assert select(
        {"filter": {"event": {"type": "PURCHASE"}, "agg": "sum", "op": "eq", "value": 0}}
    ) == {2}
    assert select({"filter": {"not": {"field": "score", "op": "gte", "value": 7}}}) == {1}
