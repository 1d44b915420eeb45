from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import AccountDep, ReadConn, ReadRetryingRoute, WriteConn
from app.contacts.schemas import Contact, ContactsIn, UpsertResult
from app.contacts.service import load_contacts, upsert_contacts
from app.errors import RESPONSES, NotFound
from app.jobs import service as job_service
from app.jobs.schemas import History
from app.types import PathId, query_text

router = APIRouter(
    prefix="/v1/contacts", tags=["contacts"], responses=RESPONSES, route_class=ReadRetryingRoute
)


@router.post("", operation_id="upsert_contacts", response_model=UpsertResult)
def upsert(body: ContactsIn, account_id: AccountDep, conn: WriteConn) -> dict:
    """Create or update up to 10,000 contacts by e-mail, all or nothing."""
    return upsert_contacts(conn, account_id, body.contacts)


@router.get("/{contact_id}", operation_id="get_contact", response_model=Contact)
def get_contact(contact_id: PathId, account_id: AccountDep, conn: ReadConn) -> dict:
    """One contact with tags, details, owners, funnels and groups (soft-deleted ones too)."""
    found = load_contacts(conn, account_id, [contact_id]) if _ok(contact_id) else []
    if not found:
        raise NotFound(f"contact {contact_id} not found")
    return found[0]


def _ok(contact_id: int) -> bool:
    return 0 < contact_id < 2**63


@router.get("/{contact_id}/history", operation_id="contact_history", response_model=History)
def contact_history(
    contact_id: PathId,
    account_id: AccountDep,
    conn: ReadConn,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before: query_text(400, "next_before of the previous page") = None,
) -> dict:
    """The contact's changes recorded by jobs (actions, imports, reverts), newest first:
    kept AUDIENCE_CHANGE_LOG_DAYS after each job ends."""
    return job_service.history(conn, account_id, contact_id, limit, before)
