"""The migrations make exactly the tables of app/tables.py, on SQLite and on PostgreSQL.

The session's database comes from `alembic upgrade head` (tests/conftest.py); Alembic's
autogenerate compares it with `app.tables.metadata` and must find nothing to do: no table,
column, index, unique constraint or foreign key more or less, and no difference of type,
nullability or server default. Autogenerate does not look at a partial index's WHERE
clause, so a test below checks which indexes are partial. The month partitions of events
(PostgreSQL) are left out: tables.py declares the partitioned table alone."""

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.events_partitions import is_partition
from app.tables import metadata

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
