"""Running a job: claim it, snapshot the selection once, apply the actions chunk by chunk.

The database owns job state. Each chunk is one transaction that applies every action to
the chunk AND advances the job's cursor and counters, so a retried job resumes after the
last committed chunk and nothing is applied twice. A lease (renewed every chunk) tells a
reaper when a worker has vanished. A database outage rolls back the chunk in flight: it is
retried for a few seconds, then the job is left to its lease (never marked failed).
Every statement is app.jobs.repository's; this module decides what happens when.

A job acts for its account: the claim is the engine's bookkeeping (the job's account is not
known yet), every later transaction acts for the job's account, so on PostgreSQL row-level
security shows it that account's rows and no other. Two counts guard against a job that
would otherwise pass having done nothing: the snapshot must hold what the selection counts
in the same statement, and a finished job must have processed its whole snapshot.
"""

import time
import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa
from pydantic import TypeAdapter
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import DBAPIError, OperationalError

from app import logs, metrics
from app import tables as t
from app.actions import RunContext, prepare
from app.actions.schemas import ActionList
from app.config import Settings
from app.db import disconnected, engine_duty, for_account
from app.errors import AudienceError, job_failure
from app.imports import apply as imports
from app.imports import repository as import_repository
from app.jobs import repository
from app.jobs.revert import RevertStep
from app.jobs.revert import members as revert_members
from app.jobs.state import Outcome, Status
from app.selection.service import prepare as prepare_selection

log = logs.get("audience.jobs")
ACTIONS = TypeAdapter(ActionList)
RETRYABLE_SQLSTATES = {"40001", "40P01", "55P03"}  # serialization, deadlock, lock timeout
MAX_CHUNK_RETRIES = 8
IMPORT = "import"
WORKER_ID = f"{uuid.uuid4().hex[:12]}"


class LostLease(Exception):
    """Another worker took the job over; stop without touching it."""


class WrongSnapshot(AudienceError):
    """The job's snapshot is not what its selection asks for: taken while not acting for
    the job's account, disagreeing with the selection's count, or not processed whole.
    The job fails, loudly, rather than pass having done less than asked; its tenant sees
    why (counts of its own contacts), under a code of its own."""

    code = "wrong_snapshot"


def _retryable(exc: Exception) -> bool:
    code = getattr(getattr(exc, "orig", None), "sqlstate", None)
    if code in RETRYABLE_SQLSTATES:
        return True
    # SQLite: another writer holds the lock past the busy timeout
    return isinstance(exc, OperationalError) and "locked" in str(exc).lower()


def run_job(
    engine: Engine, job_id: int, settings: Settings, owner: str | None = None
) -> Status | Outcome:
    """Run (or resume) a job if it can be claimed. Returns the status this run left it in,
    or, when it did not finish it, the Outcome saying why."""
    owner = owner or f"{WORKER_ID}:{uuid.uuid4().hex[:8]}"
    try:
        with engine.begin() as conn:
            engine_duty(conn)
            if not repository.claim(conn, job_id, owner=owner, lease_s=settings.job_lease_s):
                return Outcome.NOT_CLAIMED
            account_id = repository.account_of(conn, job_id)
    except DBAPIError as exc:
        if not disconnected(exc):
            raise
        return _interrupted(job_id, exc)
    log.info("job started", job_id=job_id, owner=owner)
    engine = for_account(engine, account_id)
    try:
        return _run_claimed(engine, job_id, settings, owner)
    except LostLease:
        log.warning("job lease lost", job_id=job_id, owner=owner)
        return Outcome.LOST_LEASE
    except Exception as exc:
        if disconnected(exc):
            return _interrupted(job_id, exc)
        log.exception("job failed", job_id=job_id)
        error = job_failure(exc)  # the tenant's; the detail is in the line above
        with engine.begin() as conn:
            if repository.finish(conn, job_id, owner=owner, status=Status.FAILED, error=error):
                _drop_staged(conn, repository.load(conn, job_id))
        log.info("job finished", job_id=job_id, status=Status.FAILED, error=error)
        return Status.FAILED


def _interrupted(job_id: int, exc: Exception) -> Outcome:
    """A database outage is not the job's failure. The job stays `running` under a lease
    nobody renews; once it expires the job is claimed again (reaper or in-process runner)
    and resumes after its last committed chunk."""
    error = str(getattr(exc, "orig", exc))[:500]
    log.warning("job interrupted: database unavailable", job_id=job_id, error=error)
    return Outcome.INTERRUPTED


def _run_claimed(engine: Engine, job_id: int, settings: Settings, owner: str) -> Status:
    with engine.begin() as conn:
        row = repository.load(conn, job_id)
    handlers = _handlers(engine, row)
    if row.kind != IMPORT and not row.snapshot_taken:  # an import's rows are staged at submit
        _snapshot(engine, row, owner)
        with engine.begin() as conn:
            row = repository.load(conn, job_id)

    chunk_size = max(1, settings.job_chunk_size)
    while True:
        started = time.perf_counter()
        status = _with_retries(
            engine, lambda conn: _chunk(conn, row, handlers, settings, owner, chunk_size)
        )
        metrics.CHUNK_DURATION.labels(row.kind).observe(time.perf_counter() - started)
        if status != Status.RUNNING:
            log.info("job finished", job_id=job_id, status=status)
            return status


def _handlers(engine: Engine, row: Row) -> list:
    """The job's stored action list, ready to run (creating the tags … it names): the
    runner's one call into app.actions' preparation. A revert's are its reverted job's
    logged steps, turned around."""
    if row.kind == "revert":
        return [RevertStep(**step) for step in row.actions]
    if row.kind == IMPORT:
        with engine.begin() as conn:
            return [imports.prepare(conn, row)]
    with engine.begin() as conn:
        return prepare(conn, row.account_id, ACTIONS.validate_python(row.actions), create=True)


def _snapshot(engine: Engine, row: Row, owner: str) -> None:
    """Fix the job's members once, in one statement; sets `total`."""
    total = _with_retries(engine, lambda conn: _take_snapshot(conn, row, owner))
    log.info("job snapshot", job_id=row.id, total=total)


def _take_snapshot(conn: Connection, row: Row, owner: str) -> int:
    if repository.lock(conn, row.id).lease_owner != owner:
        raise LostLease()
    if not repository.acts_for(conn, row.account_id):
        raise WrongSnapshot(f"the job does not act for its account {row.account_id}")
    members, counted, as_of = _members(conn, row)
    total, count = repository.replace_snapshot(
        conn, row.account_id, row.id, members=members, counted=counted, as_of=as_of
    )
    if total != count:
        raise WrongSnapshot(f"the snapshot holds {total} contacts but the selection counts {count}")
    return total


def _members(conn: Connection, row: Row) -> tuple[sa.Select, sa.Select, datetime]:
    """The job's selection compiled to a query of contact ids and to its count, and its
    as_of: the runner's one call into the selection pipeline. A revert's: the contacts
    its reverted job's log names."""
    if row.kind == "revert":
        return (*revert_members(row.account_id, row.reverts), row.as_of)
    prepared = prepare_selection(conn, row.account_id, row.selection)  # as_of: now, or given
    return prepared.members(), prepared.count(), prepared.as_of


def _chunk(conn: Connection, row: Row, handlers: list, settings: Settings, owner: str, size: int):
    """One chunk, in the caller's transaction. Returns the job's status after it: still
    running (more to do), or cancelled or succeeded by this chunk."""
    held = repository.lock(conn, row.id)
    if held.lease_owner != owner or held.status != Status.RUNNING:
        raise LostLease()
    now = t.utcnow()
    if held.cancel_requested:
        _drop_staged(conn, row)
        repository.finish(conn, row.id, owner=owner, status=Status.CANCELLED, now=now)
        return Status.CANCELLED
    if row.kind == IMPORT:
        return _import_chunk(conn, row, handlers[0], held, settings, owner, size, now)
    ids = repository.next_chunk(conn, row.account_id, row.id, after=held.cursor, size=size)
    if not ids:
        if held.processed != held.total:
            raise WrongSnapshot(
                f"{held.processed} of the snapshot's {held.total} contacts were processed"
            )
        repository.finish(conn, row.id, owner=owner, status=Status.SUCCEEDED, now=now)
        return Status.SUCCEEDED
    _apply(conn, row, handlers, ids, now, settings)
    lease_until = now + timedelta(seconds=settings.job_lease_s)
    repository.advance(conn, row.id, cursor=ids[-1], processed=len(ids), lease_until=lease_until)
    metrics.ROWS_APPLIED.labels(row.kind).inc(len(ids))  # (again, if the chunk is retried)
    return Status.RUNNING


def _import_chunk(
    conn: Connection, row: Row, importer, held: Row, settings: Settings, owner: str, size, now
) -> Status:
    """An import's next chunk of staged records, applied with its cursor (the last line)
    and counters in the caller's transaction; succeeded when none is left."""
    done = importer.apply(conn, after=held.cursor, size=size, now=now, settings=settings)
    if done is None:
        if held.processed != held.total:
            raise WrongSnapshot(f"{held.processed} of the file's {held.total} rows were processed")
        repository.finish(conn, row.id, owner=owner, status=Status.SUCCEEDED, now=now)
        return Status.SUCCEEDED
    import_repository.count(
        conn, row.id, created=done.created, updated=done.updated, rejected=done.rejected
    )
    lease_until = now + timedelta(seconds=settings.job_lease_s)
    repository.advance(
        conn, row.id, cursor=done.last_line, processed=done.processed, lease_until=lease_until
    )
    return Status.RUNNING


def _drop_staged(conn: Connection, row: Row) -> None:
    """An import that ends early drops what is left of its file."""
    if row.kind == IMPORT:
        import_repository.unstage(conn, row.account_id, row.id)


def _apply(
    conn: Connection, row: Row, handlers: list, ids: list[int], now: datetime, settings: Settings
) -> None:
    """Every action on one chunk, counted: the runner's one call into app.actions' run."""
    step = 0
    for position, handler in enumerate(handlers):
        rc = RunContext(
            conn=conn,
            account_id=row.account_id,
            job_id=row.id,
            now=now,
            as_of=row.as_of,
            settings=settings,
            position=position,
            step=step,
        )
        step += handler.steps()
        changed = handler.apply(rc, ids)
        if changed:
            repository.add_affected(conn, row.account_id, row.id, position, len(changed))


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
