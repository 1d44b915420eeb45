"""Personal links (URLs made for one contact), under /v1/links."""

from typing import Annotated

from fastapi import APIRouter, Path

from app.api.deps import AccountDep, ReadConn, ReadRetryingRoute, SettingsDep
from app.errors import RESPONSES
from app.personal_links.schemas import Link
from app.personal_links.service import find_link

router = APIRouter(
    prefix="/v1/links", tags=["links"], responses=RESPONSES, route_class=ReadRetryingRoute
)


@router.get("/{token}", operation_id="verify_link", response_model=Link)
def verify_link(
    token: Annotated[str, Path(description="The token from the link's URL.")],
    account_id: AccountDep,
    conn: ReadConn,
    settings: SettingsDep,
) -> dict:
    """Who a personal link belongs to (for a landing page to identify the contact). A link
    made before the link secret was rotated is a 404."""
    return find_link(conn, account_id, token, settings.link_secret)
