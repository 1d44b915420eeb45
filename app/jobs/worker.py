"""`audience worker`: an arq worker that runs jobs by id, a reaper that re-enqueues
jobs Redis lost (flushed, restarted) or whose worker vanished (lease expired), a loop
sending due webhook deliveries (every worker claims its own, SKIP LOCKED), and, hourly,
the upkeep of the month partitions of events (app.events_partitions)."""

import asyncio
import contextlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import sqlalchemy as sa
from arq import cron
from arq.connections import RedisSettings
from arq.constants import in_progress_key_prefix
from arq.worker import Worker
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app import events_partitions, logs
from app import tables as t
from app.config import Settings, get_settings
from app.db import make_engine, normalize_url
from app.jobs import repository
from app.jobs.runner import run_job
from app.jobs.transports import TASK, deserialize, serialize
from app.webhooks.delivery import deliver_due

log = logs.get("audience.worker")
MAX_TRIES = 3  # arq's own retries of one enqueued job id; the reaper re-enqueues past it


async def run_job_task(ctx: dict, job_id: int) -> str:
    """Run a job in a thread, renewing arq's in-progress mark of it one lease at a time.

    arq sets that mark for job_timeout (a week) and skips marked entries, reading its
    queue 100 entries at a time: each SIGKILLed worker would leave an entry that long, and
    a hundred of them hide every newer job. Renewed, a dead worker's mark lapses with its
    database lease; arq then runs the entry again (resuming the job, or finding it taken)
    or, past max_tries, drops it. The reaper re-enqueues from the database either way."""
    settings: Settings = ctx["settings"]
    work = asyncio.ensure_future(asyncio.to_thread(run_job, ctx["engine"], int(job_id), settings))
    key = in_progress_key_prefix + ctx["job_id"]
    ttl_ms = max(1000, int(settings.job_lease_s * 1000))
    while not work.done():
        with contextlib.suppress(RedisError, OSError):  # Redis away: the job goes on
            await ctx["redis"].pexpire(key, ttl_ms)
        await asyncio.wait({work}, timeout=ttl_ms / 3000)
    return work.result()


async def reap(ctx: dict) -> int:
    """Enqueue due jobs that nobody is running: never enqueued, lost by Redis, or
    abandoned by a dead worker."""
    engine = ctx["engine"]
    stale_after = timedelta(seconds=ctx["settings"].job_requeue_s)

    def find() -> list[int]:
        with engine.begin() as conn:
            return repository.reap(conn, stale_after=stale_after)

    ids = await asyncio.to_thread(find)
    for job_id in ids:
        await ctx["redis"].enqueue_job(TASK, job_id)
        log.info("reaper enqueued job", job_id=job_id)
    return len(ids)


async def tidy(ctx: dict) -> int:
    """Delete finished jobs' snapshots and expired change logs, a batch a transaction,
    for up to a few seconds."""
    engine = ctx["engine"]
    days = ctx["settings"].change_log_days

    def purge() -> int:
        deleted, started = 0, time.monotonic()
        while time.monotonic() - started < 5:
            with engine.begin() as conn:
                n = repository.purge_snapshot(conn)
            with engine.begin() as conn:
                n += repository.purge_change_log(conn, t.utcnow() - timedelta(days=days))
            deleted += n
            if n == 0:
                break
        return deleted

    return await asyncio.to_thread(purge)


async def partition_events(ctx: dict) -> None:
    """Month partitions of events ahead, history out of the default partition, months past
    the retention dropped (PostgreSQL; nothing on SQLite)."""
    await asyncio.to_thread(events_partitions.maintain_logged, ctx["engine"], ctx["settings"])


async def send_webhooks(ctx: dict) -> None:
    """Send due webhook deliveries until the worker stops: a batch at a time, side by
    side; when none are due, wait webhook_poll_s."""
    settings: Settings = ctx["settings"]
    pool = ThreadPoolExecutor(4, thread_name_prefix="audience-webhook")
    try:
        while True:
            try:
                claimed = await asyncio.to_thread(deliver_due, ctx["engine"], settings, pool=pool)
            except Exception:  # the database may come back; claims expire by themselves
                log.exception("webhook delivery poll failed")
                claimed = 0
            if not claimed:
                await asyncio.sleep(settings.webhook_poll_s)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


async def startup(ctx: dict) -> None:
    settings: Settings = ctx.get("settings") or get_settings()
    ctx["settings"] = settings
    ctx["engine"] = make_engine(settings.database_url, **engine_options(settings.database_url))
    ctx["webhooks"] = asyncio.ensure_future(send_webhooks(ctx))
    if settings.worker_metrics_port:
        from prometheus_client import start_http_server

        from app.metrics import REGISTRY

        try:
            start_http_server(settings.worker_metrics_port, registry=REGISTRY)
        except OSError as exc:  # the port is taken (another worker): work on, unmeasured
            log.warning(
                "worker metrics not served",
                port=settings.worker_metrics_port,
                error=f"{type(exc).__name__}: {exc}",
            )


def engine_options(url: str) -> dict:
    """On PostgreSQL, name the worker's connections after its process (pg_stat_activity
    then tells which worker holds which backend; behind PgBouncer, which worker's
    transaction a backend runs, or last ran: the name stays on the backend after)."""
    if sa.make_url(normalize_url(url)).get_backend_name() != "postgresql":
        return {}
    return {"connect_args": {"application_name": application_name()}}


def application_name(pid: int | None = None) -> str:
    return f"audience worker {pid or os.getpid()}"


async def shutdown(ctx: dict) -> None:
    sender = ctx.get("webhooks")
    if sender is not None:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
    engine = ctx.get("engine")
    if engine is not None:
        engine.dispose()


class ResilientWorker(Worker):
    """An arq worker that rides out a Redis restart instead of exiting."""

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError) as exc:
            log.warning("redis unavailable; retrying", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(1)


def make_worker(settings: Settings, *, burst: bool = False) -> Worker:
    return ResilientWorker(
        functions=[_named(run_job_task)],
        cron_jobs=[
            cron(reap, second=set(range(0, 60, 2)), run_at_startup=True, unique=True, timeout=60),
            cron(tidy, second=set(range(1, 60, 10)), unique=True, timeout=60),
            cron(partition_events, minute=17, run_at_startup=True, unique=True, timeout=600),
        ],
        on_startup=startup,
        on_shutdown=shutdown,
        redis_settings=_redis_settings(settings),
        job_serializer=serialize,
        job_deserializer=deserialize,
        ctx={"settings": settings},
        max_jobs=4,
        # Liveness is the job lease's business, not arq's timeout.
        job_timeout=timedelta(days=7),
        max_tries=MAX_TRIES,
        keep_result=60,
        poll_delay=0.2,
        burst=burst,
        handle_signals=True,
    )


def _redis_settings(settings: Settings) -> RedisSettings:
    redis = RedisSettings.from_dsn(settings.redis_url or "redis://127.0.0.1:6379")
    # Redis down at start-up: keep trying (a minute) instead of exiting at once.
    redis.conn_retries = 60
    redis.conn_retry_delay = 1
    return redis


def run_forever(settings: Settings) -> None:
    """Run a worker; if Redis stays away longer than its retries, start over."""
    while True:
        try:
            make_worker(settings).run()
            return
        except (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError) as exc:
            log.warning("worker lost redis; restarting", error=f"{type(exc).__name__}: {exc}")
            time.sleep(2)


def _named(fn):
    from arq.worker import func

    return func(fn, name=TASK)
