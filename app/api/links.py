from datetime import datetime

import sqlalchemy as sa
from fastapi import APIRouter
from pydantic import BaseModel

from app import tables as t
from app.api.deps import AccountDep, EngineDep, ReadRetryingRoute
from app.errors import RESPONSES, NotFound

router = APIRouter(
    prefix="/v1/links", tags=["links"], responses=RESPONSES, route_class=ReadRetryingRoute
)


class Link(BaseModel):
    token: str
    contact_id: int
    email: str
    job_id: int | None
    url: str
    created_at: datetime


@router.get("/{token}", operation_id="verify_link", response_model=Link)
def verify_link(token: str, account_id: AccountDep, engine: EngineDep) -> dict:
    """Who a personal link belongs to (for a landing page to identify the contact)."""
    with engine.connect() as conn:
        row = (
            conn.execute(
                sa.select(
                    t.links.c.token,
                    t.links.c.contact_id,
                    t.contacts.c.email,
                    t.links.c.job_id,
                    t.links.c.url,
                    t.links.c.created_at,
                )
                .join(t.contacts, t.contacts.c.id == t.links.c.contact_id)
                .where(t.links.c.account_id == account_id, t.links.c.token == token[:64])
            )
            .mappings()
            .first()
        )
    if row is None:
        raise NotFound("unknown link")
    return dict(row)
