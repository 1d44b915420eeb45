"""The seed's generator without a database: the same rows for the same seed and clock,
and rows the tables and the app's loading rules accept."""

import random
from collections import Counter
from datetime import UTC, datetime

import pytest

from app import tables as t
from app.contacts.schemas import ContactIn
from app.seed.catalog import Catalog, Mailing, plan_mailings
from app.seed.generator import COLUMNS, TABLES, Generator
from app.seed.vocabulary import DAY, EVENT_TYPES, TAGS, YEAR
from app.seed.writers import ObjectCodec, TextCodec

NOW = int(datetime(2026, 6, 15, 10, 30, tzinfo=UTC).timestamp())
ACCOUNT = 7
IDS = list(range(1000, 1600))
# Made-up ids, apart from one another, so a row that refers to the wrong kind shows.
CATALOG = Catalog(
    tags=list(range(100, 100 + len(TAGS))),
    funnels=[(200, [211, 212, 213, 214, 215, 216]), (300, [311, 312, 313, 314])],
    groups=[401, 402, 403],
    users=list(range(501, 508)),
    mailings=[
        Mailing(600 + i, m.sent, m.share)
        for i, m in enumerate(plan_mailings(random.Random(3), NOW))
    ],
)
PRIMARY_KEYS = {table: [c.name for c in table.primary_key.columns] for table in TABLES}


def generate(seed: int, codec=None, ids=IDS, first: int = 0):
    rng = random.Random(seed)
    generator = Generator(rng, ACCOUNT, 2 * len(IDS), NOW, codec or ObjectCodec(), CATALOG)
    return generator.batch(ids, first)


@pytest.fixture(scope="module")
def batch():
    return generate(42)


def rows_as_dicts(batch, table):
    return [dict(zip(COLUMNS[table], row, strict=True)) for row in batch[table]]


def test_the_same_seed_makes_the_same_rows(batch):
    assert generate(42) == batch
    assert generate(43)[t.contacts] != batch[t.contacts]


def test_text_rows_are_the_object_rows_spelled_for_copy(batch):
    text = generate(42, TextCodec(NOW))
    for table in TABLES:
        assert len(text[table]) == len(batch[table]), table.name
    (created_text, created) = (rows_as_dicts(b, t.contacts)[0]["created_at"] for b in (text, batch))
    assert datetime.fromisoformat(created_text) == created


@pytest.mark.parametrize("table", TABLES, ids=lambda table: table.name)
def test_rows_fit_their_table(batch, table):
    rows = rows_as_dicts(batch, table)
    assert rows, f"no {table.name} in {len(IDS)} contacts"
    for row in rows:
        assert row["account_id"] == ACCOUNT
        assert row.get("contact_id", row.get("id")) in IDS
        for column in table.c:
            if column.name in row and not column.nullable:
                assert row[column.name] is not None, (table.name, column.name)
    if table is not t.events:  # an event's key is the database's
        keys = Counter(tuple(row[name] for name in PRIMARY_KEYS[table]) for row in rows)
        assert max(keys.values()) == 1, f"a {table.name} key twice"


def test_contacts_are_what_the_api_would_load(batch):
    emails = set()
    for row in rows_as_dicts(batch, t.contacts):
        fields = {name: row[name] for name in ContactIn.model_fields if name in row}
        contact = ContactIn.model_validate(fields)
        assert contact.email == row["email"]  # already lower-case
        assert str(row["id"]) in row["email"]
        emails.add(row["email"])
        assert NOW - 3 * YEAR <= row["created_at"].timestamp() <= row["updated_at"].timestamp()
        assert row["updated_at"].timestamp() <= NOW
    assert len(emails) == len(IDS)


def test_ids_grow_with_creation(batch):
    created = [row["created_at"] for row in rows_as_dicts(batch, t.contacts)]
    later = generate(42, ids=list(range(5000, 5600)), first=len(IDS))
    assert max(created) <= min(row["created_at"] for row in rows_as_dicts(later, t.contacts))


def test_rows_refer_to_the_catalog(batch):
    stages = dict(CATALOG.funnels)
    assert {r["tag_id"] for r in rows_as_dicts(batch, t.contact_tags)} <= set(CATALOG.tags)
    for row in rows_as_dicts(batch, t.contact_funnels):
        assert row["stage_id"] in stages[row["funnel_id"]]
    assert {r["user_id"] for r in rows_as_dicts(batch, t.contact_owners)} <= set(CATALOG.users)
    assert {r["group_id"] for r in rows_as_dicts(batch, t.group_members)} == set(CATALOG.groups)
    mailings = {m.id: m.sent for m in CATALOG.mailings}
    created = {r["id"]: r["created_at"].timestamp() for r in rows_as_dicts(batch, t.contacts)}
    for row in rows_as_dicts(batch, t.mailing_recipients):
        assert (
            row["sent_at"].timestamp() == mailings[row["mailing_id"]] > created[row["contact_id"]]
        )
        if row["bounced"]:
            assert row["opened_at"] is None
        if row["clicked_at"] is not None:
            assert row["sent_at"] < row["opened_at"] <= row["clicked_at"]


def test_events_come_in_time_order_within_two_years(batch):
    events = rows_as_dicts(batch, t.events)
    occurred = [row["occurred_at"] for row in events]
    assert occurred == sorted(occurred)
    assert NOW - 2 * YEAR <= occurred[0].timestamp() <= occurred[-1].timestamp() <= NOW
    assert {row["type"] for row in events} == {kind for kind, _ in EVENT_TYPES}
    for row in events:
        if row["type"] in ("VISIT", "OTHER"):
            assert row["value"] is None and row["products"] is None
        assert row["details"] is None or isinstance(row["details"], dict)


def test_mailings_are_one_a_month_over_the_last_year():
    planned = plan_mailings(random.Random(5), NOW)
    assert len(planned) == 12 == len({p.name for p in planned})
    assert all(NOW - YEAR - 31 * DAY < p.drafted < p.sent < NOW for p in planned)
    assert [p.sent for p in planned] == sorted(p.sent for p in planned)
