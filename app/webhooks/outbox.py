"""Events into the outbox, in the transaction that moved the job.

app.jobs.repository calls `job_moved` after every status change it makes; a delivery row
is written for each of the account's webhooks that wants the event, holding the body to
send (the job as GET /v1/jobs/{id} answers it at that moment). The move and its deliveries
commit together or not at all: a delivery exists exactly when the move happened."""

import json
import uuid

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from app import tables as t
from app.db import act_as
from app.jobs.state import Status

w = t.webhooks
wd = t.webhook_deliveries

EVENT_OF = {
    Status.RUNNING: "job.started",
    Status.SUCCEEDED: "job.succeeded",
    Status.FAILED: "job.failed",
    Status.CANCELLED: "job.cancelled",
}


def job_moved(conn: Connection, job_id: int, status: Status) -> int:
    """Write the deliveries of a job's move to `status` (running: its first start only).
    Returns how many."""
    event = EVENT_OF.get(status)
    if event is None:
        return 0
    j = t.jobs
    account_id, attempts = conn.execute(
        sa.select(j.c.account_id, j.c.attempts).where(j.c.id == job_id)
    ).one()
    if status == Status.RUNNING and attempts != 1:
        return 0  # claimed again after its worker vanished: it started long ago
    act_as(conn, account_id)  # the claim runs on the engine's duty alone
    hooks = [
        hook_id
        for hook_id, events in conn.execute(
            sa.select(w.c.id, w.c.events).where(w.c.account_id == account_id).order_by(w.c.id)
        )
        if event in (events or [])
    ]
    if not hooks:
        return 0
    from app.jobs.schemas import Job  # app.jobs.service imports app.jobs.repository
    from app.jobs.service import get_job

    now = t.utcnow()
    event_id = "evt_" + uuid.uuid4().hex
    job = Job.model_validate(get_job(conn, account_id, job_id)).model_dump(mode="json")
    body = json.dumps(
        {
            "id": event_id,
            "type": event,
            "created_at": now.isoformat().replace("+00:00", "Z"),
            "data": job,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )
    conn.execute(
        sa.insert(wd),
        [
            {
                "account_id": account_id,
                "webhook_id": hook_id,
                "event_id": event_id,
                "event": event,
                "job_id": job_id,
                "body": body,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for hook_id in hooks
        ],
    )
    return len(hooks)
