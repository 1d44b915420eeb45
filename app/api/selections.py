from fastapi import APIRouter, Request, Response
from sqlalchemy.exc import OperationalError

from app.api.cancellable import QueryHandle, run_cancellable
from app.api.deps import AccountDep, EngineDep, ReadRetryingRoute, SettingsDep
from app.contacts.service import load_contacts
from app.db import retry_read, set_statement_timeout
from app.errors import NAME_TAKEN, RESPONSES, ErrorBody, QueryTimeout
from app.ratelimit import RESPONSES as RATE_LIMITED
from app.ratelimit import limit
from app.selection import segments as seg
from app.selection import service
from app.selection.schemas import CountResult, PreviewIn, PreviewResult, Segment, SegmentIn
from app.selection.spec import Selection
from app.types import PathId

router = APIRouter(prefix="/v1", responses=RESPONSES, route_class=ReadRetryingRoute)


def _timed_out(exc: OperationalError) -> bool:
    code = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return code == "57014"  # query_canceled (statement_timeout)


TIMEOUT = {
    503: {"model": ErrorBody, "description": "The query exceeded the statement timeout"},
    **RATE_LIMITED,
}


@router.post(
    "/selections/count",
    tags=["selections"],
    operation_id="count_selection",
    dependencies=[limit("selections")],
    response_model=CountResult,
    responses=TIMEOUT,
)
async def count(
    body: Selection,
    request: Request,
    account_id: AccountDep,
    engine: EngineDep,
    settings: SettingsDep,
) -> dict:
    """The exact number of contacts a selection spec selects (one query). A client that
    disconnects cancels its query on the server."""

    def work(handle: QueryHandle) -> dict:
        with engine.begin() as conn:
            handle.conn = conn
            set_statement_timeout(conn, settings.statement_timeout_s)
            return {"total": service.count(conn, account_id, body)}

    return await _run(request, work)


@router.post(
    "/selections/preview",
    tags=["selections"],
    operation_id="preview_selection",
    dependencies=[limit("selections")],
    response_model=PreviewResult,
    responses=TIMEOUT,
)
async def preview(
    body: PreviewIn,
    request: Request,
    account_id: AccountDep,
    engine: EngineDep,
    settings: SettingsDep,
) -> dict:
    """The total and the first contacts (lowest ids first)."""

    def work(handle: QueryHandle) -> dict:
        with engine.begin() as conn:
            handle.conn = conn
            set_statement_timeout(conn, settings.statement_timeout_s)
            total, ids = service.preview(conn, account_id, body.selection, body.limit, "selection")
            return {"total": total, "contacts": load_contacts(conn, account_id, ids)}

    return await _run(request, work)


async def _run(request: Request, work) -> dict:
    """Run a read-only query; one whose connection the database dropped (a restart, a
    killed backend) runs again on a fresh one (retry_read)."""
    try:
        return await retry_read(lambda: run_cancellable(request, work))
    except OperationalError as exc:
        if _timed_out(exc):
            raise QueryTimeout("the query took longer than the statement timeout") from None
        raise


@router.post(
    "/segments",
    tags=["segments"],
    operation_id="create_segment",
    responses=NAME_TAKEN,
    response_model=Segment,
    status_code=201,
)
def create_segment(body: SegmentIn, account_id: AccountDep, engine: EngineDep) -> dict:
    with engine.begin() as conn:
        return seg.create_segment(conn, account_id, body)


@router.get(
    "/segments", tags=["segments"], operation_id="list_segments", response_model=list[Segment]
)
def list_segments(account_id: AccountDep, engine: EngineDep) -> list[dict]:
    with engine.connect() as conn:
        return seg.list_segments(conn, account_id)


@router.get(
    "/segments/{segment_id}", tags=["segments"], operation_id="get_segment", response_model=Segment
)
def get_segment(segment_id: PathId, account_id: AccountDep, engine: EngineDep) -> dict:
    with engine.connect() as conn:
        return seg.get_segment(conn, account_id, segment_id)


@router.put(
    "/segments/{segment_id}",
    tags=["segments"],
    operation_id="update_segment",
    responses=NAME_TAKEN,
    response_model=Segment,
)
def update_segment(
    segment_id: PathId, body: SegmentIn, account_id: AccountDep, engine: EngineDep
) -> dict:
    with engine.begin() as conn:
        return seg.update_segment(conn, account_id, segment_id, body)


@router.delete(
    "/segments/{segment_id}", tags=["segments"], operation_id="delete_segment", status_code=204
)
def delete_segment(segment_id: PathId, account_id: AccountDep, engine: EngineDep) -> Response:
    with engine.begin() as conn:
        seg.delete_segment(conn, account_id, segment_id)
    return Response(status_code=204)
