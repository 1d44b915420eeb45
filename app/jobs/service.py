"""Submitting, reading and cancelling jobs. The queue only ever carries a job id; the
caller's transaction commits (and only then may the job be enqueued)."""

import hashlib
import json
from collections.abc import Iterator
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from app import tables as t
from app.actions import RunContext, prepare
from app.config import Settings
from app.csvcells import csv_line
from app.db import set_statement_timeout
from app.errors import Conflict, Gone, Invalid, NotFound, job_error_shown
from app.imports import repository as import_repository
from app.jobs import repository
from app.jobs.revert import RevertStep, steps_to_revert
from app.jobs.revert import members as revert_members
from app.jobs.schemas import JobIn
from app.jobs.state import FINISHED
from app.selection.service import Prepared
from app.selection.service import prepare as prepare_selection

IDEMPOTENCY_WINDOW = timedelta(hours=24)


def request_hash(body: JobIn) -> str:
    canonical = json.dumps(
        body.model_dump(mode="json", by_alias=True, exclude_unset=True),
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


# --- the calls into the selection pipeline and app.actions, one function each ----------


def validate(conn: Connection, account_id: int, body: JobIn) -> tuple[Prepared, list]:
    """422 for a bad selection or action list; returns the checked selection and the
    actions' handlers."""
    prepared = prepare_selection(conn, account_id, body.selection, prefix="selection")
    handlers = prepare(conn, account_id, body.actions, create=False)
    return prepared, handlers


def _total(conn: Connection, prepared: Prepared) -> int:
    return conn.execute(prepared.count()).scalar_one()


def _would_change(
    conn: Connection, account_id: int, settings: Settings, prepared: Prepared, handlers
) -> list[dict]:
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
    return actions


# --- the routes' work ------------------------------------------------------------------


def dry_run(conn: Connection, account_id: int, body: JobIn, settings: Settings) -> dict:
    prepared, handlers = validate(conn, account_id, body)
    total = _total(conn, prepared)
    return {
        "total": total,
        "actions": _would_change(conn, account_id, settings, prepared, handlers),
    }


def submit(
    conn: Connection,
    account_id: int,
    body: JobIn,
    idempotency_key: str | None,
    created_by: str | None = None,
) -> tuple[int, bool]:
    """Create the job row (status queued). Returns (job id, created now?)."""
    digest = request_hash(body)
    now = t.utcnow()
    if idempotency_key is not None:
        earlier = _job_with_key(conn, account_id, idempotency_key, digest, now)
        if earlier is not None:
            return earlier, False

    prepared, _handlers = validate(conn, account_id, body)
    if body.expected_total is not None:
        total = _total(conn, prepared)
        if total != body.expected_total:
            raise Conflict(
                f"the selection counts {total} contacts, not the expected {body.expected_total}",
                extra={"total": total, "expected_total": body.expected_total},
            )
    actions = [a.model_dump(mode="json", by_alias=True) for a in body.actions]
    try:
        with conn.begin_nested():
            job_id = repository.insert_job(
                conn,
                action_types=[a["type"] for a in actions],
                account_id=account_id,
                selection=body.selection.model_dump(mode="json", by_alias=True, exclude_unset=True),
                actions=actions,
                as_of=body.selection.as_of or now,
                run_at=body.run_at,
                created_at=now,
                idempotency_key=idempotency_key,
                request_hash=digest,
                name=body.name,
                created_by=created_by,
            )
    except IntegrityError:
        if idempotency_key is None:
            raise
        # A concurrent request with the same key won the race (its row is committed: the
        # unique index waited for it). Answer its job; look once, never loop.
        earlier = _job_with_key(conn, account_id, idempotency_key, digest, now)
        if earlier is None:
            raise Conflict("a request with this Idempotency-Key is in flight; try again") from None
        return earlier, False
    return job_id, True


def _job_with_key(
    conn: Connection, account_id: int, key: str, digest: str, now: datetime
) -> int | None:
    """The job this Idempotency-Key made within the window (409 if for another body), or
    None; a key past the window is released for use again."""
    existing = repository.find_by_idempotency_key(conn, account_id, key)
    if existing is None:
        return None
    if existing.created_at < now - IDEMPOTENCY_WINDOW:
        repository.release_idempotency_key(conn, existing.id)
        return None
    if existing.request_hash != digest:
        raise Conflict("this Idempotency-Key was used with another request body")
    return existing.id


def _as_dict(row, actions: list[dict], reverted_by: int | None) -> dict:
    error_code, error = job_error_shown(row.error)
    stored = row.actions if isinstance(row.actions, list) else []
    if row.kind != "revert":  # each action with its parameters, as submitted
        actions = [
            {**params, **progress} if isinstance(params, dict) else progress
            for params, progress in zip(stored, actions, strict=False)
        ] + actions[len(stored) :]
    return {
        "id": row.id,
        "kind": row.kind,
        "name": row.name,
        "status": row.status,
        "total": row.total,
        "processed": row.processed,
        "actions": actions,
        "selection": row.selection,
        "error": error,
        "error_code": error_code,
        "created_by": row.created_by,
        "reverts": row.reverts,
        "reverted_by": reverted_by,
        "conflicts": row.conflicts if row.kind == "revert" else None,
        **_import_counters(row),
        "created_at": row.created_at,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
        "run_at": row.run_at,
        "cancel_requested": row.cancel_requested,
        "attempts": row.attempts,
    }


def _import_counters(row) -> dict:
    if row.kind != "import":
        return {}
    spec = row.import_spec or {}
    return {
        "selection": None,
        "created": row.created,
        "updated": row.updated,
        "rejected": row.rejected,
        "unmapped_columns": spec.get("unmapped_columns", []),
    }


def _job(conn: Connection, account_id: int, job_id: int):
    row = repository.get_job(conn, account_id, job_id)
    if row is None:
        raise NotFound(f"job {job_id} not found")
    return row


def get_job(conn: Connection, account_id: int, job_id: int) -> dict:
    row = _job(conn, account_id, job_id)
    reverted = repository.reverted_by(conn, account_id, [job_id])
    return _as_dict(row, repository.action_progress(conn, [job_id])[job_id], reverted.get(job_id))


def list_jobs(conn: Connection, account_id: int, limit: int, before: int | None, **filters) -> dict:
    """`filters`: status, kind, action (None: any)."""
    rows = repository.list_jobs(conn, account_id, limit=limit + 1, before=before, **filters)
    more = len(rows) > limit
    rows = rows[:limit]
    ids = [r.id for r in rows]
    by_job = repository.action_progress(conn, ids)
    reverted = repository.reverted_by(conn, account_id, ids)
    return {
        "jobs": [_as_dict(r, by_job[r.id], reverted.get(r.id)) for r in rows],
        "next_before": rows[-1].id if more and rows else None,
    }


# --- revert ----------------------------------------------------------------------------


def _revertible(conn: Connection, account_id: int, job_id: int):
    """The job to revert, or the 409 / 410 that says why not."""
    row = _job(conn, account_id, job_id)
    if row.status not in FINISHED:
        raise Conflict(f"job {job_id} has not finished (it is {row.status}): cancel it first")
    reverted = repository.reverted_by(conn, account_id, [job_id]).get(job_id)
    if reverted is not None:
        raise Conflict(
            f"job {job_id} already has a revert: job {reverted}", extra={"reverted_by": reverted}
        )
    if row.log_purged:
        raise Gone(
            f"the change log of job {job_id} has been purged "
            "(it is kept AUDIENCE_CHANGE_LOG_DAYS after a job ends)"
        )
    return row


def revert(conn: Connection, account_id: int, job_id: int, created_by: str | None) -> int:
    """A queued job that reverts job `job_id`."""
    row = _revertible(conn, account_id, job_id)
    steps = steps_to_revert(conn, account_id, job_id)
    try:
        with conn.begin_nested():
            return repository.insert_job(
                conn,
                action_types=[s["type"] for s in steps],
                account_id=account_id,
                kind="revert",
                reverts=job_id,
                name=f"revert of job {job_id}" + (f" ({row.name})" if row.name else ""),
                selection=row.selection,
                actions=steps,
                as_of=t.utcnow(),
                created_at=t.utcnow(),
                created_by=created_by,
            )
    except IntegrityError:  # a concurrent revert of the same job won
        other = repository.reverted_by(conn, account_id, [job_id]).get(job_id)
        raise Conflict(f"job {job_id} already has a revert: job {other}") from None


def revert_dry_run(conn: Connection, account_id: int, job_id: int, settings: Settings) -> dict:
    """What a revert would give back and leave alone, today; changes nothing."""
    _revertible(conn, account_id, job_id)
    _ids, counted = revert_members(account_id, job_id)
    rc = RunContext(
        conn=conn,
        account_id=account_id,
        job_id=None,
        now=t.utcnow(),
        as_of=t.utcnow(),
        settings=settings,
    )
    actions, conflicts = [], 0
    for step in steps_to_revert(conn, account_id, job_id):
        restored, left = RevertStep(**step).would_change(rc)
        actions.append({"type": step["type"], "affected": restored})
        conflicts += left
    return {"total": conn.execute(counted).scalar_one(), "actions": actions, "conflicts": conflicts}


# --- a contact's history ---------------------------------------------------------------

BOOLEAN_FIELDS = {"email_opt_in", "phone_opt_in", "email_valid", "deleted"}


MEMBERSHIPS = {"tag", "group", "owner"}


def _shown(field: str, value: str | None, stages: dict[int, str]):
    """A logged value as the API shows it: flags and scores typed, a membership (tag,
    group, owner) as whether the contact had it, a funnel's stage by name."""
    if field in MEMBERSHIPS:
        return value is not None
    if value is None:
        return None
    if field in BOOLEAN_FIELDS:
        return value in ("1", "true")
    if field == "score":
        return int(value)
    if field == "funnel":
        return stages.get(int(value), value)
    return value


def _field_name(field: str, ref: int, names: dict) -> str:
    if field in names:
        return f"{field}:{names[field].get(ref, ref)}"
    return field


def history(
    conn: Connection, account_id: int, contact_id: int, limit: int, before: str | None
) -> dict:
    exists = conn.execute(
        sa.select(t.contacts.c.id).where(
            t.contacts.c.account_id == account_id, t.contacts.c.id == contact_id
        )
    ).first()
    if exists is None:
        raise NotFound(f"contact {contact_id} not found")
    cursor = _cursor(before)
    rows = repository.history(conn, account_id, contact_id, limit=limit + 1, before=cursor)
    more = len(rows) > limit
    rows = rows[:limit]
    names = _names_of(conn, account_id, rows)
    stages = _stages_of(conn, account_id, rows)
    last = rows[-1] if rows else None
    return {
        "changes": [
            {
                "job_id": r.job_id,
                "kind": r.kind,
                "action": r.action,
                "field": _field_name(r.field, r.ref, names),
                "before": _shown(r.field, r.before, stages),
                "after": _shown(r.field, r.after, stages),
                "at": r.at,
                "created_by": r.created_by,
            }
            for r in rows
        ],
        "next_before": f"{last.job_id}.{last.step}.{last.ref}.{last.field}"
        if more and last
        else None,
    }


def _cursor(before: str | None) -> tuple | None:
    if before is None:
        return None
    try:
        job_id, step, ref, field = before.split(".", 3)
        return int(job_id), int(step), field, int(ref)
    except ValueError:
        raise Invalid.at("query.before", "not a cursor this endpoint gave") from None


def _stages_of(conn: Connection, account_id: int, rows) -> dict[int, str]:
    ids = sorted({int(v) for r in rows if r.field == "funnel" for v in (r.before, r.after) if v})
    if not ids:
        return {}
    st = t.stages
    return dict(
        conn.execute(
            sa.select(st.c.id, st.c.name).where(st.c.account_id == account_id, st.c.id.in_(ids))
        ).all()
    )


def _names_of(conn: Connection, account_id: int, rows) -> dict[str, dict[int, str]]:
    """The names of the tags, groups, owners and funnels `rows` refer to by id."""
    tables = {
        "tag": (t.tags, t.tags.c.name),
        "group": (t.groups, t.groups.c.name),
        "owner": (t.users, t.users.c.email),
        "funnel": (t.funnels, t.funnels.c.name),
    }
    names: dict[str, dict[int, str]] = {}
    for field, (table, name) in tables.items():
        ids = sorted({r.ref for r in rows if r.field == field})
        names[field] = (
            dict(
                conn.execute(
                    sa.select(table.c.id, name).where(
                        table.c.account_id == account_id, table.c.id.in_(ids)
                    )
                ).all()
            )
            if ids
            else {}
        )
    return names


def cancel(conn: Connection, account_id: int, job_id: int) -> dict:
    """A queued job is cancelled at once; a running one is asked to stop between chunks
    (also when it was claimed a moment ago); a finished one stays as it is."""
    get_job(conn, account_id, job_id)  # 404 for another account's job
    if repository.cancel_queued(conn, job_id):
        import_repository.unstage(conn, account_id, job_id)  # an import's file, if any
    else:
        repository.request_cancel(conn, job_id)
    return get_job(conn, account_id, job_id)


def output_rows(
    engine: Engine, account_id: int, job_id: int, timeout_s: float, batch: int = 5000
) -> Iterator[str]:
    """CSV of a job's coupons/links, read in keyset batches (never all in memory), a batch
    a piece: a streamed piece costs a hop to a thread, so never one per line. Each batch
    runs under the statement timeout."""
    yield csv_line(("contact_id", "email", "value"))
    last = (-1, -1)
    while True:
        with engine.connect() as conn:
            set_statement_timeout(conn, timeout_s)
            rows = repository.output_batch(conn, account_id, job_id, after=last, limit=batch)
        if not rows:
            return
        yield "".join(
            csv_line((cid, email, value)) for _pos, cid, email, value in rows if email is not None
        )
        last = (rows[-1][0], rows[-1][1])
