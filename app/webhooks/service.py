"""An account's webhooks: create (the secret shown once), list, read, delete, and the
attempts made to deliver to each."""

import secrets

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from app import tables as t
from app.errors import Invalid, NotFound
from app.webhooks import addresses

w = t.webhooks
wd = t.webhook_deliveries
wa = t.webhook_attempts
COLUMNS = (w.c.id, w.c.url, w.c.events, w.c.created_at)


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def create(
    conn: Connection, account_id: int, *, url: str, events: list[str], allow_private: bool
) -> dict:
    try:
        addresses.check(url, allow_private=allow_private)
    except addresses.Refused as exc:
        raise Invalid.at("url", str(exc)) from None
    secret = new_secret()
    row = conn.execute(
        sa.insert(w)
        .values(
            account_id=account_id,
            url=url,
            events=list(dict.fromkeys(events)),
            secret=secret,
            created_at=t.utcnow(),
        )
        .returning(*COLUMNS)
    ).one()
    return {**row._asdict(), "secret": secret}


def list_webhooks(conn: Connection, account_id: int) -> list[dict]:
    rows = conn.execute(sa.select(*COLUMNS).where(w.c.account_id == account_id).order_by(w.c.id))
    return [r._asdict() for r in rows]


def get(conn: Connection, account_id: int, webhook_id: int) -> dict:
    row = conn.execute(
        sa.select(*COLUMNS).where(w.c.account_id == account_id, w.c.id == webhook_id)
    ).first()
    if row is None:
        raise NotFound(f"webhook {webhook_id} not found")
    return row._asdict()


def delete(conn: Connection, account_id: int, webhook_id: int) -> None:
    """The webhook, its pending deliveries and its attempts."""
    get(conn, account_id, webhook_id)
    mine = sa.and_(wa.c.account_id == account_id, wa.c.webhook_id == webhook_id)
    conn.execute(sa.delete(wa).where(mine))
    conn.execute(sa.delete(wd).where(wd.c.account_id == account_id, wd.c.webhook_id == webhook_id))
    conn.execute(sa.delete(w).where(w.c.account_id == account_id, w.c.id == webhook_id))


def attempts(
    conn: Connection, account_id: int, webhook_id: int, *, limit: int, before: int | None
) -> dict:
    """The webhook's delivery attempts, newest first."""
    get(conn, account_id, webhook_id)
    query = (
        sa.select(
            wa.c.id,
            wd.c.event_id,
            wd.c.event,
            wd.c.job_id,
            wa.c.attempt,
            wa.c.status,
            wa.c.response_code,
            wa.c.error,
            wa.c.at,
            wa.c.duration_ms,
            sa.case((wd.c.status == "pending", wd.c.next_attempt_at)).label("next_attempt_at"),
        )
        .join(wd, sa.and_(wd.c.account_id == wa.c.account_id, wd.c.id == wa.c.delivery_id))
        .where(wa.c.account_id == account_id, wa.c.webhook_id == webhook_id)
        .order_by(wa.c.id.desc())
        .limit(limit + 1)
    )
    if before is not None:
        query = query.where(wa.c.id < before)
    rows = [r._asdict() for r in conn.execute(query)]
    more = len(rows) > limit
    rows = rows[:limit]
    return {"deliveries": rows, "next_before": rows[-1]["id"] if more else None}
