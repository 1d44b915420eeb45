"""Run Alembic from inside the package, wherever it is installed."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

import migrations
from app.db import make_engine, refresh_statistics


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def revision(url: str) -> str | None:
    """The database's schema revision (None: no schema yet)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def upgrade(url: str) -> tuple[str | None, str | None]:
    """Migrate to the newest schema, then refresh the planner's statistics (SQLite keeps
    none of its own: a database filled before them would plan blind). Returns the revision
    before and after."""
    before = revision(url)
    command.upgrade(alembic_config(url), "head")
    after = revision(url)
    if not url.startswith("sqlite"):
        return before, after  # PostgreSQL's autovacuum keeps them
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            refresh_statistics(conn)
    finally:
        engine.dispose()
    return before, after
