import json
from functools import lru_cache
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting comes from the environment, prefix AUDIENCE_."""

    model_config = SettingsConfigDict(env_prefix="AUDIENCE_", extra="ignore")

    database_url: str = "sqlite:///audience.db"
    redis_url: str | None = None
    # A PostgreSQL hot standby for reads (counts, previews, exports, pickers, listings),
    # used while it answers and is at most max_replica_lag_s behind; else the primary.
    read_database_url: str | None = None
    max_replica_lag_s: float = 5.0
    # Origins a browser may call from: a JSON list, or comma-separated (`*`: any).
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["*"])
    # Seconds a count or preview may run on PostgreSQL before it is cancelled (503).
    statement_timeout_s: float = 30.0
    # Contacts a job applies per transaction.
    job_chunk_size: int = 10_000
    # A running job whose worker has not renewed its lease for this long is re-queued.
    job_lease_s: float = 60.0
    # How often the reaper / in-process runner looks for due and abandoned jobs.
    job_poll_s: float = 2.0
    # A queued job enqueued this long ago and still not started was probably lost by
    # Redis (flushed, restarted): the reaper enqueues it again (duplicates are harmless).
    job_requeue_s: float = 30.0
    # Secret for personal link tokens (HMAC): at least 32 random bytes. `audience serve`
    # and `audience worker` refuse to start without one, except in the embedded demo.
    link_secret: str | None = None
    # Larger request bodies get 413. 10,000 contacts as the demo data has them take
    # 4.4 MiB; with every field, five tags and five details, 8 MiB.
    max_body_bytes: int = 10 * 1024 * 1024
    # POST /v1/imports is bounded by this instead (413 as soon as the upload passes it).
    max_import_bytes: int = 1024 * 1024 * 1024
    # Per account, on count/preview and on job submission (each its own bucket): this
    # many requests at once, then this many a second; beyond, 429 with Retry-After.
    # 0 turns the limit off.
    rate_limit_per_s: float = 100.0
    rate_limit_burst: int = 2_000
    # Days a finished job's change log is kept (revert and history need it).
    change_log_days: int = 30
    # PostgreSQL: months of events kept (the workers drop the month partitions that ended
    # this many months before this month began); unset: every event is kept.
    event_retention_months: int | None = Field(None, ge=1)
    # For the benchmark only (bench.jobs measures a job with and without its log): off,
    # jobs cannot be reverted.
    change_log: bool = True
    # Webhooks: targets on loopback, private, link-local or reserved addresses are refused
    # (at creation and again at each delivery) unless this is true.
    webhook_allow_private: bool = False
    # A delivery not answered within this many seconds is a failed attempt.
    webhook_timeout_s: float = 10.0
    # A failed delivery is tried again after this many seconds, doubling each time up to
    # webhook_retry_max_s, for webhook_retry_window_s after the event; then given up.
    webhook_retry_base_s: float = 10.0
    webhook_retry_max_s: float = 3600.0
    webhook_retry_window_s: float = 86400.0
    # How often a delivery loop (in-process runner, each arq worker) looks for due ones.
    webhook_poll_s: float = 1.0
    # An arq worker serves its own Prometheus metrics (chunks, rows applied, webhook
    # deliveries) on this port; 0: it does not.
    worker_metrics_port: int = 0
    demo: bool = True  # embedded default: ensure a demo account with demo data
    demo_contacts: int = 2_000
    log_level: str = "INFO"
    log_json: bool = True

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, value):
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [origin.strip() for origin in text.split(",") if origin.strip()]
        return value


@lru_cache
def get_settings() -> Settings:
    return Settings()
