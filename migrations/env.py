from alembic import context

from app.config import get_settings
from app.db import make_engine
from app.events_partitions import is_partition
from app.tables import metadata

config = context.config


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or get_settings().database_url
    engine = make_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection) -> None:
    if connection.dialect.name != "sqlite":
        _migrate(connection)
        return
    # Rebuilding a table (Alembic's batch mode) drops the old one, which with foreign keys
    # enforced would delete every row referring to it. SQLite takes this setting only
    # outside a transaction, so it goes to the driver's connection before Alembic begins;
    # the rows are checked before the migrations commit.
    raw = connection.connection.driver_connection
    raw.execute("PRAGMA foreign_keys=OFF")
    try:
        _migrate(connection)
    finally:
        raw.execute("PRAGMA foreign_keys=ON")


def _migrate(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=_declared,
    )
    with context.begin_transaction():
        context.run_migrations()
        if connection.dialect.name == "sqlite":
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"migrating broke foreign keys (table, row, …): {broken[:5]}")


def _declared(name, type_, parent_names) -> bool:
    """What autogenerate compares: all but the partitions of events, which tables.py does
    not declare (app.events_partitions makes and drops them)."""
    return not (type_ == "table" and is_partition(name))


run_migrations()
