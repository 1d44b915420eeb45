from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Header, Query, Request
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
from app.errors import RESPONSES, ErrorBody
from app.jobs import service
from app.jobs.schemas import DryRun, Job, JobIn, JobPage
from app.ratelimit import RESPONSES as RATE_LIMITED
from app.ratelimit import limit
from app.types import PathId, query_id

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
        200: {"model": DryRun, "description": "dry_run=true: what each action would change"},
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
    dry_run: Annotated[bool, Query(description="count what each action would change")] = False,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=255,
            description="the same key and body within 24 h answer the same job",
        ),
    ] = None,
):
    """Run an action list on a selection as a job (202), or count its effect (dry_run).
    Every query runs under the statement timeout; a client that leaves cancels them."""
    if dry_run:
        counted = await read(lambda conn: service.dry_run(conn, account_id, body, settings))
        return JSONResponse(DryRun(**counted).model_dump(mode="json"))

    def work(conn) -> tuple[dict, bool]:
        job_id, created = service.submit(conn, account_id, body, idempotency_key)
        return service.get_job(conn, account_id, job_id), created

    job, created = await write(work)
    if created:  # committed by now; enqueued after the response is sent
        background.add_task(request.app.state.runner.enqueue, job["id"], body.run_at)
    return JSONResponse(Job(**job).model_dump(mode="json"), status_code=202)


@router.get("", operation_id="list_jobs", response_model=JobPage)
def list_jobs(
    account_id: AccountDep,
    conn: ReadConn,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: query_id("a job id: older jobs only") = None,
) -> dict:
    """The account's jobs, newest first."""
    return service.list_jobs(conn, account_id, limit, before)


@router.get("/{job_id}", operation_id="get_job", response_model=Job)
def get_job(job_id: PathId, account_id: AccountDep, conn: ReadConn) -> dict:
    return service.get_job(conn, account_id, job_id)


@router.post("/{job_id}/cancel", operation_id="cancel_job", response_model=Job)
def cancel_job(job_id: PathId, account_id: AccountDep, conn: WriteConn) -> dict:
    """Stop a queued or running job between chunks; what was applied stays applied."""
    return service.cancel(conn, account_id, job_id)


@router.get(
    "/{job_id}/output",
    operation_id="get_job_output",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/csv": {}},
            "description": "contact_id,email,value of generated coupons or links",
        }
    },
)
def job_output(
    job_id: PathId,
    account_id: AccountDep,
    conn: ReadConn,
    engine: ReadEngineDep,
    settings: SettingsDep,
):
    service.get_job(conn, account_id, job_id)  # 404 for another account's job
    # read in batches, each on its own connection, while the response streams
    return StreamingResponse(
        service.output_rows(engine, account_id, job_id, settings.statement_timeout_s),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="job-{job_id}-output.csv"'},
    )
