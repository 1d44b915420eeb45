from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.api.deps import AccountDep, ReadConn, ReadRetryingRoute, SettingsDep, WriteConn
from app.errors import RESPONSES
from app.types import PathId, query_id
from app.webhooks import service
from app.webhooks.schemas import AttemptPage, NewWebhook, Webhook, WebhookIn, WebhookList

router = APIRouter(
    prefix="/v1/webhooks", tags=["webhooks"], responses=RESPONSES, route_class=ReadRetryingRoute
)


@router.post("", operation_id="create_webhook", status_code=201, response_model=NewWebhook)
def create_webhook(
    body: WebhookIn, account_id: AccountDep, conn: WriteConn, settings: SettingsDep
) -> dict:
    """A webhook: `events` of the account's jobs are POSTed to `url`, signed with
    `secret` (in this answer only). A URL on a loopback, private, link-local or reserved
    address is a 422 unless AUDIENCE_WEBHOOK_ALLOW_PRIVATE=true."""
    return service.create(
        conn,
        account_id,
        url=body.url,
        events=body.events,
        allow_private=settings.webhook_allow_private,
    )


@router.get("", operation_id="list_webhooks", response_model=WebhookList)
def list_webhooks(account_id: AccountDep, conn: ReadConn) -> dict:
    """The account's webhooks (never their secrets)."""
    return {"webhooks": service.list_webhooks(conn, account_id)}


@router.get("/{webhook_id}", operation_id="get_webhook", response_model=Webhook)
def get_webhook(webhook_id: PathId, account_id: AccountDep, conn: ReadConn) -> dict:
    """A webhook (never its secret)."""
    return service.get(conn, account_id, webhook_id)


@router.delete("/{webhook_id}", operation_id="delete_webhook", status_code=204)
def delete_webhook(webhook_id: PathId, account_id: AccountDep, conn: WriteConn) -> Response:
    """Delete a webhook: nothing more is sent to it, its pending deliveries included."""
    service.delete(conn, account_id, webhook_id)
    return Response(status_code=204)


@router.get(
    "/{webhook_id}/deliveries", operation_id="list_webhook_deliveries", response_model=AttemptPage
)
def list_deliveries(
    webhook_id: PathId,
    account_id: AccountDep,
    conn: ReadConn,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: query_id("an attempt id: older attempts only") = None,
) -> dict:
    """Every attempt to deliver to this webhook, newest first: its event, status, the
    receiver's response code, time, attempt number and error."""
    return service.attempts(conn, account_id, webhook_id, limit=limit, before=before)
