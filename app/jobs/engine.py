"""Running a job: claim it, snapshot the selection once, apply the actions chunk by chunk.

The database owns job state. Each chunk is one transaction that applies every action to
the chunk AND advances the job's cursor and counters, so a retried job resumes after the
last committed chunk and nothing is applied twice. A lease (renewed every chunk) tells a
reaper when a worker has vanished. A database outage rolls back the chunk in flight: it is
retried for a few seconds, then the job is left to its lease (never marked failed).
"""

import time
import uuid
from datetime import timedelta

import sqlalchemy as sa
from pydantic import TypeAdapter
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from app import logs
from app import tables as t
from app.actions import RunContext, prepare
from app.actions.schemas import ActionList
from app.config import Settings
from app.db import disconnected, is_postgres
from app.selection.service import prepare as prepare_selection

log = logs.get("audience.jobs")
ACTIONS = TypeAdapter(ActionList)
j = t.jobs
RETRYABLE_SQLSTATES = {"40001", "40P01", "55P03"}  # serialization, deadlock, lock timeout
MAX_CHUNK_RETRIES = 8
WORKER_ID = f"{uuid.uuid4().hex[:12]}"


class LostLease(Exception):
    """Another worker took the job over; stop without touching it."""


def _retryable(exc: Exception) -> bool:
    code = getattr(getattr(exc, "orig", None), "sqlstate", None)
    if code in RETRYABLE_SQLSTATES:
        return True
    # SQLite: another writer holds the lock past the busy timeout
    return isinstance(exc, OperationalError) and "locked" in str(exc).lower()


def claim(engine: Engine, job_id: int, owner: str, lease_s: float) -> bool:
    now = t.utcnow()
    with engine.begin() as conn:
        result = conn.execute(
            sa.update(j)
            .where(
                j.c.id == job_id,
                sa.or_(
                    sa.and_(
                        j.c.status == "queued", sa.or_(j.c.run_at.is_(None), j.c.run_at <= now)
                    ),
                    sa.and_(j.c.status == "running", j.c.lease_until < now),
                ),
            )
            .values(
                status="running",
                lease_owner=owner,
                lease_until=now + timedelta(seconds=lease_s),
                started_at=sa.func.coalesce(j.c.started_at, now),
                attempts=j.c.attempts + 1,
            )
        )
        return result.rowcount == 1


def _finish(engine: Engine, job_id: int, owner: str, status: str, error: str | None = None):
    with engine.begin() as conn:
        conn.execute(
            sa.update(j)
            .where(j.c.id == job_id, j.c.lease_owner == owner, j.c.status == "running")
            .values(status=status, error=error, finished_at=t.utcnow(), lease_until=None)
        )
    log.info("job finished", job_id=job_id, status=status, error=error)


def _lock_job(conn, job_id: int):
    query = sa.select(j.c.cursor, j.c.cancel_requested, j.c.lease_owner, j.c.status).where(
        j.c.id == job_id
    )
    if is_postgres(conn):
        query = query.with_for_update()
    return conn.execute(query).one()


def run_job(engine: Engine, job_id: int, settings: Settings, owner: str | None = None) -> str:
    """Run (or resume) a job if it can be claimed. Returns what became of it."""
    owner = owner or f"{WORKER_ID}:{uuid.uuid4().hex[:8]}"
    try:
        if not claim(engine, job_id, owner, settings.job_lease_s):
            return "not-claimed"
    except DBAPIError as exc:
        if not disconnected(exc):
            raise
        return _interrupted(job_id, exc)
    log.info("job started", job_id=job_id, owner=owner)
    try:
        return _run_claimed(engine, job_id, settings, owner)
    except LostLease:
        log.warning("job lease lost", job_id=job_id, owner=owner)
        return "lost-lease"
    except Exception as exc:
        if disconnected(exc):
            return _interrupted(job_id, exc)
        log.exception("job failed", job_id=job_id)
        _finish(engine, job_id, owner, "failed", f"{type(exc).__name__}: {exc}"[:2000])
        return "failed"


def _interrupted(job_id: int, exc: Exception) -> str:
    """A database outage is not the job's failure. The job stays `running` under a lease
    nobody renews; once it expires the job is claimed again (reaper or in-process runner)
    and resumes after its last committed chunk."""
    error = str(getattr(exc, "orig", exc))[:500]
    log.warning("job interrupted: database unavailable", job_id=job_id, error=error)
    return "interrupted"


def _run_claimed(engine: Engine, job_id: int, settings: Settings, owner: str) -> str:
    with engine.begin() as conn:
        row = conn.execute(sa.select(j).where(j.c.id == job_id)).one()
    account_id = row.account_id
    with engine.begin() as conn:
        handlers = prepare(conn, account_id, ACTIONS.validate_python(row.actions), create=True)
    if not row.snapshot_taken:
        _snapshot(engine, row, owner)
        with engine.begin() as conn:
            row = conn.execute(sa.select(j).where(j.c.id == job_id)).one()

    chunk_size = max(1, settings.job_chunk_size)
    while True:
        outcome = _with_retries(
            engine, lambda conn: _chunk(conn, row, handlers, settings, owner, chunk_size)
        )
        if outcome in ("succeeded", "cancelled"):
            log.info("job finished", job_id=job_id, status=outcome)
            return outcome


def _snapshot(engine: Engine, row, owner: str) -> None:
    """ONE INSERT … SELECT of the compiled selection into job_members; fixes `total`."""
    total = _with_retries(engine, lambda conn: _insert_members(conn, row, owner))
    log.info("job snapshot", job_id=row.id, total=total)


def _insert_members(conn, row, owner: str) -> int:
    state = _lock_job(conn, row.id)
    if state.lease_owner != owner:
        raise LostLease()
    prepared = prepare_selection(conn, row.account_id, row.selection)  # as_of: now, or given
    ids = prepared.members()
    conn.execute(sa.delete(t.job_members).where(t.job_members.c.job_id == row.id))
    members = sa.select(sa.literal(row.id), ids.selected_columns[0]).where(ids.whereclause)
    conn.execute(sa.insert(t.job_members).from_select(["job_id", "contact_id"], members))
    total = conn.execute(
        sa.select(sa.func.count()).where(t.job_members.c.job_id == row.id)
    ).scalar_one()
    conn.execute(
        sa.update(j)
        .where(j.c.id == row.id)
        .values(snapshot_taken=True, total=total, as_of=prepared.as_of)
    )
    return total


def _chunk(conn, row, handlers, settings: Settings, owner: str, size: int) -> str:
    state = _lock_job(conn, row.id)
    if state.lease_owner != owner or state.status != "running":
        raise LostLease()
    now = t.utcnow()
    if state.cancel_requested:
        conn.execute(
            sa.update(j)
            .where(j.c.id == row.id)
            .values(status="cancelled", finished_at=now, lease_until=None)
        )
        return "cancelled"
    jm = t.job_members
    ids = list(
        conn.execute(
            sa.select(jm.c.contact_id)
            .where(jm.c.job_id == row.id, jm.c.contact_id > state.cursor)
            .order_by(jm.c.contact_id)
            .limit(size)
        ).scalars()
    )
    if not ids:
        conn.execute(
            sa.update(j)
            .where(j.c.id == row.id)
            .values(status="succeeded", finished_at=now, lease_until=None)
        )
        return "succeeded"
    for position, handler in enumerate(handlers):
        rc = RunContext(
            conn=conn,
            account_id=row.account_id,
            job_id=row.id,
            now=now,
            as_of=row.as_of,
            settings=settings,
            position=position,
        )
        changed = handler.apply(rc, ids)
        if changed:
            ja = t.job_actions
            conn.execute(
                sa.update(ja)
                .where(ja.c.job_id == row.id, ja.c.position == position)
                .values(affected=ja.c.affected + len(changed))
            )
    conn.execute(
        sa.update(j)
        .where(j.c.id == row.id)
        .values(
            cursor=ids[-1],
            processed=j.c.processed + len(ids),
            lease_until=now + timedelta(seconds=settings.job_lease_s),
        )
    )
    return "more"


def _with_retries(engine: Engine, work):
    """One transaction; retried on deadlock / serialization failure / busy database, and
    through a short database outage (about 7 s; past that, the lease takes over)."""
    for attempt in range(MAX_CHUNK_RETRIES):
        try:
            with engine.begin() as conn:
                return work(conn)
        except DBAPIError as exc:
            again = _retryable(exc) or disconnected(exc)
            if not again or attempt == MAX_CHUNK_RETRIES - 1:
                raise
            time.sleep(min(2.0, 0.05 * 2**attempt))
    raise AssertionError("unreachable")
