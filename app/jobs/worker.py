"""`audience worker`: an arq worker that runs jobs by id, and a reaper that re-enqueues
jobs Redis lost (flushed, restarted) or whose worker vanished (lease expired)."""

import asyncio
from datetime import timedelta

import sqlalchemy as sa
from arq import cron
from arq.connections import RedisSettings
from arq.worker import Worker
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app import logs
from app import tables as t
from app.config import Settings, get_settings
from app.db import make_engine
from app.jobs.engine import run_job
from app.jobs.runner import TASK, deserialize, serialize
from app.jobs.service import due_jobs

log = logs.get("audience.worker")


async def run_job_task(ctx: dict, job_id: int) -> str:
    return await asyncio.to_thread(run_job, ctx["engine"], int(job_id), ctx["settings"])


async def reap(ctx: dict) -> int:
    """Enqueue due jobs that nobody is running: never enqueued, lost by Redis, or
    abandoned by a dead worker."""
    engine = ctx["engine"]
    stale_after = timedelta(seconds=ctx["settings"].job_requeue_s)

    def find() -> list[int]:
        now = t.utcnow()
        with engine.begin() as conn:
            ids = due_jobs(conn, limit=100)
            if not ids:
                return []
            stale = list(
                conn.execute(
                    sa.select(t.jobs.c.id).where(
                        t.jobs.c.id.in_(ids),
                        sa.or_(
                            t.jobs.c.enqueued_at.is_(None),
                            t.jobs.c.enqueued_at < now - stale_after,
                            t.jobs.c.status == "running",
                        ),
                    )
                ).scalars()
            )
            if stale:
                conn.execute(
                    sa.update(t.jobs).where(t.jobs.c.id.in_(stale)).values(enqueued_at=now)
                )
            return stale

    ids = await asyncio.to_thread(find)
    for job_id in ids:
        await ctx["redis"].enqueue_job(TASK, job_id)
        log.info("reaper enqueued job", job_id=job_id)
    return len(ids)


async def startup(ctx: dict) -> None:
    settings: Settings = ctx.get("settings") or get_settings()
    ctx["settings"] = settings
    ctx["engine"] = make_engine(settings.database_url)


async def shutdown(ctx: dict) -> None:
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
            cron(reap, second=set(range(0, 60, 2)), run_at_startup=True, unique=True, timeout=60)
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
        max_tries=3,
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
    import time

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
