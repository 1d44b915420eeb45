"""Submitting, reading and cancelling jobs. The queue only ever carries a job id."""

import hashlib
import json
from collections.abc import Iterator
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from app import tables as t
from app.actions import RunContext, prepare
from app.config import Settings
from app.db import is_postgres
from app.errors import Conflict, NotFound
from app.jobs.schemas import JobIn
from app.selection.service import prepare as prepare_selection

j = t.jobs
IDEMPOTENCY_WINDOW = timedelta(hours=24)


def request_hash(body: JobIn) -> str:
    canonical = json.dumps(
        body.model_dump(mode="json", by_alias=True, exclude_unset=True),
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def validate(conn: Connection, account_id: int, body: JobIn):
    """422 for a bad selection or action list; returns the compiled context."""
    prepared = prepare_selection(conn, account_id, body.selection, prefix="selection")
    handlers = prepare(conn, account_id, body.actions, create=False)
    return prepared, handlers


def dry_run(conn: Connection, account_id: int, body: JobIn, settings: Settings) -> dict:
    prepared, handlers = validate(conn, account_id, body)
    total = conn.execute(prepared.count()).scalar_one()
    members = prepared.members()
    actions = []
    for position, handler in enumerate(handlers):
        rc = RunContext(
            conn=conn,
            account_id=account_id,
            job_id=None,
            now=t.utcnow(),
            as_of=prepared.as_of,
            settings=settings,
            position=position,
        )
        actions.append({"type": handler.type, "affected": handler.would_change(rc, members)})
    return {"total": total, "actions": actions}


def submit(
    conn: Connection, account_id: int, body: JobIn, idempotency_key: str | None
) -> tuple[int, bool]:
    """Create the job row (status queued). Returns (job id, created now?)."""
    digest = request_hash(body)
    now = t.utcnow()
    if idempotency_key:
        existing = conn.execute(
            sa.select(j.c.id, j.c.request_hash, j.c.created_at).where(
                j.c.account_id == account_id, j.c.idempotency_key == idempotency_key
            )
        ).first()
        if existing is not None:
            if existing.created_at >= now - IDEMPOTENCY_WINDOW:
                if existing.request_hash != digest:
                    raise Conflict("this Idempotency-Key was used with another request body")
                return existing.id, False
            conn.execute(sa.update(j).where(j.c.id == existing.id).values(idempotency_key=None))

    prepared, _ = validate(conn, account_id, body)
    if body.expected_total is not None:
        total = conn.execute(prepared.count()).scalar_one()
        if total != body.expected_total:
            raise Conflict(
                f"the selection counts {total} contacts, not the expected {body.expected_total}",
                extra={"total": total, "expected_total": body.expected_total},
            )
    selection = body.selection.model_dump(mode="json", by_alias=True, exclude_unset=True)
    actions = [a.model_dump(mode="json", by_alias=True) for a in body.actions]
    try:
        with conn.begin_nested():
            job_id = conn.execute(
                sa.insert(j)
                .values(
                    account_id=account_id,
                    status="queued",
                    selection=selection,
                    actions=actions,
                    as_of=body.selection.as_of or now,
                    run_at=body.run_at,
                    created_at=now,
                    idempotency_key=idempotency_key,
                    request_hash=digest,
                )
                .returning(j.c.id)
            ).scalar_one()
    except IntegrityError:
        # a concurrent request with the same key won the race: answer its job
        return submit(conn, account_id, body, idempotency_key)
    conn.execute(
        sa.insert(t.job_actions),
        [
            {"job_id": job_id, "position": i, "type": a["type"], "affected": 0}
            for i, a in enumerate(actions)
        ],
    )
    return job_id, True


def _as_dict(row, actions) -> dict:
    return {
        "id": row.id,
        "status": row.status,
        "total": row.total,
        "processed": row.processed,
        "actions": actions,
        "error": row.error,
        "created_at": row.created_at,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
        "run_at": row.run_at,
        "cancel_requested": row.cancel_requested,
        "attempts": row.attempts,
    }


def get_job(conn: Connection, account_id: int, job_id: int) -> dict:
    row = conn.execute(sa.select(j).where(j.c.account_id == account_id, j.c.id == job_id)).first()
    if row is None:
        raise NotFound(f"job {job_id} not found")
    actions = conn.execute(
        sa.select(t.job_actions.c.type, t.job_actions.c.affected)
        .where(t.job_actions.c.job_id == job_id)
        .order_by(t.job_actions.c.position)
    ).mappings()
    return _as_dict(row, [dict(a) for a in actions])


def list_jobs(conn: Connection, account_id: int, limit: int, before: int | None) -> dict:
    query = (
        sa.select(j).where(j.c.account_id == account_id).order_by(j.c.id.desc()).limit(limit + 1)
    )
    if before is not None:
        query = query.where(j.c.id < before)
    rows = conn.execute(query).all()
    more = len(rows) > limit
    rows = rows[:limit]
    ja = t.job_actions
    by_job: dict[int, list[dict]] = {r.id: [] for r in rows}
    if rows:
        for job_id, type_, affected in conn.execute(
            sa.select(ja.c.job_id, ja.c.type, ja.c.affected)
            .where(ja.c.job_id.in_(list(by_job)))
            .order_by(ja.c.job_id, ja.c.position)
        ):
            by_job[job_id].append({"type": type_, "affected": affected})
    return {
        "jobs": [_as_dict(r, by_job[r.id]) for r in rows],
        "next_before": rows[-1].id if more and rows else None,
    }


def cancel(conn: Connection, account_id: int, job_id: int) -> dict:
    job = get_job(conn, account_id, job_id)
    if job["status"] == "queued":
        conn.execute(
            sa.update(j)
            .where(j.c.id == job_id, j.c.status == "queued")
            .values(status="cancelled", cancel_requested=True, finished_at=t.utcnow())
        )
    elif job["status"] == "running":
        conn.execute(sa.update(j).where(j.c.id == job_id).values(cancel_requested=True))
    return get_job(conn, account_id, job_id)


def output_rows(engine: Engine, account_id: int, job_id: int, batch: int = 5000) -> Iterator[str]:
    """CSV of a job's coupons/links, read in keyset batches (never all in memory), a batch
    a piece: a streamed piece costs a hop to a thread, so never one per line."""
    yield "contact_id,email,value\r\n"
    jo = t.job_output
    last = (-1, -1)
    while True:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(jo.c.position, jo.c.contact_id, t.contacts.c.email, jo.c.value)
                .join(t.contacts, t.contacts.c.id == jo.c.contact_id)
                .where(
                    jo.c.job_id == job_id,
                    t.contacts.c.account_id == account_id,
                    sa.tuple_(jo.c.position, jo.c.contact_id) > sa.tuple_(*last),
                )
                .order_by(jo.c.position, jo.c.contact_id)
                .limit(batch)
            ).all()
        if not rows:
            return
        yield "".join(f"{cid},{_csv(email)},{_csv(value)}\r\n" for _pos, cid, email, value in rows)
        last = (rows[-1][0], rows[-1][1])


def _csv(value: str) -> str:
    if any(ch in value for ch in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


def due_jobs(conn: Connection, limit: int = 20) -> list[int]:
    """Queued jobs whose time has come, and running jobs whose lease expired."""
    now = t.utcnow()
    return list(
        conn.execute(
            sa.select(j.c.id)
            .where(
                sa.or_(
                    sa.and_(
                        j.c.status == "queued", sa.or_(j.c.run_at.is_(None), j.c.run_at <= now)
                    ),
                    sa.and_(j.c.status == "running", j.c.lease_until < now),
                )
            )
            .order_by(j.c.id)
            .limit(limit)
        ).scalars()
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
    under it). `failed`: within `failed_within`. Each: {"count", "jobs": up to `limit`}."""
    now = t.utcnow()
    due = sa.func.coalesce(j.c.run_at, j.c.created_at)
    kinds = {
        "stuck": (_stuck(now, stuck_after), j.c.lease_until),
        "overdue": (sa.and_(j.c.status == "queued", due < now - queued_for), j.c.id),
        "restarted": (
            sa.and_(j.c.status == "running", j.c.attempts > max_attempts),
            j.c.attempts.desc(),
        ),
        "failed": (
            sa.and_(j.c.status == "failed", j.c.finished_at >= now - failed_within),
            j.c.finished_at.desc(),
        ),
    }
    columns = [
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
    ]
    found = {}
    for kind, (where, order) in kinds.items():
        count = conn.execute(sa.select(sa.func.count()).select_from(j).where(where)).scalar_one()
        rows = conn.execute(sa.select(*columns).where(where).order_by(order).limit(limit))
        found[kind] = {"count": count, "jobs": [dict(r) for r in rows.mappings()]}
    return found


def stuck_jobs(conn: Connection, stuck_after: timedelta = timedelta(seconds=10)) -> int:
    """How many running jobs have a lease that expired more than `stuck_after` ago."""
    where = _stuck(t.utcnow(), stuck_after)
    return conn.execute(sa.select(sa.func.count()).select_from(j).where(where)).scalar_one()


def _stuck(now, stuck_after: timedelta):
    return sa.and_(j.c.status == "running", j.c.lease_until < now - stuck_after)


def purge_snapshot(conn: Connection, batch: int = 50_000) -> int:
    """Delete up to `batch` snapshot rows (job_members) of one finished job; once none are
    left, mark the job's snapshot gone. A finished job needs no members: its counters and
    output are kept elsewhere. Returns the rows deleted (0: nothing to purge).

    A key range, not `IN (SELECT … LIMIT)`: with stale statistics (a snapshot is written
    in one statement) PostgreSQL planned that as a nested loop, for most of an hour. One
    purger at a time (an advisory lock on PostgreSQL; SQLite has one writer anyway)."""
    lock = sa.select(sa.func.pg_try_advisory_xact_lock(PURGE_LOCK))
    if is_postgres(conn) and not conn.execute(lock).scalar():
        return 0
    jm = t.job_members
    job_id = conn.execute(
        sa.select(j.c.id)
        .where(j.c.snapshot_taken.is_(True), j.c.status.in_(t.FINISHED))
        .order_by(j.c.id)
        .limit(1)
    ).scalar()
    if job_id is None:
        return 0
    bound = conn.execute(
        sa.select(jm.c.contact_id)
        .where(jm.c.job_id == job_id)
        .order_by(jm.c.contact_id)
        .offset(batch - 1)
        .limit(1)
    ).scalar()
    doomed = sa.delete(jm).where(jm.c.job_id == job_id)
    if bound is not None:
        doomed = doomed.where(jm.c.contact_id <= bound)
    deleted = conn.execute(doomed).rowcount
    if bound is None:
        conn.execute(sa.update(j).where(j.c.id == job_id).values(snapshot_taken=False))
    return deleted


PURGE_LOCK = 0x61756469  # "audi": pg_try_advisory_xact_lock key of purge_snapshot
