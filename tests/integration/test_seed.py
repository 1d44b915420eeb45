"""`audience seed` on both databases (COPY on PostgreSQL, INSERT … SELECT on SQLite): the
counts it reports are the rows it stored, and a second run reuses the account's catalog."""

import pytest
import sqlalchemy as sa

from app import tables as t
from app.seed import seed
from app.seed.generator import TABLES as CONTACT_TABLES

CATALOG_TABLES = (t.tags, t.funnels, t.users, t.groups, t.mailings)


def stored(engine, account_id: int) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            table.name: conn.execute(
                sa.select(sa.func.count())
                .select_from(table)
                .where(table.c.account_id == account_id)
            ).scalar_one()
            for table in (*CONTACT_TABLES, *CATALOG_TABLES)
        }


def test_seed_stores_what_it_counts(engine, account):
    account_id, _ = account
    counts = seed(engine, account_id, 700, progress=False, seed=11)
    assert counts == stored(engine, account_id)
    assert counts["contacts"] == 700
    assert (counts["tags"], counts["funnels"], counts["groups"]) == (40, 2, 3)
    assert (counts["users"], counts["mailings"]) == (7, 12)
    assert all(counts[table.name] > 0 for table in CONTACT_TABLES)


def test_a_second_run_adds_contacts_and_reuses_the_catalog(engine, account):
    account_id, _ = account
    first = seed(engine, account_id, 150, progress=False, seed=1)
    second = seed(engine, account_id, 150, progress=False, seed=1)
    rows = stored(engine, account_id)
    assert rows["contacts"] == 300
    for table in CONTACT_TABLES:
        assert rows[table.name] == first[table.name] + second[table.name], table.name
    for table in CATALOG_TABLES:
        assert rows[table.name] == first[table.name] == second[table.name], table.name


def test_no_contacts_means_no_mailings(engine, account):
    account_id, _ = account
    counts = seed(engine, account_id, 0, progress=False)
    assert counts == stored(engine, account_id)
    assert (counts["contacts"], counts["mailings"], counts["tags"]) == (0, 0, 40)


def test_an_unknown_account_is_refused(engine):
    with pytest.raises(ValueError, match="does not exist"):
        seed(engine, 987_654_321, 10, progress=False)
