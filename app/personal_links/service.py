"""Personal links: a URL made for one contact (by the `generate_links` action), found by
its token."""

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from app import tables as t
from app.errors import NotFound

TOKEN_LENGTH = t.links.c.token.type.length


def find_link(conn: Connection, account_id: int, token: str) -> dict:
    """The link with this token and the e-mail of its contact."""
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
            .where(t.links.c.account_id == account_id, t.links.c.token == token[:TOKEN_LENGTH])
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound("unknown link")
    return dict(row)
