"""CSV imports: POST /v1/imports (a job of kind `import`) and its rejected rows."""

import json
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, File, Form, Request, UploadFile
from fastapi.responses import StreamingResponse

from app.api.deps import (
    AccountDep,
    ReadConn,
    ReadEngineDep,
    ReadRetryingRoute,
    SettingsDep,
    WriteQueryDep,
)
from app.api.jobs import _accepted
from app.auth import key_label
from app.errors import RESPONSES, ErrorBody
from app.imports import service
from app.imports.options import ImportOptions
from app.jobs import service as jobs
from app.jobs.schemas import Job
from app.openapi import streamed
from app.ratelimit import RESPONSES as RATE_LIMITED
from app.ratelimit import limit
from app.types import PathId

router = APIRouter(tags=["imports"], responses=RESPONSES, route_class=ReadRetryingRoute)

OPTIONS_EXAMPLE = json.dumps(
    {
        "columns": {"E-mail": "email", "Plan": "detail:plan", "Teams": "groups"},
        "tags": ["fair-2026"],
        "update_existing": True,
        "opt_in_may_turn_on": False,
        "name": "contacts from the fair",
    }
)
OPTIONS_HELP = (
    "JSON: `columns` (CSV header → a contact field, `tags`, `groups`, `owners`, "
    "`detail:NAME`, `funnel:NAME` or `skip`; headers not named are mapped by name), `tags` "
    "(added to every row's contact), `update_existing` (default true), `opt_in_may_turn_on` "
    "(default false: opt-outs are sticky), `name`. Schema: "
    + json.dumps(ImportOptions.model_json_schema(), separators=(",", ":"))
)


@router.post(
    "/v1/imports",
    operation_id="submit_import",
    status_code=202,
    response_model=Job,
    dependencies=[limit("jobs")],
    responses={
        **RATE_LIMITED,
        400: {"model": ErrorBody, "description": "The body is not multipart/form-data that parses"},
        413: {"model": ErrorBody, "description": "The file is over AUDIENCE_MAX_IMPORT_BYTES"},
    },
)
async def submit_import(
    request: Request,
    background: BackgroundTasks,
    account_id: AccountDep,
    write: WriteQueryDep,
    settings: SettingsDep,
    file: Annotated[
        UploadFile,
        File(description="The CSV: UTF-8 (BOM or not), `,` `;` or tab, a header row"),
    ],
    options: Annotated[
        str | None, Form(description=OPTIONS_HELP, examples=[OPTIONS_EXAMPLE])
    ] = None,
):
    """Import a CSV as a job (`kind` import): the file is streamed into the database now,
    its rows upserted by e-mail chunk by chunk. Bad rows are rejected one by one (see
    GET /v1/jobs/{id}/errors), the others imported; revert undoes it."""

    def work(conn) -> dict:
        job_id = service.submit(conn, account_id, file.file, options, settings, key_label(request))
        return jobs.get_job(conn, account_id, job_id)

    job = await write(work)
    background.add_task(request.app.state.runner.enqueue, job["id"], None)
    return _accepted(job)


@router.get(
    "/v1/jobs/{job_id}/errors",
    operation_id="get_import_errors",
    response_class=StreamingResponse,
    responses=streamed(
        "line,column,error,row: a line a problem of a rejected row; `line` as a "
        "spreadsheet numbers rows (the header is 1)",
        "text/csv",
    ),
)
def import_errors(
    job_id: PathId,
    account_id: AccountDep,
    conn: ReadConn,
    engine: ReadEngineDep,
    settings: SettingsDep,
):
    """An import's rejected rows, every problem of each, as CSV."""
    jobs.get_job(conn, account_id, job_id)  # 404 for another account's job
    return StreamingResponse(
        service.error_rows(engine, account_id, job_id, settings.statement_timeout_s),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="job-{job_id}-errors.csv"'},
    )
