from fastapi import APIRouter, Response

from app.api.deps import AccountDep, ReadConn, ReadRetryingRoute, WriteConn
from app.errors import RESPONSES
from app.keys import service
from app.keys.schemas import KeyIn, KeyList, NewKey
from app.types import PathId

router = APIRouter(
    prefix="/v1/keys", tags=["keys"], responses=RESPONSES, route_class=ReadRetryingRoute
)


@router.get("", operation_id="list_keys", response_model=KeyList)
def list_keys(account_id: AccountDep, conn: ReadConn) -> dict:
    """The account's API keys (never their secrets). Full keys only."""
    return {"keys": service.list_keys(conn, account_id)}


@router.post("", operation_id="create_key", status_code=201, response_model=NewKey)
def create_key(body: KeyIn, account_id: AccountDep, conn: WriteConn) -> dict:
    """A new key; its secret (`key`) is in this answer only. Full keys only."""
    return service.create_key(conn, account_id, body.label, body.scope)


@router.delete("/{key_id}", operation_id="revoke_key", status_code=204)
def revoke_key(key_id: PathId, account_id: AccountDep, conn: WriteConn) -> Response:
    """Revoke a key: every request with it is a 401 from now on, on every API process."""
    service.revoke_key(conn, account_id, key_id)
    return Response(status_code=204)
