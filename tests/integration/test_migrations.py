"""The migrations make exactly the tables of app/tables.py, on SQLite and on PostgreSQL.

The session's database comes from `alembic upgrade head` (tests/conftest.py); Alembic's
autogenerate compares it with `app.tables.metadata` and must find nothing to do: no table,
column, index, unique constraint or foreign key more or less, and no difference of type,
nullability or server default. Autogenerate does not look at a partial index's WHERE
clause, so a test below checks which indexes are partial. The month partitions of events
(PostgreSQL) are left out: tables.py declares the partitioned table alone."""

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.db import make_engine
from app.events_partitions import is_partition
from app.migrate import alembic_config
from app.tables import metadata
from tests.conftest import PG_URL, _pg_database

OPTIONS = {
    "compare_type": True,
    "compare_server_default": True,
    # the month partitions of events are not tables of tables.py (app.events_partitions)
    "include_name": lambda name, type_, _parents: not (type_ == "table" and is_partition(name)),
}


def differences(conn: sa.Connection, target: sa.MetaData) -> list:
    return compare_metadata(MigrationContext.configure(conn, opts=OPTIONS), target)


def test_autogenerate_finds_nothing_to_migrate(engine):
    with engine.connect() as conn:
        found = differences(conn, metadata)
    assert found == [], "\n".join(map(str, found))


def test_the_comparison_sees_every_table(engine):
    """Against an empty metadata, every table of tables.py is one to drop: the comparison
    above ran on the migrated database, not on an empty one."""
    with engine.connect() as conn:
        found = differences(conn, sa.MetaData())
    dropped = {diff[1].name for diff in found if diff[0] == "remove_table"}
    assert dropped == set(metadata.tables)


def test_the_same_indexes_are_partial(engine):
    dialect = engine.dialect.name
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        reflected = {
            (table, index["name"])
            for table in metadata.tables
            for index in inspector.get_indexes(table)
            if index.get("dialect_options", {}).get(f"{dialect}_where") is not None
        }
    declared = {
        (table.name, index.name)
        for table in metadata.tables.values()
        for index in table.indexes
        if index.dialect_options[dialect].get("where") is not None
    }
    assert declared, "no partial index in tables.py: this test checks nothing"
    assert reflected == declared


# --- the key rule (migration 0010) --------------------------------------------------------

# Looked up before the account is known: kept whole on every node of a distributed database.
REFERENCE_TABLES = {"accounts", "api_keys"}


def test_every_key_of_an_account_table_leads_with_the_account():
    """What lets a distributed PostgreSQL (docs/scaling.md) shard every account-owned table by
    `account_id`: each primary and unique key leads with it, and each foreign key is either
    the account itself or (account_id, column) → (account_id, id) of a table sharded alike."""
    broken = []
    for table in metadata.tables.values():
        if table.name in REFERENCE_TABLES:
            continue
        keys = [("primary key", table.primary_key.columns)]
        keys += [
            ("unique key", c.columns)
            for c in table.constraints
            if isinstance(c, sa.UniqueConstraint)
        ]
        for kind, columns in keys:
            if [c.name for c in columns][:1] != ["account_id"]:
                broken.append(f"{table.name}: {kind} {[c.name for c in columns]}")
        for fk in table.foreign_key_constraints:
            local = [c.name for c in fk.columns]
            remote = [(e.column.table.name, e.column.name) for e in fk.elements]
            if remote == [("accounts", "id")] and local == ["account_id"]:
                continue
            target = remote[0][0]
            if (
                local[0] != "account_id"
                or target in REFERENCE_TABLES
                or [name for _t, name in remote] != ["account_id", "id"]
            ):
                broken.append(f"{table.name}: foreign key {local} → {remote}")
    assert broken == []


def test_the_database_has_the_keys_the_metadata_declares(engine):
    """The reflected keys, as the test above reads them from the metadata: on PostgreSQL the
    primary keys themselves; on SQLite a key holding a table's own id is its row id, with a
    unique (account_id, id) beside it where foreign keys refer to the table."""
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        for table in metadata.tables.values():
            declared = [c.name for c in table.primary_key.columns]
            reflected = inspector.get_pk_constraint(table.name)["constrained_columns"]
            if engine.dialect.name == "sqlite" and declared[0] == "account_id" and "id" in declared:
                assert reflected == ["id"], table.name
                if declared == ["account_id", "id"]:
                    uniques = inspector.get_unique_constraints(table.name)
                    assert ["account_id", "id"] in [u["column_names"] for u in uniques], table.name
            else:
                assert reflected == declared, table.name
            fks = {
                (tuple(fk["constrained_columns"]), fk["referred_table"])
                for fk in inspector.get_foreign_keys(table.name)
            }
            assert fks == {
                (tuple(c.name for c in fk.columns), fk.referred_table.name)
                for fk in table.foreign_key_constraints
            }, table.name


ROWS = {
    "accounts": "(id, name, created_at) VALUES (1, 'a', :t), (2, 'b', :t)",
    "contacts": "(id, account_id, email, created_at, updated_at)"
    " VALUES (10, 1, 'x@a.test', :t, :t), (20, 2, 'y@b.test', :t, :t)",
    "users": "(id, account_id, email, created_at) VALUES (5, 1, 'u@a.test', :t)",
    "tags": "(id, account_id, name, name_key, created_at) VALUES (100, 1, 'T', 't', :t)",
    "contact_tags": "(contact_id, tag_id, account_id, added_at) VALUES (10, 100, 1, :t)",
    "contact_owners": "(contact_id, user_id, account_id, added_at) VALUES (10, 5, 1, :t)",
    "funnels": "(id, account_id, name, name_key, created_at) VALUES (7, 1, 'F', 'f', :t)",
    "stages": "(id, account_id, funnel_id, name, name_key, position) VALUES (8, 1, 7, 'S', 's', 0)",
    "contact_funnels": "(contact_id, funnel_id, stage_id, account_id, entered_at)"
    " VALUES (10, 7, 8, 1, :t)",
    "mailings": "(id, account_id, name, sent_at, created_at) VALUES (3, 1, 'M', :t, :t)",
    "mailing_recipients": "(mailing_id, contact_id, account_id, sent_at) VALUES (3, 10, 1, :t)",
    "groups": "(id, account_id, name, name_key, created_at) VALUES (4, 1, 'G', 'g', :t)",
    "group_members": "(group_id, contact_id, account_id, added_at) VALUES (4, 10, 1, :t)",
    "contact_details": "(contact_id, name, value, account_id) VALUES (10, 'k', 'v', 1)",
    "events": "(id, account_id, contact_id, type, occurred_at) VALUES (9, 1, 10, 'VISIT', :t)",
    "jobs": "(id, account_id, status, selection, actions, as_of, created_at)"
    " VALUES (6, 1, 'succeeded', '{}', '[]', :t, :t)",
    "job_actions": "(account_id, job_id, position, type) VALUES (1, 6, 0, 'add_tags')",
    "coupons": "(id, account_id, contact_id, name, name_key, code, job_id, created_at)"
    " VALUES (11, 1, 10, 'C', 'c', 'CODE', 6, :t)",
    "links": "(id, account_id, contact_id, job_id, token, url, created_at)"
    " VALUES (12, 1, 10, 6, 'tok', 'https://a.test/', :t)",
    "webhooks": "(id, account_id, url, events, secret, created_at)"
    " VALUES (13, 1, 'https://a.test/h', '[]', 's', :t)",
    "webhook_deliveries": "(id, account_id, webhook_id, event_id, event, job_id, body, status,"
    " next_attempt_at, created_at) VALUES (14, 1, 13, 'e', 'job.finished', 6, '{}', 'pending',"
    " :t, :t)",
    "webhook_attempts": "(id, account_id, delivery_id, webhook_id, attempt, at, status,"
    " duration_ms) VALUES (15, 1, 14, 13, 1, :t, 'failed', 3)",
}
AT = "2026-01-01 00:00:00"
BEFORE = "0009_event_partitions"  # the revision before the key rule


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def blank_url(request, tmp_path) -> Iterator[str]:
    """A database with no schema yet."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'blank.db'}"
        return
    if not PG_URL:
        pytest.skip("PostgreSQL tests need AUDIENCE_TEST_DATABASE_URL")
    yield from _pg_database(PG_URL)


def _counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {t: conn.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar() for t in ROWS}
    finally:
        engine.dispose()


def test_the_key_rule_migration_keeps_every_row_both_ways(blank_url):
    config = alembic_config(blank_url)
    command.upgrade(config, BEFORE)
    engine = make_engine(blank_url)
    with engine.begin() as conn:
        for table, values in ROWS.items():
            conn.execute(sa.text(f"INSERT INTO {table} {values}"), {"t": AT})
    before = _counts(blank_url)
    assert set(before.values()) - {1} == {2}  # two accounts and contacts, one of the rest

    command.upgrade(config, "head")
    assert _counts(blank_url) == before
    with engine.begin() as conn:  # ids still come on their own
        made = conn.execute(
            sa.text(
                "INSERT INTO contacts (account_id, email, created_at, updated_at)"
                " VALUES (2, 'z@b.test', :t, :t) RETURNING id"
            ),
            {"t": AT},
        ).scalar()
        assert made is not None
        conn.execute(sa.text("DELETE FROM contacts WHERE id = :id"), {"id": made})
    # a row can no longer refer to another account's row
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO contact_tags (contact_id, tag_id, account_id, added_at)"
                " VALUES (20, 100, 2, :t)"
            ),
            {"t": AT},
        )

    command.downgrade(config, BEFORE)
    assert _counts(blank_url) == before
    command.upgrade(config, "head")
    with engine.begin() as conn:  # the composite keys cascade as the single ones did
        conn.execute(sa.text("DELETE FROM contacts WHERE id = 10"))
        left = {
            table: conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar()
            for table in ROWS
            if table not in {"accounts", "contacts", "users", "tags", "funnels", "stages"}
        }
    engine.dispose()
    gone = {"contact_tags", "contact_owners", "contact_funnels", "mailing_recipients"}
    gone |= {"group_members", "contact_details", "events", "coupons", "links"}
    assert {table for table, n in left.items() if n == 0} == gone
