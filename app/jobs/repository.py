"""Every SQL statement about jobs, in one place (listmonk's queries.sql, in Python).

Status changes go through `_move`: allowed by app.jobs.state.TRANSITIONS and guarded by the
status they leave, so of two writers racing for one job exactly one wins. Transactions are
the caller's: nothing here commits.

Row-level security (PostgreSQL, migration 0004) holds every statement to the account its
transaction acts for. The few that work across accounts say so first (`engine_duty`),
which shows them every jobs row and nothing else: finding due jobs, reaping, choosing a
snapshot to purge, the doctor's report. A job's own statements act for its account.
"""

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row
from sqlalchemy.sql.elements import ColumnElement

from app import tables as t
from app.db import ACCOUNT_SETTING, act_as, engine_duty, in_ids, is_postgres
from app.jobs import state
from app.jobs.state import Status

j = t.jobs
ja = t.job_actions
jm = t.job_members
jo = t.job_output
ID = t.jobs.c.id.type
PURGE_LOCK = 0x61756469  # "audi": pg_try_advisory_xact_lock key of purge_snapshot


def ping(conn: Connection) -> None:
    """The database answers (readiness and `audience doctor`)."""
    conn.execute(sa.text("SELECT 1"))


# --- when a job is due -----------------------------------------------------------------


def _waiting(now: datetime) -> ColumnElement[bool]:
    """Queued, and its time (run_at, if any) has come by `now`."""
    return sa.and_(j.c.status == Status.QUEUED, sa.or_(j.c.run_at.is_(None), j.c.run_at <= now))


def _abandoned(now: datetime) -> ColumnElement[bool]:
    """Running, but its lease ran out before `now`: its worker is gone."""
    return sa.and_(j.c.status == Status.RUNNING, j.c.lease_until < now)


def _due(now: datetime) -> ColumnElement[bool]:
    """A job a worker should take: waiting, or abandoned."""
    return sa.or_(_waiting(now), _abandoned(now))


# --- status changes --------------------------------------------------------------------


def _move(
    job_id: int, target: Status, *, leaving: tuple[Status, ...], where: ColumnElement[bool]
) -> sa.Update:
    """The one shape of a status change; `where` must require one of the `leaving` statuses."""
    for source in leaving:
        state.require(source, target)
    return sa.update(j).where(j.c.id == job_id, where).values(status=target)


def _moved(conn: Connection, job_id: int, target: Status) -> None:
    """After every status change that happened: its webhook deliveries, in the same
    transaction (the outbox), so a move and its deliveries commit together."""
    from app.webhooks.outbox import job_moved  # it reads the job as app.jobs.service does

    job_moved(conn, job_id, target)


def claim(conn: Connection, job_id: int, *, owner: str, lease_s: float) -> bool:
    """queued → running once due, or running → running once its lease expired. False:
    not due, or another worker got there first."""
    now = t.utcnow()
    move = _move(job_id, Status.RUNNING, leaving=(Status.QUEUED, Status.RUNNING), where=_due(now))
    result = conn.execute(
        move.values(
            lease_owner=owner,
            lease_until=now + timedelta(seconds=lease_s),
            started_at=sa.func.coalesce(j.c.started_at, now),
            attempts=j.c.attempts + 1,
        )
    )
    if result.rowcount != 1:
        return False
    _moved(conn, job_id, Status.RUNNING)
    return True


def finish(
    conn: Connection,
    job_id: int,
    *,
    owner: str,
    status: Status,
    error: str | None = None,
    now: datetime | None = None,
) -> bool:
    """running → succeeded, failed or cancelled, by the worker holding its lease."""
    held = sa.and_(j.c.status == Status.RUNNING, j.c.lease_owner == owner)
    move = _move(job_id, status, leaving=(Status.RUNNING,), where=held)
    now = now or t.utcnow()
    result = conn.execute(move.values(error=error, finished_at=now, lease_until=None))
    if result.rowcount != 1:
        return False
    _moved(conn, job_id, status)
    return True


def cancel_queued(conn: Connection, job_id: int) -> bool:
    """queued → cancelled: a job nobody started yet stops at once."""
    move = _move(
        job_id, Status.CANCELLED, leaving=(Status.QUEUED,), where=j.c.status == Status.QUEUED
    )
    result = conn.execute(move.values(cancel_requested=True, finished_at=t.utcnow()))
    if result.rowcount != 1:
        return False
    _moved(conn, job_id, Status.CANCELLED)
    return True


def request_cancel(conn: Connection, job_id: int) -> bool:
    """A running job's worker cancels it between two chunks (no status change here)."""
    result = conn.execute(
        sa.update(j)
        .where(j.c.id == job_id, j.c.status == Status.RUNNING)
        .values(cancel_requested=True)
    )
    return result.rowcount == 1


# --- submitting and reading (the API; row-level security scopes these to the account) ---


def find_by_idempotency_key(conn: Connection, account_id: int, key: str) -> Row | None:
    return conn.execute(
        sa.select(j.c.id, j.c.request_hash, j.c.created_at).where(
            j.c.account_id == account_id, j.c.idempotency_key == key
        )
    ).first()


def release_idempotency_key(conn: Connection, job_id: int) -> None:
    """An expired key may be used again: the old job lets go of it."""
    conn.execute(sa.update(j).where(j.c.id == job_id).values(idempotency_key=None))


def insert_job(conn: Connection, *, account_id: int, action_types: list[str], **values) -> int:
    """A queued job and its actions' counters; `values`: the jobs row's other columns."""
    job_id = conn.execute(
        sa.insert(j).values(status=Status.QUEUED, account_id=account_id, **values).returning(j.c.id)
    ).scalar_one()
    if not action_types:  # a revert of a job that changed nothing
        return job_id
    conn.execute(
        sa.insert(ja),
        [
            {"account_id": account_id, "job_id": job_id, "position": i, "type": type_}
            for i, type_ in enumerate(action_types)
        ],
    )
    return job_id


def get_job(conn: Connection, account_id: int, job_id: int) -> Row | None:
    return conn.execute(sa.select(j).where(j.c.account_id == account_id, j.c.id == job_id)).first()


def list_jobs(
    conn: Connection,
    account_id: int,
    *,
    limit: int,
    before: int | None,
    status: str | None = None,
    kind: str | None = None,
    action: str | None = None,
) -> list[Row]:
    """The account's jobs, newest first, older than job `before` if given; only those of
    a status, a kind, or with an action of a type, if given."""
    query = sa.select(j).where(j.c.account_id == account_id).order_by(j.c.id.desc()).limit(limit)
    if before is not None:
        query = query.where(j.c.id < before)
    if status is not None:
        query = query.where(j.c.status == status)
    if kind is not None:
        query = query.where(j.c.kind == kind)
    if action is not None:
        query = query.where(
            sa.exists().where(
                ja.c.account_id == j.c.account_id, ja.c.job_id == j.c.id, ja.c.type == action
            )
        )
    return list(conn.execute(query))


def reverted_by(conn: Connection, account_id: int, job_ids: list[int]) -> dict[int, int]:
    """{job id: the id of the job that reverts it} for those of `job_ids` reverted."""
    if not job_ids:
        return {}
    return dict(
        conn.execute(
            sa.select(j.c.reverts, j.c.id).where(
                j.c.account_id == account_id, j.c.reverts.in_(job_ids)
            )
        ).all()
    )


def logged_steps(conn: Connection, account_id: int, job_id: int) -> list[Row]:
    """(step, action, field) of each step of a job's change log that changed anything, in
    step order. A step logs one field (a rule's actions are steps of their own), except a
    detail's or coupon's name, which is the same for a whole step."""
    cl = t.change_log
    return list(
        conn.execute(
            sa.select(cl.c.step, sa.func.min(cl.c.action), sa.func.min(cl.c.field))
            .where(cl.c.account_id == account_id, cl.c.job_id == job_id)
            .group_by(cl.c.step)
            .order_by(cl.c.step)
        )
    )


def add_conflicts(conn: Connection, job_id: int, n: int) -> None:
    conn.execute(sa.update(j).where(j.c.id == job_id).values(conflicts=j.c.conflicts + n))


def history(
    conn: Connection, account_id: int, contact_id: int, *, limit: int, before: tuple | None
) -> list[Row]:
    """A contact's logged changes, newest first: (job_id, step) descending, keyset paged."""
    cl = t.change_log
    query = (
        sa.select(
            cl.c.job_id,
            cl.c.step,
            cl.c.field,
            cl.c.ref,
            cl.c.action,
            cl.c.before,
            cl.c.after,
            cl.c.at,
            j.c.kind,
            j.c.created_by,
        )
        .join(j, sa.and_(j.c.account_id == cl.c.account_id, j.c.id == cl.c.job_id))
        .where(cl.c.account_id == account_id, cl.c.contact_id == contact_id)
        .order_by(cl.c.job_id.desc(), cl.c.step.desc(), cl.c.field.desc(), cl.c.ref.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(
            sa.tuple_(cl.c.job_id, cl.c.step, cl.c.field, cl.c.ref) < sa.tuple_(*before)
        )
    return list(conn.execute(query))


def purge_change_log(conn: Connection, older_than: datetime, batch: int = 50_000) -> int:
    """Delete up to `batch` change-log rows of one job that ended before `older_than`;
    once none are left, mark its log purged (a revert is then a 410). Returns the rows
    deleted (0: nothing to purge). Chosen on the engine's duty, deleted acting for the
    job's account, a key range a batch (as purge_snapshot)."""
    engine_duty(conn)
    found = conn.execute(
        sa.select(j.c.id, j.c.account_id)
        .where(
            j.c.log_purged.is_(False),
            j.c.status.in_(state.FINISHED),
            j.c.finished_at < older_than,
        )
        .order_by(j.c.id)
        .limit(1)
    ).first()
    if found is None:
        return 0
    job_id, account_id = found
    act_as(conn, account_id)
    cl = t.change_log
    mine = sa.and_(cl.c.account_id == account_id, cl.c.job_id == job_id)
    bound = conn.execute(
        sa.select(cl.c.step, cl.c.contact_id)
        .where(mine)
        .order_by(cl.c.step, cl.c.contact_id)
        .offset(batch - 1)
        .limit(1)
    ).first()
    doomed = sa.delete(cl).where(mine)
    if bound is not None:
        doomed = doomed.where(sa.tuple_(cl.c.step, cl.c.contact_id) <= sa.tuple_(*bound))
    deleted = conn.execute(doomed).rowcount
    if bound is None:
        conn.execute(sa.update(j).where(j.c.id == job_id).values(log_purged=True))
    return deleted


def action_progress(conn: Connection, job_ids: list[int]) -> dict[int, list[dict]]:
    """Each job's actions in order, as {"type", "affected"}. Joined to `jobs` for their
    account, which leads job_actions' key."""
    by_job: dict[int, list[dict]] = {job_id: [] for job_id in job_ids}
    if not job_ids:
        return by_job
    for job_id, type_, affected in conn.execute(
        sa.select(ja.c.job_id, ja.c.type, ja.c.affected)
        .join(j, sa.and_(j.c.account_id == ja.c.account_id, j.c.id == ja.c.job_id))
        .where(j.c.id.in_(job_ids))
        .order_by(ja.c.job_id, ja.c.position)
    ):
        by_job[job_id].append({"type": type_, "affected": affected})
    return by_job


def output_batch(
    conn: Connection, account_id: int, job_id: int, *, after: tuple[int, int], limit: int
) -> list[tuple]:
    """(position, contact_id, email, value) of a job's output past the key `after`; email
    None for a contact that is no longer the account's.

    Two index-driven statements, not one join: with statistics older than the account's
    contacts (a fresh import), PostgreSQL drove the join from `contacts` and probed the
    output once per contact, minutes for 40,000 rows."""
    page = conn.execute(
        sa.select(jo.c.position, jo.c.contact_id, jo.c.value)
        .where(
            jo.c.account_id == account_id,
            jo.c.job_id == job_id,
            sa.tuple_(jo.c.position, jo.c.contact_id) > sa.tuple_(*after),
        )
        .order_by(jo.c.position, jo.c.contact_id)
        .limit(limit)
    ).all()
    c = t.contacts
    ids = sorted({contact_id for _, contact_id, _ in page})
    emails = dict(
        conn.execute(
            sa.select(c.c.id, c.c.email).where(
                c.c.account_id == account_id, in_ids(conn, c.c.id, ids)
            )
        ).all()
    )
    return [(pos, cid, emails.get(cid), value) for pos, cid, value in page]


# --- running (the runner) --------------------------------------------------------------


def account_of(conn: Connection, job_id: int) -> int:
    """The account a job acts for (read on the engine's duty, before the job's account is
    known)."""
    return conn.execute(sa.select(j.c.account_id).where(j.c.id == job_id)).scalar_one()


def acts_for(conn: Connection, account_id: int) -> bool:
    """Whether this transaction sees the account's contacts as the account itself would:
    row-level security does not hold it (SQLite, the tables' owner, a superuser), or holds
    it to that account. A job acting on the engine's duty alone would see none."""
    if not is_postgres(conn):
        return True
    held, acting = conn.execute(
        sa.select(
            sa.func.row_security_active("contacts"),
            sa.func.current_setting(ACCOUNT_SETTING, True),
        )
    ).one()
    return not held or acting == str(account_id)


def load(conn: Connection, job_id: int) -> Row:
    """The whole jobs row."""
    return conn.execute(sa.select(j).where(j.c.id == job_id)).one()


def lock(conn: Connection, job_id: int) -> Row:
    """What a chunk checks first (cursor, cancel_requested, lease_owner, status, and the
    counters), the row locked until the chunk commits on PostgreSQL (SQLite has one
    writer anyway)."""
    query = sa.select(
        j.c.cursor, j.c.cancel_requested, j.c.lease_owner, j.c.status, j.c.total, j.c.processed
    ).where(j.c.id == job_id)
    if is_postgres(conn):
        query = query.with_for_update()
    return conn.execute(query).one()


def replace_snapshot(
    conn: Connection,
    account_id: int,
    job_id: int,
    *,
    members: sa.Select,
    counted: sa.Select,
    as_of: datetime,
) -> tuple[int, int]:
    """ONE INSERT … SELECT of `members` (a compiled selection: contact ids) into
    job_members, replacing any earlier try; fixes the job's total and as_of. Returns the
    rows inserted and what `counted` (the selection's count) answers in the same
    statement on PostgreSQL (one snapshot of the data; SQLite has one writer at a time):
    the two differ only when something is wrong."""
    mine = sa.and_(jm.c.account_id == account_id, jm.c.job_id == job_id)
    conn.execute(sa.delete(jm).where(mine))
    rows = members.with_only_columns(
        sa.literal(account_id, ID), sa.literal(job_id, ID), members.selected_columns[0]
    )
    insert = sa.insert(jm).from_select(["account_id", "job_id", "contact_id"], rows)
    if is_postgres(conn):
        taken = insert.returning(jm.c.contact_id).cte("taken")
        total, count = conn.execute(
            sa.select(
                sa.select(sa.func.count()).select_from(taken).scalar_subquery(),
                counted.scalar_subquery(),
            )
        ).one()
    else:
        conn.execute(insert)
        total = conn.execute(sa.select(sa.func.count()).where(mine)).scalar_one()
        count = conn.execute(counted).scalar_one()
    conn.execute(
        sa.update(j).where(j.c.id == job_id).values(snapshot_taken=True, total=total, as_of=as_of)
    )
    return total, count


def next_chunk(
    conn: Connection, account_id: int, job_id: int, *, after: int, size: int
) -> list[int]:
    """The next `size` snapshot members past the cursor `after`."""
    return list(
        conn.execute(
            sa.select(jm.c.contact_id)
            .where(jm.c.account_id == account_id, jm.c.job_id == job_id, jm.c.contact_id > after)
            .order_by(jm.c.contact_id)
            .limit(size)
        ).scalars()
    )


def add_affected(conn: Connection, account_id: int, job_id: int, position: int, n: int) -> None:
    conn.execute(
        sa.update(ja)
        .where(ja.c.account_id == account_id, ja.c.job_id == job_id, ja.c.position == position)
        .values(affected=ja.c.affected + n)
    )


def advance(
    conn: Connection, job_id: int, *, cursor: int, processed: int, lease_until: datetime
) -> None:
    """A chunk is done: move the cursor past it, count it, renew the lease."""
    conn.execute(
        sa.update(j)
        .where(j.c.id == job_id)
        .values(cursor=cursor, processed=j.c.processed + processed, lease_until=lease_until)
    )


# --- queueing (transports, the reaper) -------------------------------------------------


def due_jobs(conn: Connection, limit: int = 20, now: datetime | None = None) -> list[int]:
    """Queued jobs whose time has come, and running jobs whose lease expired (of every
    account: on the engine's duty)."""
    engine_duty(conn)
    query = sa.select(j.c.id).where(_due(now or t.utcnow())).order_by(j.c.id).limit(limit)
    return list(conn.execute(query).scalars())


def mark_enqueued(conn: Connection, job_ids: list[int], now: datetime | None = None) -> None:
    """Queue bookkeeping, on the engine's duty: the API marks its own job after the
    request's transaction, the reaper any account's."""
    engine_duty(conn)
    conn.execute(sa.update(j).where(j.c.id.in_(job_ids)).values(enqueued_at=now or t.utcnow()))


def reap(conn: Connection, *, stale_after: timedelta, limit: int = 100) -> list[int]:
    """Due jobs nobody is running: never enqueued, enqueued over `stale_after` ago (Redis
    lost them), or abandoned by a dead worker. Marked enqueued now; the caller enqueues.
    On the engine's duty (every account's jobs)."""
    engine_duty(conn)
    now = t.utcnow()
    ids = due_jobs(conn, limit=limit, now=now)
    if not ids:
        return []
    stale = list(
        conn.execute(
            sa.select(j.c.id).where(
                j.c.id.in_(ids),
                sa.or_(
                    j.c.enqueued_at.is_(None),
                    j.c.enqueued_at < now - stale_after,
                    j.c.status == Status.RUNNING,
                ),
            )
        ).scalars()
    )
    if stale:
        mark_enqueued(conn, stale, now)
    return stale


def purge_snapshot(conn: Connection, batch: int = 50_000) -> int:
    """Delete up to `batch` snapshot rows (job_members) of one finished job; once none are
    left, mark the job's snapshot gone. A finished job needs no members: its counters and
    output are kept elsewhere. Returns the rows deleted (0: nothing to purge).

    A key range, not `IN (SELECT … LIMIT)`: with stale statistics (a snapshot is written
    in one statement) PostgreSQL planned that as a nested loop, for most of an hour. One
    purger at a time (an advisory lock on PostgreSQL; SQLite has one writer anyway).

    The job is chosen on the engine's duty; its rows are deleted acting for its account."""
    lock = sa.select(sa.func.pg_try_advisory_xact_lock(PURGE_LOCK))
    if is_postgres(conn) and not conn.execute(lock).scalar():
        return 0
    engine_duty(conn)
    found = conn.execute(
        sa.select(j.c.id, j.c.account_id)
        .where(j.c.snapshot_taken.is_(True), j.c.status.in_(state.FINISHED))
        .order_by(j.c.id)
        .limit(1)
    ).first()
    if found is None:
        return 0
    job_id, account_id = found
    act_as(conn, account_id)
    mine = sa.and_(jm.c.account_id == account_id, jm.c.job_id == job_id)
    bound = conn.execute(
        sa.select(jm.c.contact_id).where(mine).order_by(jm.c.contact_id).offset(batch - 1).limit(1)
    ).scalar()
    doomed = sa.delete(jm).where(mine)
    if bound is not None:
        doomed = doomed.where(jm.c.contact_id <= bound)
    deleted = conn.execute(doomed).rowcount
    if bound is None:
        conn.execute(sa.update(j).where(j.c.id == job_id).values(snapshot_taken=False))
    return deleted


# --- what an operator should look at (`audience doctor`, /readyz) -----------------------

PROBLEM_COLUMNS = (
    j.c.id,
    j.c.account_id,
    j.c.status,
    j.c.total,
    j.c.processed,
    j.c.attempts,
    j.c.created_at,
    j.c.run_at,
    j.c.started_at,
    j.c.finished_at,
    j.c.lease_owner,
    j.c.lease_until,
    j.c.error,
)


def job_problems(
    conn: Connection,
    *,
    stuck_after: timedelta = timedelta(seconds=10),
    queued_for: timedelta = timedelta(minutes=10),
    failed_within: timedelta = timedelta(days=1),
    max_attempts: int = 3,
    limit: int = 20,
) -> dict[str, dict]:
    """Jobs an operator should look at, across accounts. `stuck`: running, but the lease
    expired more than `stuck_after` ago (the worker is gone and nobody resumed the job).
    `overdue`: queued and due for longer than `queued_for` (no worker takes jobs).
    `restarted`: running and claimed more than `max_attempts` times (workers keep dying
    under it). `failed`: within `failed_within`. Each: {"count", "jobs": up to `limit`}.
    On the engine's duty (every account's jobs)."""
    engine_duty(conn)
    now = t.utcnow()
    due_since = sa.func.coalesce(j.c.run_at, j.c.created_at)
    kinds = {
        "stuck": (_abandoned(now - stuck_after), j.c.lease_until),
        "overdue": (sa.and_(_waiting(now), due_since < now - queued_for), j.c.id),
        "restarted": (
            sa.and_(j.c.status == Status.RUNNING, j.c.attempts > max_attempts),
            j.c.attempts.desc(),
        ),
        "failed": (
            sa.and_(j.c.status == Status.FAILED, j.c.finished_at >= now - failed_within),
            j.c.finished_at.desc(),
        ),
    }
    found = {}
    for kind, (where, order) in kinds.items():
        count = conn.execute(sa.select(sa.func.count()).select_from(j).where(where)).scalar_one()
        rows = conn.execute(sa.select(*PROBLEM_COLUMNS).where(where).order_by(order).limit(limit))
        found[kind] = {"count": count, "jobs": [dict(r) for r in rows.mappings()]}
    return found


def stuck_jobs(conn: Connection, stuck_after: timedelta = timedelta(seconds=10)) -> int:
    """How many running jobs have a lease that expired more than `stuck_after` ago (of
    every account: on the engine's duty)."""
    engine_duty(conn)
    where = _abandoned(t.utcnow() - stuck_after)
    return conn.execute(sa.select(sa.func.count()).select_from(j).where(where)).scalar_one()


# --- what /metrics reports -------------------------------------------------------------


def jobs_by_kind_and_status(conn: Connection) -> list[tuple[str, str, int]]:
    """(kind, status, count) over every account (on the engine's duty)."""
    engine_duty(conn)
    return [
        tuple(row)
        for row in conn.execute(
            sa.select(j.c.kind, j.c.status, sa.func.count()).group_by(j.c.kind, j.c.status)
        )
    ]


def queue_depth(conn: Connection) -> int:
    """Jobs waiting whose time has come (every account: on the engine's duty)."""
    engine_duty(conn)
    where = _waiting(t.utcnow())
    return conn.execute(sa.select(sa.func.count()).select_from(j).where(where)).scalar_one()
