from fastapi import APIRouter, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, StreamingResponse

from app import metrics
from app.api.deps import (
    AccountDep,
    ReadConn,
    ReadRetryingRoute,
    ReplicaEngineDep,
    ReplicaQueryDep,
    SettingsDep,
    WriteConn,
)
from app.contacts.schemas import Contact, pick
from app.contacts.service import load_contacts
from app.errors import IN_USE, NAME_TAKEN, RENAME_CONFLICTS, RESPONSES, ErrorBody
from app.openapi import streamed
from app.ratelimit import RESPONSES as RATE_LIMITED
from app.ratelimit import limit
from app.selection import export as export_module
from app.selection import segments as seg
from app.selection import service
from app.selection.export import ExportIn
from app.selection.schemas import CountResult, PreviewIn, PreviewResult, Segment, SegmentIn
from app.selection.spec import Selection
from app.types import PathId

router = APIRouter(prefix="/v1", responses=RESPONSES, route_class=ReadRetryingRoute)

TIMEOUT = {
    503: {"model": ErrorBody, "description": "The query exceeded the statement timeout"},
    **RATE_LIMITED,
}


@router.post(
    "/selections/count",
    tags=["selections"],
    operation_id="count_selection",
    summary="Count a selection",
    dependencies=[limit("selections")],
    response_model=CountResult,
    responses=TIMEOUT,
)
async def count(body: Selection, account_id: AccountDep, query: ReplicaQueryDep) -> dict:
    """The exact number of contacts a selection spec selects (one query). A client that
    disconnects cancels its query on the server."""

    def work(conn) -> int:
        with metrics.SELECTION_DURATION.labels("count").time():
            return service.count(conn, account_id, body)

    return {"total": await query(work)}


@router.post(
    "/selections/preview",
    tags=["selections"],
    operation_id="preview_selection",
    summary="Preview a selection",
    dependencies=[limit("selections")],
    response_model=PreviewResult,
    responses=TIMEOUT,
)
async def preview(body: PreviewIn, account_id: AccountDep, query: ReplicaQueryDep) -> dict:
    """The total and the first contacts (lowest ids first)."""

    def work(conn) -> dict:
        with metrics.SELECTION_DURATION.labels("preview").time():
            total, ids = service.preview(
                conn, account_id, body.selection, body.limit + 1, "selection", body.after
            )
        more = len(ids) > body.limit
        ids = ids[: body.limit]
        contacts = load_contacts(conn, account_id, ids)
        if body.fields is None:
            contacts = [Contact(**x).model_dump(mode="json") for x in contacts]
        else:
            contacts = [jsonable_encoder(pick(x, body.fields)) for x in contacts]
        next_after = ids[-1] if more and ids else None
        return {"total": total, "contacts": contacts, "next_after": next_after}

    return JSONResponse(await query(work))


@router.post(
    "/segments",
    tags=["segments"],
    operation_id="create_segment",
    responses=NAME_TAKEN,
    response_model=Segment,
    status_code=201,
)
def create_segment(body: SegmentIn, account_id: AccountDep, conn: WriteConn) -> dict:
    """Saves a selection under a name; it is checked as a count would check it (unknown names,
    cycles through other segments: 422)."""
    return seg.create_segment(conn, account_id, body)


@router.get(
    "/segments", tags=["segments"], operation_id="list_segments", response_model=list[Segment]
)
def list_segments(account_id: AccountDep, conn: ReadConn) -> list[dict]:
    """The account's saved segments, oldest first."""
    return seg.list_segments(conn, account_id)


@router.get(
    "/segments/{segment_id}", tags=["segments"], operation_id="get_segment", response_model=Segment
)
def get_segment(segment_id: PathId, account_id: AccountDep, conn: ReadConn) -> dict:
    """One saved segment."""
    return seg.get_segment(conn, account_id, segment_id)


@router.put(
    "/segments/{segment_id}",
    tags=["segments"],
    operation_id="update_segment",
    responses=RENAME_CONFLICTS,
    response_model=Segment,
)
def update_segment(
    segment_id: PathId, body: SegmentIn, account_id: AccountDep, conn: WriteConn
) -> dict:
    """Replaces the segment's name and selection. A new name is a 409 `in_use`, naming
    each, while a saved segment or rule names the old one (a change of case only is free)."""
    return seg.update_segment(conn, account_id, segment_id, body)


@router.delete(
    "/segments/{segment_id}",
    tags=["segments"],
    operation_id="delete_segment",
    responses=IN_USE,
    status_code=204,
)
def delete_segment(segment_id: PathId, account_id: AccountDep, conn: WriteConn) -> Response:
    """Deletes the segment; 409 `in_use`, naming each, while a saved segment or rule names
    it."""
    seg.delete_segment(conn, account_id, segment_id)
    return Response(status_code=204)


@router.post(
    "/selections/export",
    tags=["selections"],
    operation_id="export_selection",
    summary="Export a selection",
    dependencies=[limit("selections")],
    response_class=StreamingResponse,
    responses={
        **TIMEOUT,
        **streamed(
            "Every selected contact, id order, one consistent snapshot",
            "text/csv",
            "application/x-ndjson",
        ),
    },
)
async def export(
    body: ExportIn,
    account_id: AccountDep,
    query: ReplicaQueryDep,
    engine: ReplicaEngineDep,
    settings: SettingsDep,
):
    """Stream every contact a selection selects, as CSV (a header row; several values
    joined with `;`; spreadsheet formulas neutralised) or NDJSON, gzipped when the client
    accepts it. Memory does not grow with the selection."""
    await query(lambda conn: export_module.check(conn, account_id, body))
    csv = body.format == "csv"
    return StreamingResponse(
        export_module.stream(engine, account_id, body, settings.statement_timeout_s),
        media_type="text/csv" if csv else "application/x-ndjson",
        headers={
            "Content-Disposition": 'attachment; filename="contacts.'
            + ("csv" if csv else "ndjson")
            + '"'
        },
    )
