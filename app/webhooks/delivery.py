"""Sending the outbox: claim due deliveries, POST each, record the attempt, reschedule.

At least once: a claim moves a delivery's `next_attempt_at` one lease ahead and commits
before anything is sent, so a worker that dies mid-send leaves it due again once the lease
passes (and another worker sends it, with the same `id`). Claims are `FOR UPDATE SKIP
LOCKED` on PostgreSQL, so several workers share the outbox without sending a delivery
twice at once; SQLite has one writer. A failed attempt (no 2xx, or no answer within
webhook_timeout_s) is tried again after webhook_retry_base_s, doubling up to
webhook_retry_max_s, until webhook_retry_window_s after the event; then it is given up.

The claim works across accounts on the engine's duty (migration 0007 lets it read and
update deliveries); each delivery is then read, sent and recorded acting for its account.
"""

import hashlib
import hmac
import ipaddress
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from app import logs, metrics
from app import tables as t
from app.config import Settings
from app.db import act_as, engine_duty, is_postgres
from app.webhooks import addresses

log = logs.get("audience.webhooks")
w = t.webhooks
wd = t.webhook_deliveries
wa = t.webhook_attempts
SIGNATURE_HEADER = "Audience-Signature"
USER_AGENT = "Audience-Webhooks/1"


def sign(secret: str, body: bytes, at: int) -> str:
    """The Audience-Signature header of `body` sent at Unix time `at`."""
    digest = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={digest}"


def backoff(settings: Settings, attempt: int) -> timedelta:
    """The wait after failed attempt number `attempt` (1, 2, …)."""
    seconds = settings.webhook_retry_base_s * 2 ** min(attempt - 1, 30)
    return timedelta(seconds=min(seconds, settings.webhook_retry_max_s))


@dataclass(frozen=True)
class Claimed:
    id: int
    account_id: int
    webhook_id: int
    attempt: int


def claim_due(conn: Connection, *, limit: int, lease_s: float) -> list[Claimed]:
    """Take up to `limit` due deliveries of any account: their next attempt moves a
    lease ahead (past it, they are due again), their attempt count up by one."""
    engine_duty(conn)
    now = t.utcnow()
    due = (
        sa.select(wd.c.id)
        .where(wd.c.status == "pending", wd.c.next_attempt_at <= now)
        .order_by(wd.c.next_attempt_at, wd.c.id)
        .limit(limit)
    )
    if is_postgres(conn):
        due = due.with_for_update(skip_locked=True)
    ids = list(conn.execute(due).scalars())
    if not ids:
        return []
    rows = conn.execute(
        sa.update(wd)
        .where(wd.c.id.in_(ids), wd.c.status == "pending")
        .values(next_attempt_at=now + timedelta(seconds=lease_s), attempts=wd.c.attempts + 1)
        .returning(wd.c.id, wd.c.account_id, wd.c.webhook_id, wd.c.attempts)
    ).all()
    return sorted((Claimed(*row) for row in rows), key=lambda c: c.id)


@dataclass(frozen=True)
class Outcome:
    ok: bool
    response_code: int | None
    error: str | None
    duration_ms: int


def post(url: str, body: bytes, secret: str, *, settings: Settings, event_id: str = "") -> Outcome:
    """POST `body` to `url`, signed, to the address checked just now (never resolving the
    name twice, never following a redirect)."""
    started = time.perf_counter()

    def done(ok: bool, code: int | None, error: str | None) -> Outcome:
        return Outcome(ok, code, error, int((time.perf_counter() - started) * 1000))

    try:
        target = addresses.check(url, allow_private=settings.webhook_allow_private)
    except addresses.Refused as exc:
        return done(False, None, str(exc))
    if not target.addresses:
        return done(False, None, f"{target.host} does not resolve")
    pinned = target.addresses[0]
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: sign(secret, body, int(time.time())),
        "Audience-Event-Id": event_id,
    }
    extensions = {}
    # trust_env off: a proxy from the environment would resolve the name itself
    client = httpx.Client(
        timeout=settings.webhook_timeout_s, follow_redirects=False, trust_env=False
    )
    try:
        request_url = httpx.URL(url)
        if _is_name(target.host):
            headers["Host"] = request_url.netloc.decode("ascii")
            request_url = request_url.copy_with(host=str(pinned))
            if target.scheme == "https":
                extensions["sni_hostname"] = target.host
        request = client.build_request(
            "POST", request_url, content=body, headers=headers, extensions=extensions
        )
        # the status is all we read: never the receiver's body, however big
        response = client.send(request, stream=True)
        response.close()
    except httpx.TimeoutException:
        return done(False, None, f"no answer within {settings.webhook_timeout_s:g} s")
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
        return done(False, None, f"{type(exc).__name__}: {exc}"[:500])
    finally:
        client.close()
    code = response.status_code
    if 200 <= code < 300:
        return done(True, code, None)
    return done(False, code, f"the receiver answered {code}")


def _is_name(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return False
    except ValueError:
        return True


def deliver(engine: Engine, claimed: Claimed, settings: Settings) -> bool | None:
    """Send one claimed delivery and record the attempt. True: delivered; False: failed
    (to be tried again, or given up); None: its webhook is gone."""
    with engine.begin() as conn:
        act_as(conn, claimed.account_id)
        found = conn.execute(
            sa.select(
                wd.c.body, wd.c.event_id, wd.c.webhook_id, wd.c.created_at, w.c.url, w.c.secret
            )
            .join(w, sa.and_(w.c.account_id == wd.c.account_id, w.c.id == wd.c.webhook_id))
            .where(wd.c.account_id == claimed.account_id, wd.c.id == claimed.id)
        ).first()
    if found is None:
        return None
    outcome = post(
        found.url, found.body.encode(), found.secret, settings=settings, event_id=found.event_id
    )
    now = t.utcnow()
    _record(engine, claimed, found.webhook_id, found.created_at, outcome, now, settings)
    metrics.WEBHOOK_DELIVERIES.labels("succeeded" if outcome.ok else "failed").inc()
    if not outcome.ok:
        log.info(
            "webhook delivery failed",
            delivery_id=claimed.id,
            attempt=claimed.attempt,
            error=outcome.error,
        )
    return outcome.ok


def _record(
    engine: Engine,
    claimed: Claimed,
    webhook_id: int,
    created_at: datetime,
    outcome: Outcome,
    now: datetime,
    settings: Settings,
) -> None:
    if outcome.ok:
        change = {"status": "delivered", "finished_at": now}
    else:
        retry_at = now + backoff(settings, claimed.attempt)
        if retry_at > created_at + timedelta(seconds=settings.webhook_retry_window_s):
            change = {"status": "failed", "finished_at": now}
        else:
            change = {"next_attempt_at": retry_at}
    with engine.begin() as conn:
        act_as(conn, claimed.account_id)
        mine = sa.and_(wd.c.account_id == claimed.account_id, wd.c.id == claimed.id)
        exists = sa.select(wd.c.id).where(mine)
        if is_postgres(conn):
            exists = exists.with_for_update()
        if conn.execute(exists).first() is None:
            return  # its webhook was deleted meanwhile
        conn.execute(
            sa.insert(wa).values(
                account_id=claimed.account_id,
                delivery_id=claimed.id,
                webhook_id=webhook_id,
                attempt=claimed.attempt,
                at=now,
                status="succeeded" if outcome.ok else "failed",
                response_code=outcome.response_code,
                error=outcome.error,
                duration_ms=outcome.duration_ms,
            )
        )
        conn.execute(sa.update(wd).where(mine, wd.c.status == "pending").values(**change))


def deliver_due(
    engine: Engine, settings: Settings, *, pool: ThreadPoolExecutor | None = None, limit: int = 20
) -> int:
    """Claim a batch of due deliveries and send them: each webhook's in the order of their
    events, different webhooks side by side on `pool`. Returns how many were claimed."""
    lease_s = settings.webhook_timeout_s + 30
    with engine.begin() as conn:
        batch = claim_due(conn, limit=limit, lease_s=lease_s)
    if not batch:
        return 0

    def in_order(claims: list[Claimed]) -> None:
        for claimed in claims:
            try:
                deliver(engine, claimed, settings)
            except Exception:  # the lease brings it back; never stop the loop
                log.exception("webhook delivery crashed", delivery_id=claimed.id)

    by_webhook: dict[int, list[Claimed]] = {}
    for claimed in batch:
        by_webhook.setdefault(claimed.webhook_id, []).append(claimed)
    if pool is None:
        for claims in by_webhook.values():
            in_order(claims)
    else:
        list(pool.map(in_order, by_webhook.values()))
    return len(batch)


def pending(conn: Connection) -> int:
    """Deliveries waiting to be sent (every account: on the engine's duty)."""
    engine_duty(conn)
    return conn.execute(
        sa.select(sa.func.count()).select_from(wd).where(wd.c.status == "pending")
    ).scalar_one()
