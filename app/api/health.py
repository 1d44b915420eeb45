from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

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
