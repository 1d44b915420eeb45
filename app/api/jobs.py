import asyncio
import json
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse

from app.api.deps import (
    AccountDep,
    ReadConn,
    ReadEngineDep,
    ReadQueryDep,
    ReadRetryingRoute,
    SettingsDep,
    WriteConn,
    WriteQueryDep,
)
from app.auth import key_label
from app.errors import RESPONSES, ErrorBody
from app.jobs import service
from app.jobs.schemas import DryRun, Job, JobIn, JobKind, JobPage, JobStatus, RevertDryRun
from app.openapi import streamed
from app.ratelimit import RESPONSES as RATE_LIMITED
from app.ratelimit import limit
from app.types import PathId, query_id, query_text

router = APIRouter(
    prefix="/v1/jobs", tags=["jobs"], responses=RESPONSES, route_class=ReadRetryingRoute
)


TIMEOUT = {503: {"model": ErrorBody, "description": "A query exceeded the statement timeout"}}


@router.post(
    "",
    operation_id="submit_job",
    status_code=202,
    response_model=Job,
    dependencies=[limit("jobs")],
    responses={
        **RATE_LIMITED,
        **TIMEOUT,
        409: {
            "model": ErrorBody,
            "description": "expected_total differs (error.total has the actual total), "
            "or the Idempotency-Key was used with another body",
        },
    },
)
async def submit_job(
    body: JobIn,
    request: Request,
    background: BackgroundTasks,
    account_id: AccountDep,
    read: ReadQueryDep,
    write: WriteQueryDep,
    settings: SettingsDep,
    # ?dry_run=true answers POST /v1/jobs/dry-run: kept for scripts, out of the schema so
    # that the operation has one success (a typed client's answer is a job, no union).
    dry_run: Annotated[bool, Query(include_in_schema=False)] = False,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=255,
            description="the same key and body within 24 h answer the same job",
        ),
    ] = None,
):
    """Run an action list on a selection as a job (202). Every query runs under the
    statement timeout; a client that leaves cancels them. (`?dry_run=true` answers as
    `POST /v1/jobs/dry-run` does.)"""
    if dry_run:
        return await _dry_run(body, account_id, read, settings)

    def work(conn) -> tuple[dict, bool]:
        job_id, created = service.submit(
            conn, account_id, body, idempotency_key, key_label(request)
        )
        return service.get_job(conn, account_id, job_id), created

    job, created = await write(work)
    if created:  # committed by now; enqueued after the response is sent
        background.add_task(request.app.state.runner.enqueue, job["id"], body.run_at)
    return _accepted(job)


def _accepted(job: dict) -> JSONResponse:
    return JSONResponse(
        Job(**job).model_dump(mode="json"),
        status_code=202,
        headers={"Location": f"/v1/jobs/{job['id']}"},
    )


async def _dry_run(body: JobIn, account_id: int, read, settings) -> JSONResponse:
    counted = await read(lambda conn: service.dry_run(conn, account_id, body, settings))
    return JSONResponse(DryRun(**counted).model_dump(mode="json"))


@router.post(
    "/dry-run",
    operation_id="dry_run_job",
    response_model=DryRun,
    dependencies=[limit("jobs")],
    responses={**RATE_LIMITED, **TIMEOUT},
)
async def dry_run_job(
    body: JobIn, account_id: AccountDep, read: ReadQueryDep, settings: SettingsDep
):
    """What each action of the list would change if it ran alone on today's data; runs
    nothing (the same as `POST /v1/jobs?dry_run=true`)."""
    return await _dry_run(body, account_id, read, settings)


@router.get("", operation_id="list_jobs", response_model=JobPage)
def list_jobs(
    account_id: AccountDep,
    conn: ReadConn,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: query_id("a job id: older jobs only") = None,
    status: Annotated[JobStatus | None, Query(description="only jobs of this status")] = None,
    kind: Annotated[JobKind | None, Query(description="only jobs of this kind")] = None,
    action: query_text(64, "only jobs with an action of this type") = None,
) -> dict:
    """The account's jobs, newest first."""
    return service.list_jobs(
        conn, account_id, limit, before, status=status, kind=kind, action=action
    )


@router.get("/{job_id}", operation_id="get_job", response_model=Job)
def get_job(job_id: PathId, account_id: AccountDep, conn: ReadConn) -> dict:
    """The job: status, progress (`processed` of `total`), each action with the contacts it
    changed, and its story (who sent it, what it reverts or was reverted by)."""
    return service.get_job(conn, account_id, job_id)


@router.post("/{job_id}/cancel", operation_id="cancel_job", response_model=Job)
def cancel_job(job_id: PathId, account_id: AccountDep, conn: WriteConn) -> dict:
    """Stop a queued or running job between chunks; what was applied stays applied."""
    return service.cancel(conn, account_id, job_id)


REVERT_REFUSED = {
    409: {
        "model": ErrorBody,
        "description": "The job has not finished, or already has a revert (named)",
    },
    410: {"model": ErrorBody, "description": "The job's change log has been purged"},
}


@router.post(
    "/{job_id}/revert",
    operation_id="revert_job",
    status_code=202,
    response_model=Job,
    dependencies=[limit("jobs")],
    responses={
        **RATE_LIMITED,
        **TIMEOUT,
        **REVERT_REFUSED,
    },
)
async def revert_job(
    job_id: PathId,
    request: Request,
    background: BackgroundTasks,
    account_id: AccountDep,
    read: ReadQueryDep,
    write: WriteQueryDep,
    settings: SettingsDep,
    dry_run: Annotated[bool, Query(include_in_schema=False)] = False,  # = /revert/dry-run
):
    """Undo every change the job made, and nothing else, as a new job (`kind` revert):
    a value changed since by anything else is left alone and counted in `conflicts`.
    (`?dry_run=true` answers as `POST /v1/jobs/{id}/revert/dry-run` does.)"""
    if dry_run:
        return await _revert_dry_run(job_id, account_id, read, settings)

    def work(conn) -> dict:
        revert_id = service.revert(conn, account_id, job_id, key_label(request))
        return service.get_job(conn, account_id, revert_id)

    job = await write(work)
    background.add_task(request.app.state.runner.enqueue, job["id"], None)
    return _accepted(job)


async def _revert_dry_run(job_id: int, account_id: int, read, settings) -> JSONResponse:
    counted = await read(lambda conn: service.revert_dry_run(conn, account_id, job_id, settings))
    return JSONResponse(RevertDryRun(**counted).model_dump(mode="json"))


@router.post(
    "/{job_id}/revert/dry-run",
    operation_id="dry_run_revert",
    response_model=RevertDryRun,
    responses={**TIMEOUT, **REVERT_REFUSED},
)
async def dry_run_revert(
    job_id: PathId, account_id: AccountDep, read: ReadQueryDep, settings: SettingsDep
):
    """What a revert of the job would give back and leave alone today; changes nothing."""
    return await _revert_dry_run(job_id, account_id, read, settings)


@router.get(
    "/{job_id}/output",
    operation_id="get_job_output",
    response_class=StreamingResponse,
    responses=streamed("contact_id,email,value of generated coupons or links", "text/csv"),
)
def job_output(
    job_id: PathId,
    account_id: AccountDep,
    conn: ReadConn,
    engine: ReadEngineDep,
    settings: SettingsDep,
):
    """CSV `contact_id,email,value`: the codes or links a job generated, or the contacts a
    revert left alone with the value it found; spreadsheet formulas neutralised."""
    service.get_job(conn, account_id, job_id)  # 404 for another account's job
    # read in batches, each on its own connection, while the response streams
    return StreamingResponse(
        service.output_rows(engine, account_id, job_id, settings.statement_timeout_s),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="job-{job_id}-output.csv"'},
    )


@router.get(
    "/{job_id}/events",
    operation_id="job_events",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "The job (as GET /v1/jobs/{id}) on every change of status or "
            "progress, at most four a second; the stream ends when the job ends",
        }
    },
)
async def job_events(job_id: PathId, account_id: AccountDep, engine: ReadEngineDep, conn: ReadConn):
    """Live progress as server-sent events (`event: job`, `data:` the job). Read it with
    fetch() and a stream reader: EventSource cannot send the Authorization header."""
    first = service.get_job(conn, account_id, job_id)  # 404 before the stream starts
    return StreamingResponse(
        _job_events(engine, account_id, job_id, first),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


EVENT_EVERY_S = 0.25
FINISHED_STATUSES = ("succeeded", "failed", "cancelled")


async def _job_events(engine, account_id: int, job_id: int, job: dict):
    def read() -> dict:
        with engine.connect() as c:
            return service.get_job(c, account_id, job_id)

    last = None
    while True:
        shown = Job(**job).model_dump(mode="json")
        seen = (shown["status"], shown["processed"], shown["total"], shown["cancel_requested"])
        if seen != last:
            yield f"event: job\ndata: {json.dumps(shown)}\n\n"
            last = seen
        if shown["status"] in FINISHED_STATUSES:
            return
        await asyncio.sleep(EVENT_EVERY_S)
        job = await run_in_threadpool(read)
