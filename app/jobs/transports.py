"""Queue transports. The database owns job state; a transport only carries job ids.

- InProcessRunner (AUDIENCE_REDIS_URL unset): a thread in the API process polls the
  database for due and abandoned jobs and runs them on a small thread pool (and keeps the
  month partitions of events on PostgreSQL, at start and hourly); another sends due
  webhook deliveries (app.webhooks.delivery).
- ArqRunner (AUDIENCE_REDIS_URL set): the API enqueues job ids to arq; `audience worker`
  processes run them, and their reaper re-enqueues what Redis lost.
"""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine

from app import events_partitions, logs
from app import tables as t
from app.config import Settings
from app.jobs import repository
from app.jobs.runner import run_job
from app.webhooks.delivery import deliver_due

log = logs.get("audience.runner")
TASK = "run_job"


def serialize(data) -> bytes:
    return json.dumps(data, default=repr).encode()


def deserialize(data: bytes):
    return json.loads(data)


class InProcessRunner:
    def __init__(self, settings: Settings, engine: Engine, workers: int = 2):
        self.settings = settings
        self.engine = engine
        self.workers = workers
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._inflight: set[int] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._sender: threading.Thread | None = None
        self._send_pool: ThreadPoolExecutor | None = None

    def health(self) -> str:
        return "ok"

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="audience-job")
        self._thread = threading.Thread(target=self._loop, name="audience-runner", daemon=True)
        self._thread.start()
        self._send_pool = ThreadPoolExecutor(4, thread_name_prefix="audience-webhook")
        self._sender = threading.Thread(
            target=self._deliver_loop, name="audience-webhooks", daemon=True
        )
        self._sender.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._sender is not None:
            self._sender.join(timeout=self.settings.webhook_timeout_s + 5)
            self._sender = None
        if self._send_pool is not None:
            self._send_pool.shutdown(wait=True, cancel_futures=True)
            self._send_pool = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    async def enqueue(self, job_id: int, run_at: datetime | None = None) -> None:
        self._wake.set()

    def _loop(self) -> None:
        partitions_due = time.monotonic()  # at start, then hourly (no arq cron here)
        while not self._stop.is_set():
            if time.monotonic() >= partitions_due:
                partitions_due = time.monotonic() + events_partitions.EVERY_S
                events_partitions.maintain_logged(self.engine, self.settings)
            try:
                with self.engine.connect() as conn:
                    ids = repository.due_jobs(conn)
                for job_id in ids:
                    with self._lock:
                        if job_id in self._inflight or len(self._inflight) >= self.workers:
                            continue
                        self._inflight.add(job_id)
                    assert self._pool is not None
                    self._pool.submit(self._run, job_id)
                with self.engine.begin() as conn:
                    repository.purge_snapshot(conn)  # a batch a poll: finished jobs' snapshots
                with self.engine.begin() as conn:  # … and expired change logs
                    expired = t.utcnow() - timedelta(days=self.settings.change_log_days)
                    repository.purge_change_log(conn, expired)
            except Exception:  # keep polling whatever happens; the database may come back
                log.exception("in-process runner poll failed")
            self._wake.wait(self.settings.job_poll_s)
            self._wake.clear()

    def _deliver_loop(self) -> None:
        while not self._stop.is_set():
            claimed = 0
            try:
                claimed = deliver_due(self.engine, self.settings, pool=self._send_pool)
            except Exception:  # the database may come back; claims expire by themselves
                log.exception("webhook delivery poll failed")
            if not claimed:
                self._stop.wait(self.settings.webhook_poll_s)

    def _run(self, job_id: int) -> None:
        try:
            run_job(self.engine, job_id, self.settings)
        finally:
            with self._lock:
                self._inflight.discard(job_id)
            self._wake.set()


class ArqRunner:
    def __init__(self, settings: Settings, engine: Engine):
        self.settings = settings
        self.engine = engine
        self._pool = None

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def health(self) -> str:
        import redis

        try:
            client = redis.Redis.from_url(self.settings.redis_url, socket_timeout=2)
            client.ping()
            client.close()
            return "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
            return f"error: {type(exc).__name__}"

    async def _arq(self):
        from arq import create_pool
        from arq.connections import RedisSettings

        if self._pool is None:
            self._pool = await create_pool(
                RedisSettings.from_dsn(self.settings.redis_url),
                job_serializer=serialize,
                job_deserializer=deserialize,
                retry=0,
            )
        return self._pool

    async def enqueue(self, job_id: int, run_at: datetime | None = None) -> None:
        """Enqueue a job id; on failure the reaper enqueues it later, so nothing is lost."""
        try:
            pool = await self._arq()
            await pool.enqueue_job(TASK, job_id, _defer_until=run_at)
        except Exception as exc:  # noqa: BLE001 - Redis down: the reaper will pick it up
            self._pool = None
            log.warning(
                "enqueue failed; the reaper will retry",
                job_id=job_id,
                error=f"{type(exc).__name__}: {exc}",
            )
            return
        with self.engine.begin() as conn:
            repository.mark_enqueued(conn, [job_id])


def make_runner(settings: Settings, engine: Engine):
    if settings.redis_url:
        return ArqRunner(settings, engine)
    return InProcessRunner(settings, engine)
