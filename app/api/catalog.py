"""Funnels, mailings, events and groups: thin HTTP over app.catalog.service."""

from fastapi import APIRouter, Response

from app.api.deps import AccountDep, ReadConn, ReadRetryingRoute, ReplicaConn, WriteConn
from app.catalog import service
from app.catalog.schemas import (
    EventsIn,
    EventsResult,
    Funnel,
    FunnelIn,
    Group,
    GroupIn,
    Mailing,
    MailingIn,
)
from app.errors import IN_USE, NAME_TAKEN, RENAME_CONFLICTS, RESPONSES
from app.types import PathId

router = APIRouter(prefix="/v1", responses=RESPONSES, route_class=ReadRetryingRoute)


@router.post(
    "/funnels",
    tags=["funnels"],
    operation_id="create_funnel",
    responses=NAME_TAKEN,
    response_model=Funnel,
    status_code=201,
)
def create_funnel(body: FunnelIn, account_id: AccountDep, conn: WriteConn) -> dict:
    """A funnel with its stages in order; 409 when the account has one of this name."""
    return service.create_funnel(conn, account_id, body)


@router.get("/funnels", tags=["funnels"], operation_id="list_funnels", response_model=list[Funnel])
def list_funnels(account_id: AccountDep, conn: ReplicaConn) -> list[dict]:
    """The account's funnels, oldest first, each with how many contacts stand at each stage."""
    return service.list_funnels(conn, account_id)


@router.get(
    "/funnels/{funnel_id}", tags=["funnels"], operation_id="get_funnel", response_model=Funnel
)
def get_funnel(funnel_id: PathId, account_id: AccountDep, conn: ReadConn) -> dict:
    """One funnel, with how many contacts stand at each stage."""
    return service.get_funnel(conn, account_id, funnel_id)


@router.post(
    "/mailings",
    tags=["mailings"],
    operation_id="create_mailing",
    response_model=Mailing,
    status_code=201,
)
def create_mailing(body: MailingIn, account_id: AccountDep, conn: WriteConn) -> dict:
    """Records a sent mailing and its recipients, all or nothing: an e-mail with no contact is
    a 422 naming it."""
    return service.create_mailing(conn, account_id, body)


@router.get(
    "/mailings", tags=["mailings"], operation_id="list_mailings", response_model=list[Mailing]
)
def list_mailings(account_id: AccountDep, conn: ReplicaConn) -> list[dict]:
    """The account's mailings, oldest first, each with its number of recipients; selectors
    name them by id."""
    return service.list_mailings(conn, account_id)


@router.get(
    "/mailings/{mailing_id}", tags=["mailings"], operation_id="get_mailing", response_model=Mailing
)
def get_mailing(mailing_id: PathId, account_id: AccountDep, conn: ReadConn) -> dict:
    """One mailing, with its number of recipients."""
    return service.get_mailing(conn, account_id, mailing_id)


@router.post("/events", tags=["events"], operation_id="create_events", response_model=EventsResult)
def create_events(body: EventsIn, account_id: AccountDep, conn: WriteConn) -> dict:
    """Records up to 10,000 events, all or nothing: an e-mail with no contact is a 422 naming
    it."""
    return service.create_events(conn, account_id, body.events)


@router.post(
    "/groups",
    tags=["groups"],
    operation_id="create_group",
    responses=NAME_TAKEN,
    response_model=Group,
    status_code=201,
)
def create_group(body: GroupIn, account_id: AccountDep, conn: WriteConn) -> dict:
    """An empty group of defined addressees; 409 when the account has one of this name."""
    return service.create_group(conn, account_id, body.name)


@router.get("/groups", tags=["groups"], operation_id="list_groups", response_model=list[Group])
def list_groups(account_id: AccountDep, conn: ReplicaConn) -> list[dict]:
    """The account's groups, oldest first, each with its number of members."""
    return service.list_groups(conn, account_id)


@router.get("/groups/{group_id}", tags=["groups"], operation_id="get_group", response_model=Group)
def get_group(group_id: PathId, account_id: AccountDep, conn: ReadConn) -> dict:
    """One group, with its number of members."""
    return service.get_group(conn, account_id, group_id)


@router.put(
    "/groups/{group_id}",
    tags=["groups"],
    operation_id="update_group",
    responses=RENAME_CONFLICTS,
    response_model=Group,
)
def update_group(group_id: PathId, body: GroupIn, account_id: AccountDep, conn: WriteConn) -> dict:
    """Renames the group; 409 `in_use`, naming each, while a saved segment or rule names
    it (a change of case only is free)."""
    return service.rename_group(conn, account_id, group_id, body.name)


@router.delete(
    "/groups/{group_id}",
    tags=["groups"],
    operation_id="delete_group",
    responses=IN_USE,
    status_code=204,
)
def delete_group(group_id: PathId, account_id: AccountDep, conn: WriteConn) -> Response:
    """Deletes the group and its memberships; 409 `in_use`, naming each, while a saved
    segment or rule names it."""
    service.delete_group(conn, account_id, group_id)
    return Response(status_code=204)
