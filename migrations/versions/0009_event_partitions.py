"""`events` partitioned by month on PostgreSQL (SQLite: nothing changes).

The table is rebuilt, data and all, as a table partitioned by RANGE (occurred_at): a
partition a calendar month (UTC) named `events_YYYY_MM`, one for every month that has
events and for this month and the next AHEAD, and `events_default` for whatever falls in
no month partition (an import of old history, a client's year-2040 date), so an insert
never fails. The primary key becomes (account_id, occurred_at, id): a unique key of a
partitioned table must hold its partition column, and every key leads with the account.
Indexes, foreign keys, CHECK constraints, row-level security and its policies, the
privileges granted on the table and its owner are copied from the table as it is
(whatever an operator added too); the id sequence is the same one, so ids go on from where
they were. The partitions have no policy and no grants: they are reached through events.

`audience_event_partitions(ahead, keep, since)` (SECURITY DEFINER: the application's role
may call it, and it alone may change the partitions) keeps them: a partition for this
month and `ahead` more (and each month from `since`, given one), a partition for any
earlier month whose events sit in the default one (they are moved into it), and, given
`keep`, drops every month partition that ended `keep` months before this month began.
app/events_partitions.py calls it.

Cost: one pass over the table to find its months, a copy of every row into the new table,
its primary key and indexes built, its foreign keys checked, ANALYZE; all in the
migration's transaction. Meanwhile reads of `events` go on; writes to it (and the deletes
of contacts that cascade to it) wait; the foreign keys' check holds off writes to
`contacts` and `accounts`, and the swap at the end holds off reads for a moment. It needs
the disk for a second copy of the table and its indexes until it commits.
docs/partitions.md has the measured times.

The migrating role must bypass row-level security (a superuser or BYPASSRLS, as for 0004):
`row_security = off` makes the copy fail rather than copy only the rows a policy shows.

Revision ID: 0009_event_partitions
Revises: 0008_webhooks
"""

import re
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0009_event_partitions"
down_revision = "0008_webhooks"
branch_labels = None
depends_on = None

TABLE = "events"
NEW = "events_0009"  # the rebuilt table, until it takes the name
AHEAD = 3  # months after this one that get their partition now
KEY = {"partitioned": "account_id, occurred_at, id", "plain": "id"}
ROLE = "audience_app"
MAINTAIN_SIGNATURE = "audience_event_partitions(integer, integer, timestamptz)"
ADD_SIGNATURE = "audience_event_partition_add(text, timestamptz)"

MAINTAIN = r"""
CREATE FUNCTION audience_event_partitions(
    ahead integer, keep integer DEFAULT NULL, since timestamptz DEFAULT NULL
) RETURNS TABLE (action text, partition_name text, moved bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = @SCHEMA@, pg_temp
SET row_security = off
SET lock_timeout = '3s'
SET "TimeZone" = 'UTC'
SET "DateStyle" = 'ISO, YMD'
AS $fn$
-- Month partitions of events: see migration 0009. `since`: every month from its own on
-- gets a partition too (before loading history). Returns what it did: created (with
-- the rows moved in from the default partition), dropped, or busy (a lock not granted
-- within lock_timeout: left for the next call). One call at a time; a second one
-- returns at once, doing nothing.
DECLARE
    this_month constant timestamptz := date_trunc('month', now(), 'UTC');
    horizon timestamptz;
    month timestamptz;
    part text;
BEGIN
    IF ahead IS NULL OR ahead NOT BETWEEN 0 AND 120 OR keep < 1
       OR since < '0001-01-01 00:00:00+00' THEN
        RAISE EXCEPTION 'audience_event_partitions: ahead must be 0 to 120, keep 1 or more,'
            ' since in the years of our era' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT pg_try_advisory_xact_lock(hashtext('audience_event_partitions')) THEN
        RETURN;
    END IF;
    horizon := this_month + make_interval(months => ahead + 1);
    FOR month IN
        SELECT m FROM generate_series(
            least(this_month, date_trunc('month', since, 'UTC')), horizon - interval '1 month',
            '1 month'
        ) m
        UNION
        SELECT date_trunc('month', occurred_at, 'UTC') FROM events_default
        WHERE occurred_at >= '0001-01-01 00:00:00+00' AND occurred_at < horizon
        ORDER BY 1
    LOOP
        part := 'events_' || to_char(month, 'YYYY_MM');
        CONTINUE WHEN EXISTS (
            SELECT FROM pg_inherits JOIN pg_class ON pg_class.oid = inhrelid
            WHERE inhparent = 'events'::regclass AND relname = part
        );
        action := 'created';
        partition_name := part;
        BEGIN
            moved := audience_event_partition_add(part, month);
        EXCEPTION WHEN lock_not_available THEN
            action := 'busy';
            moved := NULL;
        END;
        RETURN NEXT;
    END LOOP;
    IF keep IS NULL THEN
        RETURN;
    END IF;
    FOR part IN
        SELECT relname FROM pg_inherits JOIN pg_class ON pg_class.oid = inhrelid
        WHERE inhparent = 'events'::regclass AND relname ~ '^events_[0-9]{4}_[0-9]{2}$'
          AND make_timestamptz(substr(relname, 8, 4)::int, substr(relname, 13, 2)::int, 1,
                               0, 0, 0, 'UTC') + interval '1 month'
              <= this_month - make_interval(months => keep)
        ORDER BY relname
    LOOP
        action := 'dropped';
        partition_name := part;
        moved := NULL;
        BEGIN
            EXECUTE format('DROP TABLE %I', part);
        EXCEPTION WHEN lock_not_available THEN
            action := 'busy';
        END;
        RETURN NEXT;
    END LOOP;
END
$fn$
"""

ADD = r"""
CREATE FUNCTION audience_event_partition_add(part text, month timestamptz) RETURNS bigint
LANGUAGE plpgsql
SET search_path = @SCHEMA@, pg_temp
AS $fn$
-- The partition `part` of events for the month starting at `month`: made as a table of
-- its own, the month's rows moved into it from the default partition (which could not
-- hold them once the month has a partition), then attached. ATTACH holds the parent with
-- a lock that lets reads and writes go on; the default partition it scans (keep it
-- small) is locked outright meanwhile. Returns the number of rows moved.
DECLARE
    month_end constant timestamptz := month + interval '1 month';
    moved bigint := 0;
BEGIN
    EXECUTE format(
        'CREATE TABLE %I (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS'
        ' INCLUDING STORAGE)', part);
    -- events' owner's; reached through events only: no policy here, so no direct access
    -- but the owner's
    EXECUTE format('ALTER TABLE %I OWNER TO %s', part,
                   (SELECT relowner::regrole FROM pg_class WHERE oid = 'events'::regclass));
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', part);
    IF EXISTS (
        SELECT FROM events_default WHERE occurred_at >= month AND occurred_at < month_end
    )
    THEN
        LOCK TABLE events_default IN ACCESS EXCLUSIVE MODE;  -- none of the month's come in
        EXECUTE format(
            'WITH gone AS (DELETE FROM events_default WHERE occurred_at >= $1'
            ' AND occurred_at < $2 RETURNING *) INSERT INTO %I SELECT * FROM gone', part)
            USING month, month_end;
        GET DIAGNOSTICS moved = ROW_COUNT;
    END IF;
    EXECUTE format('ALTER TABLE events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   part, month, month_end);
    RETURN moved;
END
$fn$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _rebuild(partitioned=True)
    # the functions work in the schema of events, whoever calls them
    schema = op.get_bind().exec_driver_sql("SELECT quote_ident(current_schema())").scalar()
    op.execute(ADD.replace("@SCHEMA@", schema))
    op.execute(f"REVOKE ALL ON FUNCTION {ADD_SIGNATURE} FROM PUBLIC")
    op.execute(MAINTAIN.replace("@SCHEMA@", schema))
    op.execute(f"REVOKE ALL ON FUNCTION {MAINTAIN_SIGNATURE} FROM PUBLIC")
    op.execute(
        f"""
        DO $$
        BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN
                GRANT EXECUTE ON FUNCTION {MAINTAIN_SIGNATURE} TO {ROLE};
            END IF;
        END
        $$
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP FUNCTION {MAINTAIN_SIGNATURE}")
    op.execute(f"DROP FUNCTION {ADD_SIGNATURE}")
    _rebuild(partitioned=False)


def _rebuild(partitioned: bool) -> None:
    """Rebuild `events` as a partitioned table (or back as a plain one) with the same
    rows, ids, indexes, constraints, policies and privileges, then give it the name."""
    conn = op.get_bind()
    # copy every row or fail: never only those some policy lets the migrating role see
    op.execute("SET LOCAL row_security = off")
    op.execute(f"LOCK TABLE {TABLE} IN EXCLUSIVE MODE")  # reads go on, writes wait
    _refuse_triggers(conn)
    options = " PARTITION BY RANGE (occurred_at)" if partitioned else ""
    op.execute(
        f"CREATE TABLE {NEW} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS"
        f" INCLUDING STORAGE INCLUDING COMMENTS){options}"
    )
    made = [NEW, *(_partitions(conn) if partitioned else [])]
    owner = conn.exec_driver_sql(
        f"SELECT relowner::regrole::text FROM pg_class WHERE oid = '{TABLE}'::regclass"
    ).scalar()
    for table in made:  # events' owner's, whoever migrates (a superuser, say)
        op.execute(f"ALTER TABLE {table} OWNER TO {owner}")
    op.execute(f"INSERT INTO {NEW} SELECT * FROM {TABLE}")
    kind = "partitioned" if partitioned else "plain"
    op.execute(f"ALTER TABLE {NEW} ADD CONSTRAINT pk_{NEW} PRIMARY KEY ({KEY[kind]})")
    indexes = _copy_indexes(conn)
    _copy_foreign_keys(conn)
    _copy_security(conn)
    op.execute(f"ANALYZE {NEW}")
    sequence = conn.exec_driver_sql(f"SELECT pg_get_serial_sequence('{TABLE}', 'id')").scalar()
    op.execute(f"ALTER SEQUENCE {sequence} OWNED BY NONE")  # else it goes with the table
    op.execute(f"DROP TABLE {TABLE}")
    op.execute(f"ALTER TABLE {NEW} RENAME TO {TABLE}")
    op.execute(f"ALTER TABLE {TABLE} RENAME CONSTRAINT pk_{NEW} TO pk_{TABLE}")
    for name in indexes:
        op.execute(f"ALTER INDEX {name}_0009 RENAME TO {name}")
    op.execute(f"ALTER SEQUENCE {sequence} OWNED BY {TABLE}.id")


def _refuse_triggers(conn: sa.Connection) -> None:
    """A trigger on events would have to be made again by hand: stop rather than lose it."""
    triggers = conn.exec_driver_sql(
        f"SELECT tgname FROM pg_trigger WHERE tgrelid = '{TABLE}'::regclass AND NOT tgisinternal"
    ).scalars()
    if names := list(triggers):
        raise RuntimeError(f"events has triggers {names}: drop them, migrate, make them again")


def _months(conn: sa.Connection) -> list[datetime]:
    """The months to partition: every month (UTC) with an event, up to this one and
    AHEAD more (later ones stay in the default partition until they are that close)."""
    this = conn.exec_driver_sql("SELECT date_trunc('month', now(), 'UTC')").scalar()
    ahead = [_add_months(this, n) for n in range(AHEAD + 1)]
    found = conn.exec_driver_sql(
        f"SELECT DISTINCT date_trunc('month', occurred_at, 'UTC') FROM {TABLE}"
        " WHERE occurred_at >= '0001-01-01 00:00:00+00' AND occurred_at < %(horizon)s",
        {"horizon": _add_months(this, AHEAD + 1)},
    ).scalars()
    return sorted({*ahead, *found})


def _add_months(month: datetime, n: int) -> datetime:
    years, index = divmod(month.month - 1 + n, 12)
    return datetime(month.year + years, index + 1, 1, tzinfo=UTC)


def _partitions(conn: sa.Connection) -> list[str]:
    """The default partition and one a month, each without a policy of its own: reached
    through events (whose policies hold), never directly but by their owner. Returns
    their names."""
    op.execute(f"CREATE TABLE events_default PARTITION OF {NEW} DEFAULT")
    names = ["events_default"]
    for month in _months(conn):
        name = f"events_{month:%Y_%m}"
        upper = _add_months(month, 1)
        op.execute(
            f"CREATE TABLE {name} PARTITION OF {NEW} FOR VALUES FROM ('{month.isoformat()}')"
            f" TO ('{upper.isoformat()}')"
        )
        names.append(name)
    for name in names:
        op.execute(f"ALTER TABLE {name} ENABLE ROW LEVEL SECURITY")
    return names


INDEX = re.compile(r"^CREATE (UNIQUE )?INDEX (\S+) ON (ONLY )?\S+ USING ")


def _copy_indexes(conn: sa.Connection) -> list[str]:
    """Every index of events but its primary key's, on the new table under a name of its
    own (each gets its name back at the swap). Returns their names."""
    rows = conn.exec_driver_sql(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i"
        " JOIN pg_class c ON c.oid = i.indexrelid"
        f" WHERE i.indrelid = '{TABLE}'::regclass AND NOT i.indisprimary ORDER BY c.relname"
    ).all()
    for name, definition in rows:
        found = INDEX.match(definition)
        assert found, definition
        unique = found.group(1) or ""
        op.execute(f"CREATE {unique}INDEX {name}_0009 ON {NEW} USING {definition[found.end() :]}")
    return [name for name, _ in rows]


def _copy_foreign_keys(conn: sa.Connection) -> None:
    """The foreign keys, under their names (a constraint's name is the table's own)."""
    rows = conn.exec_driver_sql(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
        f" WHERE conrelid = '{TABLE}'::regclass AND contype = 'f' ORDER BY conname"
    ).all()
    for name, definition in rows:
        op.execute(f'ALTER TABLE {NEW} ADD CONSTRAINT "{name}" {definition}')


def _copy_security(conn: sa.Connection) -> None:
    """Row-level security as events has it (enabled, forced, each policy) and every
    privilege granted on it."""
    enabled, forced = conn.exec_driver_sql(
        f"SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = '{TABLE}'::regclass"
    ).one()
    if enabled:
        op.execute(f"ALTER TABLE {NEW} ENABLE ROW LEVEL SECURITY")
    if forced:
        op.execute(f"ALTER TABLE {NEW} FORCE ROW LEVEL SECURITY")
    policies = conn.exec_driver_sql(
        "SELECT quote_ident(polname), CASE WHEN polpermissive THEN 'PERMISSIVE'"
        " ELSE 'RESTRICTIVE' END, CASE polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT'"
        " WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,"
        " (SELECT string_agg(CASE WHEN r = 0 THEN 'PUBLIC' ELSE quote_ident(rolname) END, ', ')"
        "  FROM unnest(polroles) r LEFT JOIN pg_roles ON pg_roles.oid = r),"
        " pg_get_expr(polqual, polrelid), pg_get_expr(polwithcheck, polrelid)"
        f" FROM pg_policy WHERE polrelid = '{TABLE}'::regclass ORDER BY polname"
    ).all()
    for name, permissive, command, roles, using, check in policies:
        op.execute(
            f"CREATE POLICY {name} ON {NEW} AS {permissive} FOR {command} TO {roles}"
            + (f" USING ({using})" if using is not None else "")
            + (f" WITH CHECK ({check})" if check is not None else "")
        )
    grants = conn.exec_driver_sql(
        "SELECT a.privilege_type, CASE WHEN a.grantee = 0 THEN 'PUBLIC'"
        " ELSE quote_ident(r.rolname) END, a.is_grantable"
        " FROM pg_class c, aclexplode(c.relacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee"
        f" WHERE c.oid = '{TABLE}'::regclass AND a.grantee <> c.relowner"
    ).all()
    for privilege, grantee, grantable in grants:
        option = " WITH GRANT OPTION" if grantable else ""
        op.execute(f"GRANT {privilege} ON {NEW} TO {grantee}{option}")
