from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from app import metrics
from app.jobs import repository

router = APIRouter(tags=["health"])


@router.get("/healthz", operation_id="healthz")
def healthz() -> dict:
    """Liveness: answers 200 without a key."""
    return {"status": "ok"}


@router.get("/readyz", operation_id="readyz")
def readyz(request: Request):
    """Readiness: the database (and Redis, when configured) answer."""
    # jobs.stuck: running jobs whose worker stopped renewing their lease. Worth an alert
    # (`audience doctor` lists them), never a reason to take this instance out of
    # service: it answers requests fine, and no other instance would fix them.
    checks: dict[str, str] = {}
    jobs: dict[str, int] = {}
    try:
        with request.app.state.read_engine.connect() as conn:
            repository.ping(conn)
            checks["database"] = "ok"
            jobs["stuck"] = repository.stuck_jobs(conn)
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        checks.setdefault("database", f"error: {type(exc).__name__}")
    runner = request.app.state.runner
    checks["queue"] = runner.health()
    ok = all(v == "ok" for v in checks.values())
    # A standby that is down or behind is no reason to stop serving: reads fall back.
    reads = request.app.state.reads
    reads.refresh()
    return JSONResponse(
        {
            "status": "ok" if ok else "unavailable",
            "checks": checks,
            "jobs": jobs,
            "replica": reads.state(),
        },
        status_code=200 if ok else 503,
    )


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(request: Request) -> Response:
    """Prometheus text, without a key: this process's counters and the database's gauges
    (app.metrics). No account data in any label."""
    body = await run_in_threadpool(metrics.exposition, request.app.state.read_engine)
    return Response(body, media_type=metrics.CONTENT_TYPE)
