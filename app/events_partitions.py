"""The month partitions of `events` on PostgreSQL (migration 0009), kept by the workers.

`maintain` makes sure this month and the next AHEAD_MONTHS have their partition, gives a
partition to every earlier month whose events wait in the default partition (moving them
in), and, with a retention (AUDIENCE_EVENT_RETENTION_MONTHS), drops the partitions of
months that ended that many months before this one began: whole tables, never a DELETE.
It is migration 0009's `audience_event_partitions`, a SECURITY DEFINER function: the
application's role may run it without owning the table. An `audience worker` runs it
every hour and at its start (arq cron), the in-process runner at its start and every
EVERY_S after; on SQLite there is nothing to do. docs/partitions.md says it all for
operators.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from app import logs
from app.config import Settings
from app.tables import UTCDateTime

log = logs.get("audience.partitions")

# Months after this one that always have their partition: three months of grace if the
# workers stop maintaining them (after that, new events go to the default partition, where
# they are still counted, just not pruned).
AHEAD_MONTHS = 3
EVERY_S = 3600.0
# The partitions' own names: the default one and one a month.
PARTITION = re.compile(r"^events_(default|[0-9]{4}_[0-9]{2})$")


@dataclass(frozen=True)
class Change:
    """What one call did to one partition: `created` (with `moved` rows moved into it
    from the default partition), `dropped`, or `busy` (a lock not granted within a few
    seconds: left for the next call)."""

    action: str
    partition: str
    moved: int | None


def maintain(
    engine: Engine,
    retention_months: int | None = None,
    ahead: int = AHEAD_MONTHS,
    since: datetime | None = None,
) -> list[Change]:
    """Create, fill and drop month partitions as the module says (`since`: each month from
    its own gets a partition too, before history is loaded); what it did. Returns at once,
    doing nothing, when another session is at it (or on SQLite)."""
    if engine.dialect.name != "postgresql":
        return []
    with engine.begin() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT action, partition_name, moved FROM audience_event_partitions(:a, :k, :s)"
            ).bindparams(sa.bindparam("s", type_=UTCDateTime)),
            {"a": ahead, "k": retention_months, "s": since},
        ).all()
    changes = [Change(*row) for row in rows]
    for change in changes:
        log.info(f"event partition {change.action}", partition=change.partition, moved=change.moved)
    return changes


def maintain_logged(engine: Engine, settings: Settings) -> None:
    """maintain() with the settings' retention, its failure logged, never raised: until the
    next try, events of months without a partition go to the default one."""
    try:
        maintain(engine, settings.event_retention_months)
    except Exception:  # noqa: BLE001 - the database may be away or not migrated yet
        log.exception("event partitions not maintained")


def check(conn: sa.Connection) -> dict:
    """For `audience doctor` (PostgreSQL): a problem when next month has no partition (no
    upkeep ran this month: are the workers running?); else how far they go and about how
    many events wait in the default partition (the planner's estimate)."""
    rows = conn.exec_driver_sql(
        "SELECT relname, reltuples, date_trunc('month', now(), 'UTC') + interval '1 month'"
        " FROM pg_inherits JOIN pg_class ON pg_class.oid = inhrelid"
        " WHERE inhparent = 'events'::regclass ORDER BY relname"
    ).all()
    months = [name for name, _, _ in rows if name != "events_default"]
    if not rows:
        return {"ok": False, "detail": "events has no partitions: run `audience migrate`"}
    waiting = next((int(n) for name, n, _ in rows if name == "events_default"), 0)
    following = f"events_{rows[0][2].astimezone(UTC):%Y_%m}"
    if following not in months:
        return {
            "ok": False,
            "detail": f"no {following} yet: is a worker (or the API's runner) running? "
            "(docs/partitions.md)",
        }
    about = "unknown" if waiting < 0 else f"about {waiting}"
    return {
        "ok": True,
        "detail": f"{len(months)} months, {months[0]} to {months[-1]}; "
        f"events_default holds {about} events",
    }


def is_partition(name: str) -> bool:
    """A partition of events (tables.py declares the partitioned table alone)."""
    return PARTITION.match(name) is not None
