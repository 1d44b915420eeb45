"""Prometheus metrics (GET /metrics). No label ever holds account data: routes are
templates (`/v1/jobs/{job_id}`), never a raw path.

Each process keeps its own counters: an API process counts its requests, counts and
previews (and, running jobs in-process, its chunks and deliveries); an arq worker counts
the chunks and deliveries it runs and serves them on AUDIENCE_WORKER_METRICS_PORT. The
gauges read from the database at scrape time (jobs by kind and status, queue depth,
deliveries waiting) are the same whichever API process answers."""

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from app import logs

log = logs.get("audience.metrics")
REGISTRY = CollectorRegistry()
CONTENT_TYPE = CONTENT_TYPE_LATEST

HTTP_REQUESTS = Counter(
    "audience_http_requests",
    "HTTP requests answered, by method, route template and status",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "audience_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template",
    ["method", "route"],
    registry=REGISTRY,
)
SELECTION_DURATION = Histogram(
    "audience_selection_duration_seconds",
    "Time the database took for a count or a preview",
    ["operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
CHUNK_DURATION = Histogram(
    "audience_job_chunk_duration_seconds",
    "Time of one chunk of a job (one transaction), by job kind",
    ["kind"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
ROWS_APPLIED = Counter(
    "audience_job_rows_applied",
    "Snapshot members processed by job chunks, by job kind",
    ["kind"],
    registry=REGISTRY,
)
WEBHOOK_DELIVERIES = Counter(
    "audience_webhook_deliveries",
    "Webhook delivery attempts, by outcome (succeeded: a 2xx answer)",
    ["outcome"],
    registry=REGISTRY,
)


class DatabaseGauges(Collector):
    """Read at scrape time, across accounts (on the engine's duty): jobs by kind and
    status, the job queue's depth (due and waiting), deliveries waiting."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def collect(self):
        from app.jobs import repository
        from app.webhooks import delivery

        jobs = GaugeMetricFamily(
            "audience_jobs", "Jobs by kind and status", labels=["kind", "status"]
        )
        depth = GaugeMetricFamily(
            "audience_job_queue_depth", "Jobs due to run and not started (queued, due)"
        )
        waiting = GaugeMetricFamily(
            "audience_webhook_deliveries_pending", "Webhook deliveries waiting to be sent"
        )
        try:
            with self.engine.begin() as conn:
                for kind, status, n in repository.jobs_by_kind_and_status(conn):
                    jobs.add_metric([kind, status], n)
                depth.add_metric([], repository.queue_depth(conn))
                waiting.add_metric([], delivery.pending(conn))
        except Exception:  # a scrape must answer even with the database away
            log.warning("metrics: database gauges unavailable", exc_info=True)
            return
        yield jobs
        yield depth
        yield waiting


def exposition(engine: Engine | None = None) -> bytes:
    """This process's metrics, with the database's gauges read through `engine`."""
    if engine is None:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    registry.register(_Forward(REGISTRY))
    registry.register(DatabaseGauges(engine))
    return generate_latest(registry)


class _Forward(Collector):
    def __init__(self, registry: CollectorRegistry):
        self.registry = registry

    def collect(self):
        yield from self.registry.collect()
