"""Listing and pickers for front ends: contacts, tags, owners, event types, detail names."""

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from app.api.deps import AccountDep, ReadRetryingRoute, ReplicaConn, WriteConn
from app.errors import RESPONSES
from app.pickers import service
from app.pickers.schemas import (
    ContactPage,
    DetailPage,
    EventTypePage,
    OwnerPage,
    Tag,
    TagIn,
    TagPage,
)
from app.types import query_id, query_text

router = APIRouter(prefix="/v1", responses=RESPONSES, route_class=ReadRetryingRoute)

Limit = Annotated[int, Query(ge=1, le=1000, description="at most this many")]
Prefix = query_text(255, "names starting so")
After = query_text(255, "next_after of the last page")


@router.get(
    "/contacts", tags=["contacts"], operation_id="list_contacts", response_model=ContactPage
)
def list_contacts(
    account_id: AccountDep,
    conn: ReplicaConn,
    after: query_id("next_after of the previous page") = None,
    limit: Limit = 100,
    email: query_text(254, "this address (any case)") = None,
    q: query_text(254, "a prefix of the e-mail, first or last name (any case)") = None,
) -> dict:
    """The account's contacts (soft-deleted ones too), lowest id first, a page at a time."""
    return service.list_contacts(conn, account_id, after=after, limit=limit, email=email, q=q)


@router.post(
    "/tags",
    tags=["tags"],
    operation_id="create_tag",
    status_code=201,
    response_model=Tag,
    responses={200: {"model": Tag, "description": "It existed already (names ignore case)"}},
)
def create_tag(body: TagIn, account_id: AccountDep, conn: WriteConn):
    """A tag before any contact has it (so a segment or rule may name it)."""
    tag, created = service.create_tag(conn, account_id, body.name)
    return JSONResponse(Tag(**tag).model_dump(mode="json"), status_code=201 if created else 200)


@router.get("/tags", tags=["tags"], operation_id="list_tags", response_model=TagPage)
def list_tags(
    account_id: AccountDep,
    conn: ReplicaConn,
    prefix: Prefix = None,
    after: After = None,
    limit: Limit = 100,
) -> dict:
    """Tags by name, each with the contacts that have it."""
    return service.tags(conn, account_id, prefix, after, limit)


@router.get("/owners", tags=["contacts"], operation_id="list_owners", response_model=OwnerPage)
def list_owners(
    account_id: AccountDep,
    conn: ReplicaConn,
    prefix: Prefix = None,
    after: After = None,
    limit: Limit = 100,
) -> dict:
    """Owners (user e-mails) by address, each with the contacts they own."""
    return service.owners(conn, account_id, prefix, after, limit)


@router.get(
    "/event-types", tags=["events"], operation_id="list_event_types", response_model=EventTypePage
)
def list_event_types(
    account_id: AccountDep,
    conn: ReplicaConn,
    prefix: Prefix = None,
    after: After = None,
    limit: Limit = 100,
) -> dict:
    """Event types by name, with how many events and the latest one's time."""
    return service.event_types(conn, account_id, prefix, after, limit)


@router.get("/details", tags=["contacts"], operation_id="list_details", response_model=DetailPage)
def list_details(
    account_id: AccountDep,
    conn: ReplicaConn,
    prefix: Prefix = None,
    after: After = None,
    limit: Limit = 100,
) -> dict:
    """Detail names by name, each with the contacts that have one."""
    return service.details(conn, account_id, prefix, after, limit)
