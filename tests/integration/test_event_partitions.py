"""`events` partitioned by month on PostgreSQL (migration 0009, app/events_partitions.py):
the migration converts a table with rows in it and back, keeping rows, ids, indexes,
foreign keys, row-level security and privileges; the upkeep creates months ahead (again
and again, to the same effect), gives history its months, moves what waits in the default
partition, drops only months past the retention; an event of any date inserts; and event
conditions read only the partitions of their window. Each test has a database of its own
(retention drops partitions: never the session's)."""

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from psycopg import sql as psql
from sqlalchemy.dialects.postgresql import psycopg as pg_dialect

from app import events_partitions
from app import tables as t
from app.auth import create_account
from app.db import act_as, make_engine
from app.jobs.transports import InProcessRunner
from app.jobs.worker import make_worker, partition_events
from app.migrate import alembic_config, upgrade
from app.selection.service import prepare
from tests import conftest
from tests.conftest import app_role_engine, doctor, login_role, make_settings

pytestmark = pytest.mark.postgres
ROLE = "audience_app"
PARTITIONED = "0009_event_partitions"  # the migration tested here (later ones have their own)


@contextmanager
def as_app(engine: sa.Engine) -> Iterator[sa.Engine]:
    """An engine on `engine`'s database logged in as the application is: a login role that
    is a member of audience_app (tests/conftest.py, login_role)."""
    url = engine.url.render_as_string(hide_password=False)
    with login_role(url) as login, app_role_engine(login, 1) as app:
        yield app


def new_database() -> Iterator[str]:
    """A new database, no schema yet; dropped afterwards."""
    if not conftest.PG_URL:
        pytest.skip("PostgreSQL tests need AUDIENCE_TEST_DATABASE_URL")
    made = conftest._pg_database(conftest.PG_URL)
    yield next(made)
    made.close()


empty_url = pytest.fixture(new_database)


@pytest.fixture
def url(empty_url) -> str:
    upgrade(empty_url)
    return empty_url


@pytest.fixture
def engine(url) -> Iterator[sa.Engine]:
    engine = make_engine(url)
    yield engine
    engine.dispose()


def add_months(month: datetime, n: int) -> datetime:
    years, index = divmod(month.month - 1 + n, 12)
    return datetime(month.year + years, index + 1, 1, tzinfo=UTC)


def this_month(conn) -> datetime:
    """The database's month now (the upkeep's clock), in UTC."""
    month = conn.exec_driver_sql("SELECT date_trunc('month', now(), 'UTC')").scalar()
    return month.astimezone(UTC)


def name(month: datetime) -> str:
    return f"events_{month:%Y_%m}"


def partitions(conn) -> set[str]:
    return set(
        conn.exec_driver_sql(
            "SELECT relname FROM pg_inherits JOIN pg_class ON pg_class.oid = inhrelid"
            " WHERE inhparent = 'events'::regclass"
        ).scalars()
    )


def homes(conn) -> dict[int, str]:
    """Each event's id → the partition holding it."""
    return dict(conn.exec_driver_sql("SELECT id, tableoid::regclass::text FROM events").all())


def account_with_contacts(engine: sa.Engine, n: int = 3) -> tuple[int, list[int]]:
    with engine.begin() as conn:
        account_id, _key = create_account(conn, "partitions")
        ids = conn.execute(
            sa.insert(t.contacts).returning(t.contacts.c.id),
            [
                {
                    "account_id": account_id,
                    "email": f"c{i}@example.com",
                    "created_at": t.utcnow(),
                    "updated_at": t.utcnow(),
                }
                for i in range(n)
            ],
        ).scalars()
        return account_id, sorted(ids)


def add_events(engine: sa.Engine, account_id: int, contact_id: int, times) -> list[int]:
    """Events at `times`, inserted as the application does (its role, its account)."""
    with as_app(engine) as app, app.begin() as conn:
        act_as(conn, account_id)
        rows = [
            {
                "account_id": account_id,
                "contact_id": contact_id,
                "type": "PURCHASE",
                "occurred_at": at,
                "value": 1.0,
            }
            for at in times
        ]
        return [
            conn.execute(sa.insert(t.events).values(**row).returning(t.events.c.id)).scalar()
            for row in rows
        ]


# --- the migration ---------------------------------------------------------------------

# What must survive the round trip, as the catalog tells it.
SHAPE = {
    "indexes": "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index"
    " WHERE indrelid = 'events'::regclass AND NOT indisprimary",
    "foreign keys": "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
    " WHERE conrelid = 'events'::regclass AND contype = 'f'",
    "policies": "SELECT polname, polcmd, polpermissive, polroles::text,"
    " pg_get_expr(polqual, polrelid), pg_get_expr(polwithcheck, polrelid)"
    " FROM pg_policy WHERE polrelid = 'events'::regclass",
    "security": "SELECT relrowsecurity, relforcerowsecurity FROM pg_class"
    " WHERE oid = 'events'::regclass",
    "grants": "SELECT a.grantee::regrole::text, a.privilege_type FROM pg_class c,"
    " aclexplode(c.relacl) a WHERE c.oid = 'events'::regclass",
}
ROWS = "SELECT id, account_id, contact_id, type, occurred_at, value, products, details::text"
ROWS += " FROM events ORDER BY id"


def shape(conn) -> dict[str, set]:
    found = {what: set(conn.exec_driver_sql(query).all()) for what, query in SHAPE.items()}
    # ONLY: a partitioned table's own index (its partitions have theirs)
    found["indexes"] = {(n, d.replace(" ON ONLY ", " ON ")) for n, d in found["indexes"]}
    return found


def key(conn) -> list[str]:
    return list(
        conn.exec_driver_sql(
            "SELECT a.attname FROM pg_index i, unnest(i.indkey) WITH ORDINALITY k(attnum, n)"
            " JOIN pg_attribute a ON a.attrelid = 'events'::regclass AND a.attnum = k.attnum"
            " WHERE i.indrelid = 'events'::regclass AND i.indisprimary ORDER BY k.n"
        ).scalars()
    )


def relkind(conn) -> str:
    return conn.exec_driver_sql(
        "SELECT relkind FROM pg_class WHERE oid = 'events'::regclass"
    ).scalar()


def test_the_migration_partitions_a_filled_table_and_back(empty_url):
    """From 0008 with events of two accounts (history, this month, next year, 2040, 1971),
    up to 0009 and down again: the same rows and ids, keys, indexes, policies, grants; the
    sequence goes on; each row in its month's partition (2040's in the default one)."""
    config = alembic_config(empty_url)
    command.upgrade(config, "0008_webhooks")
    engine = make_engine(empty_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO accounts (name, created_at) VALUES ('a', now()), ('b', now())"
            )
            conn.exec_driver_sql(
                "INSERT INTO contacts (account_id, email, created_at, updated_at)"
                " SELECT a, 'c' || a || '@x.com', now(), now() FROM generate_series(1, 2) a"
            )
            conn.exec_driver_sql(
                "INSERT INTO events"
                " (account_id, contact_id, type, occurred_at, value, products, details)"
                " SELECT c.account_id, c.id, 'T' || n, at, n, 'p' || n, json_build_object('n', n)"
                " FROM contacts c, unnest(ARRAY[timestamptz '1971-05-05 10:00Z',"
                "  '2024-02-29 23:59:59.999999Z', '2024-03-01Z', now(),"
                "  now() + interval '11 months', '2040-01-01Z']) WITH ORDINALITY e(at, n)"
            )
            month = this_month(conn)
            before_rows, before_shape, before_key = (
                conn.exec_driver_sql(ROWS).all(),
                shape(conn),
                key(conn),
            )
        assert before_key == ["id"] and len(before_rows) == 12

        command.upgrade(config, PARTITIONED)
        with engine.begin() as conn:
            assert relkind(conn) == "p"
            assert key(conn) == ["account_id", "occurred_at", "id"]
            assert conn.exec_driver_sql(ROWS).all() == before_rows
            assert shape(conn) == before_shape
            owners = "SELECT DISTINCT relowner FROM pg_class WHERE relname ~ '^events'"
            assert len(conn.exec_driver_sql(owners).all()) == 1
            ahead = {name(add_months(month, n)) for n in range(events_partitions.AHEAD_MONTHS + 1)}
            assert partitions(conn) == {
                "events_default",
                "events_1971_05",
                "events_2024_02",
                "events_2024_03",
                *ahead,
            }
            by_time = dict(
                conn.exec_driver_sql(
                    "SELECT occurred_at, tableoid::regclass::text FROM events WHERE account_id = 1"
                ).all()
            )
            assert by_time[datetime(2040, 1, 1, tzinfo=UTC)] == "events_default"
            assert (
                by_time[datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC)] == "events_2024_02"
            )
            assert by_time[datetime(2024, 3, 1, tzinfo=UTC)] == "events_2024_03"
            # next year's event lies past the months made ahead: the default partition too
            assert sorted(by_time.values()).count("events_default") == 2
        new_id = add_events(engine, 2, 2, [datetime(2024, 3, 9, tzinfo=UTC)])[0]
        assert new_id == max(row.id for row in before_rows) + 1
        assert_policies_hold(engine)

        command.downgrade(config, "0008_webhooks")
        with engine.begin() as conn:
            assert relkind(conn) == "r"
            assert key(conn) == ["id"]
            assert shape(conn) == before_shape
            rows = conn.exec_driver_sql(ROWS).all()
            assert rows[:-1] == before_rows and rows[-1].id == new_id
            assert partitions(conn) == set()
            functions = "SELECT count(*) FROM pg_proc WHERE proname ~ '^audience_event_part'"
            assert conn.exec_driver_sql(functions).scalar() == 0
            next_id = "SELECT nextval(pg_get_serial_sequence('events', 'id'))"
            # on from there (the refused insert above drew one too)
            assert conn.exec_driver_sql(next_id).scalar() == new_id + 2
        command.upgrade(config, PARTITIONED)  # and up again
        with engine.begin() as conn:
            assert relkind(conn) == "p" and len(conn.exec_driver_sql(ROWS).all()) == 13
    finally:
        engine.dispose()


def assert_policies_hold(engine: sa.Engine) -> None:
    """As the application's role: an account sees its own events and no other's, writes
    none of another's, and no partition can be read past the policies."""
    with as_app(engine) as app:
        with app.begin() as conn:
            act_as(conn, 1)
            mine = conn.exec_driver_sql("SELECT DISTINCT account_id FROM events").scalars()
            assert list(mine) == [1]
        with (
            pytest.raises(sa.exc.ProgrammingError, match="row-level security"),
            app.begin() as conn,
        ):
            act_as(conn, 1)
            conn.exec_driver_sql(
                "INSERT INTO events (account_id, contact_id, type, occurred_at)"
                " VALUES (2, 2, 'X', now())"
            )
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied"), app.begin() as conn:
            act_as(conn, 1)
            conn.exec_driver_sql("SELECT count(*) FROM events_default")


def test_the_migration_refuses_a_role_held_by_the_policies(empty_url):
    """Migrating as a role the policies hold would copy none of the rows (FORCE row-level
    security, no account named): it fails instead, and nothing changes."""
    config = alembic_config(empty_url)
    command.upgrade(config, "0008_webhooks")
    engine = make_engine(empty_url)
    owner = f"owner_{empty_url.rsplit('_', 1)[-1]}"  # roles are the server's: one of its own
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO accounts (name, created_at) VALUES ('a', now())")
            conn.exec_driver_sql(
                "INSERT INTO contacts (account_id, email, created_at, updated_at)"
                " VALUES (1, 'a@x.com', now(), now())"
            )
            conn.exec_driver_sql(
                "INSERT INTO events (account_id, contact_id, type, occurred_at)"
                " VALUES (1, 1, 'X', now())"
            )
            conn.exec_driver_sql(f"CREATE ROLE {owner} LOGIN NOSUPERUSER NOBYPASSRLS")
            conn.exec_driver_sql(f"GRANT ALL ON SCHEMA public TO {owner}")
            for table in ("events", "alembic_version", "accounts", "contacts"):
                conn.exec_driver_sql(f"ALTER TABLE {table} OWNER TO {owner}")
        with pytest.raises(sa.exc.ProgrammingError, match="row-level security"):
            as_owner = sa.make_url(empty_url).set(username=owner)
            command.upgrade(
                alembic_config(as_owner.render_as_string(hide_password=False)), PARTITIONED
            )
        with engine.begin() as conn:
            assert relkind(conn) == "r"
            assert conn.exec_driver_sql("SELECT count(*) FROM events").scalar() == 1
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"REASSIGN OWNED BY {owner} TO CURRENT_USER")
            conn.exec_driver_sql(f"DROP OWNED BY {owner}")
            conn.exec_driver_sql(f"DROP ROLE {owner}")
        engine.dispose()


# --- the upkeep ------------------------------------------------------------------------


def test_months_ahead_are_made_once(engine):
    """This month and AHEAD_MONTHS more exist after the migration; the upkeep, run again
    and again (as the application's role, as deployed), changes nothing until asked for
    more months ahead, which it makes once."""
    with engine.connect() as conn:
        month = this_month(conn)
        made = partitions(conn)
    assert made == {"events_default"} | {
        name(add_months(month, n)) for n in range(events_partitions.AHEAD_MONTHS + 1)
    }
    with as_app(engine) as app:
        assert events_partitions.maintain(app) == []
        assert events_partitions.maintain(app) == []
        more = events_partitions.maintain(app, ahead=events_partitions.AHEAD_MONTHS + 2)
        assert more == [
            events_partitions.Change("created", name(add_months(month, n)), 0)
            for n in (events_partitions.AHEAD_MONTHS + 1, events_partitions.AHEAD_MONTHS + 2)
        ]
        assert events_partitions.maintain(app, ahead=events_partitions.AHEAD_MONTHS + 2) == []
    with engine.connect() as conn:
        assert partitions(conn) == made | {change.partition for change in more}


def test_a_second_upkeep_at_the_same_time_does_nothing(engine):
    """Two at once (a worker's cron and another's start): the second returns at once."""
    with engine.connect() as first:
        first.exec_driver_sql("SELECT pg_advisory_lock(hashtext('audience_event_partitions'))")
        try:
            assert events_partitions.maintain(engine, ahead=6) == []
        finally:
            first.exec_driver_sql(
                "SELECT pg_advisory_unlock(hashtext('audience_event_partitions'))"
            )
    assert len(events_partitions.maintain(engine, ahead=6)) == 6 - events_partitions.AHEAD_MONTHS


def test_a_month_that_cannot_have_its_lock_waits_for_the_next_run(engine):
    """A query holding the default partition (a count over all time, say) keeps a new
    month from being attached: after the lock timeout the upkeep reports it busy, leaves
    nothing half made, and the next run makes it."""
    with engine.connect() as conn:
        month = name(add_months(this_month(conn), events_partitions.AHEAD_MONTHS + 1))
        before = partitions(conn)
    ahead = events_partitions.AHEAD_MONTHS + 1
    with engine.connect() as reader:
        reader.exec_driver_sql("LOCK TABLE events_default IN ACCESS SHARE MODE")
        started = time.monotonic()
        assert events_partitions.maintain(engine, ahead=ahead) == [
            events_partitions.Change("busy", month, None)
        ]
        assert 2.5 < time.monotonic() - started < 10
        reader.rollback()
    with engine.connect() as conn:
        assert partitions(conn) == before
        made = conn.exec_driver_sql(f"SELECT to_regclass('{month}')").scalar()
        assert made is None
    assert events_partitions.maintain(engine, ahead=ahead) == [
        events_partitions.Change("created", month, 0)
    ]


def test_an_event_of_any_date_inserts_and_finds_its_month(engine):
    """Events of 0001, 1900, 2040 and 9999, and of a month just past those made ahead,
    insert (into the default partition); the upkeep gives the past ones their months and,
    asked for months far enough ahead, the later one its month too (a default partition
    holding a month's rows would refuse that month a partition: they are moved, ids and
    all); 2040 and 9999 wait in the default partition."""
    account_id, (contact, *_) = account_with_contacts(engine)
    with engine.connect() as conn:
        month = this_month(conn)
    later = add_months(month, events_partitions.AHEAD_MONTHS + 2)
    times = [
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(1900, 6, 15, 12, tzinfo=UTC),
        later.replace(day=10),
        datetime(2040, 2, 29, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
    ]
    ids = add_events(engine, account_id, contact, times)
    with engine.connect() as conn:
        assert {homes(conn)[i] for i in ids} == {"events_default"}

    changes = events_partitions.maintain(engine)
    assert changes == [
        events_partitions.Change("created", "events_0001_01", 1),
        events_partitions.Change("created", "events_1900_06", 1),
    ]
    changes = events_partitions.maintain(engine, ahead=events_partitions.AHEAD_MONTHS + 2)
    assert changes == [
        events_partitions.Change("created", name(add_months(month, n)), moved)
        for n, moved in [
            (events_partitions.AHEAD_MONTHS + 1, 0),
            (events_partitions.AHEAD_MONTHS + 2, 1),
        ]
    ]
    with engine.connect() as conn:
        found = homes(conn)
        assert [found[i] for i in ids] == [
            "events_0001_01",
            "events_1900_06",
            name(later),
            "events_default",
            "events_default",
        ]
        stored = conn.execute(sa.select(t.events.c.id, t.events.c.occurred_at)).all()
    assert sorted(stored) == sorted(zip(ids, times, strict=True))


def test_partitions_for_history_before_it_is_loaded(engine):
    """`since` gives each month from its own a partition, so history loaded afterwards
    goes straight to its month (the seed does this)."""
    with engine.connect() as conn:
        month = this_month(conn)
    since = add_months(month, -14).replace(day=20)
    changes = events_partitions.maintain(engine, since=since)
    assert [c.partition for c in changes] == [name(add_months(month, n)) for n in range(-14, 0)]
    account_id, (contact, *_) = account_with_contacts(engine)
    ids = add_events(engine, account_id, contact, [add_months(month, -14).replace(day=2)])
    with engine.connect() as conn:
        assert homes(conn)[ids[0]] == name(add_months(month, -14))


def test_retention_drops_only_months_past_it(engine):
    """With 12 months kept: the partitions of months that ended 12 months or more before
    this month began go (DROP, their rows with them); the 12 months before this one, this
    month, the months ahead and the default partition stay, rows and all."""
    account_id, (contact, *_) = account_with_contacts(engine)
    with engine.connect() as conn:
        month = this_month(conn)
    times = {n: add_months(month, n).replace(day=15) for n in (-15, -13, -12, -11, -1, 0)}
    times["future"] = datetime(2100, 1, 1, tzinfo=UTC)
    ids = dict(zip(times, add_events(engine, account_id, contact, times.values()), strict=True))
    events_partitions.maintain(engine)  # history out of the default partition
    with engine.connect() as conn:
        before = partitions(conn)

    changes = events_partitions.maintain(engine, retention_months=12)
    dropped = {name(add_months(month, n)) for n in (-15, -13)}
    assert changes == [events_partitions.Change("dropped", n, None) for n in sorted(dropped)]
    assert events_partitions.maintain(engine, retention_months=12) == []
    with engine.connect() as conn:
        assert partitions(conn) == before - dropped
        left = homes(conn)
    assert set(left) == {ids[n] for n in (-12, -11, -1, 0, "future")}
    assert left[ids["future"]] == "events_default"


def test_the_worker_keeps_the_partitions_hourly_and_at_its_start(url, engine):
    """The arq worker's cron runs the upkeep hourly and when the worker starts, with the
    retention setting."""
    worker = make_worker(make_settings(url))
    jobs = {job.name: job for job in worker.cron_jobs}
    job = jobs["cron:partition_events"]
    assert job.run_at_startup and job.minute == 17 and job.hour is None
    with engine.connect() as conn:
        month = this_month(conn)
    account_id, (contact, *_) = account_with_contacts(engine)
    add_events(engine, account_id, contact, [add_months(month, -30)])
    settings = make_settings(url, event_retention_months=24)
    partition_events_sync({"engine": engine, "settings": settings})
    with engine.connect() as conn:
        assert name(add_months(month, -30)) not in partitions(conn)
        assert conn.exec_driver_sql("SELECT count(*) FROM events").scalar() == 0


def partition_events_sync(ctx: dict) -> None:
    import asyncio

    asyncio.run(partition_events(ctx))


def test_the_in_process_runner_keeps_them_from_its_start(url, engine):
    """Without Redis, the API's own runner does the upkeep when it starts."""
    with engine.connect() as conn:
        last = name(add_months(this_month(conn), events_partitions.AHEAD_MONTHS))
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE {last}")
    runner = InProcessRunner(make_settings(url), engine)
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while last not in partitions_now(engine):
            assert time.monotonic() < deadline, "the runner made no partition"
            time.sleep(0.05)
    finally:
        runner.stop()


def partitions_now(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        return partitions(conn)


def test_doctor_says_when_no_upkeep_ran(url, engine):
    """`audience doctor` is content while next month has its partition, and says so when
    it has none (no worker has run the upkeep this month)."""
    code, output = doctor(url)
    assert "partitions  ok" in output and "events_default holds" in output, output
    with engine.connect() as conn:
        following = name(add_months(this_month(conn), 1))
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE {following}")
    code, output = doctor(url, "--json")
    report = json.loads(output)
    assert code == 1 and report["problems"] == ["partitions"]
    assert following in report["checks"]["partitions"]["detail"]


def test_sqlite_has_nothing_to_keep(sqlite_url):
    engine = make_engine(sqlite_url)
    try:
        assert events_partitions.maintain(engine, retention_months=1) == []
    finally:
        engine.dispose()


# --- pruning ---------------------------------------------------------------------------

# A window (as the API takes it) → the partitions an event condition over it may read:
# a month of 2024 each, the later months, the default partition (for an open end).
WINDOWS = [
    ({"within_days": 30}, {"events_2024_02", "events_2024_03"}),
    ({"from": "2024-03-05T00:00:00Z", "to": "2024-03-25T00:00:00Z"}, {"events_2024_03"}),
    ({"to": "2024-02-10T00:00:00Z"}, {"events_2024_01", "events_2024_02", "events_default"}),
    ({"from": "2024-05-10T00:00:00Z"}, None),  # May, June and every later month
]
AS_OF = "2024-03-20T12:00:00Z"


@pytest.fixture(scope="module")
def half_year() -> Iterator[tuple[sa.Engine, int]]:
    """A database of their own for the pruning tests, with an account with events in each
    month of the first half of 2024, each month in its partition: (engine, account)."""
    for url in new_database():
        upgrade(url)
        engine = make_engine(url)
        account_id, contacts = account_with_contacts(engine)
        times = [datetime(2024, m, 15, tzinfo=UTC) for m in range(1, 7)]
        for contact in contacts:
            add_events(engine, account_id, contact, times)
        events_partitions.maintain(engine)
        with engine.connect() as conn:
            assert {f"events_2024_{m:02}" for m in range(1, 7)} <= partitions(conn)
        yield engine, account_id
        engine.dispose()


def count_query(conn, account_id: int, window: dict) -> sa.Select:
    spec = {
        "as_of": AS_OF,
        "filter": {
            "event": {"type": "PURCHASE", **window},
            "agg": "count",
            "op": "gte",
            "value": 1,
        },
    }
    return prepare(conn, account_id, spec).count()


def read(plan: dict) -> tuple[set[str], int]:
    """The partitions of events a plan reads, and how many it removed when it ran."""
    found, removed = set(), 0
    stack = [plan["Plan"]]
    while stack:
        node = stack.pop()
        if node.get("Relation Name", "").startswith("events_"):
            found.add(node["Relation Name"])
        removed += node.get("Subplans Removed", 0)
        stack.extend(node.get("Plans", []))
    return found, removed


def expected(window_reads: set[str] | None, conn) -> set[str]:
    if window_reads is not None:
        return window_reads
    return {p for p in partitions(conn) if p >= "events_2024_05"}


@pytest.mark.parametrize(("window", "reads"), WINDOWS, ids=lambda v: str(v))
def test_an_event_window_reads_its_months_alone(half_year, window, reads):
    """As the application runs a count (its values bound, a plan made for them): the
    partitions outside the window are not in the plan at all (pruned when planned); the
    count is right."""
    engine, account_id = half_year
    with engine.connect() as conn:
        query = count_query(conn, account_id, window)
        compiled = query.compile(dialect=conn.dialect)
        (plan,) = conn.exec_driver_sql(
            f"EXPLAIN (FORMAT JSON) {compiled}", compiled.params
        ).scalar()
        found, removed = read(plan)
        assert (found, removed) == (expected(reads, conn), 0)
        months = sum(1 for p in found if p.startswith("events_2024"))
        assert conn.execute(query).scalar() == (3 if months else 0)


@pytest.mark.parametrize(("window", "reads"), WINDOWS, ids=lambda v: str(v))
def test_a_generic_plan_prunes_when_it_runs(half_year, window, reads):
    """Planned once for any values (a prepared statement's generic plan), the same count
    still reads only the window's partitions: the others are removed when it starts."""
    engine, account_id = half_year
    with engine.begin() as conn:
        compiled = count_query(conn, account_id, window).compile(
            dialect=pg_dialect.dialect(paramstyle="numeric_dollar")
        )
        conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
        conn.exec_driver_sql(f"PREPARE counting AS {compiled}")
        types = conn.exec_driver_sql(
            "SELECT parameter_types::text[] FROM pg_prepared_statements WHERE name = 'counting'"
        ).scalar()
        raw = conn.connection.dbapi_connection
        values = [compiled.params[name] for name in compiled.positiontup]
        args = ", ".join(
            f"{psql.Literal(v).as_string(raw)}::{kind}"
            for v, kind in zip(values, types, strict=True)
        )
        (plan,) = conn.exec_driver_sql(
            f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE counting({args})"
        ).scalar()
        conn.exec_driver_sql("DEALLOCATE counting")  # a session's, not a transaction's
        found, removed = read(plan)
        assert found == expected(reads, conn)
        assert removed == len(partitions(conn)) - len(found)
