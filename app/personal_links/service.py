"""Personal links: a URL made for one contact (by the `generate_links` action), found by
its token."""

import hmac

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from app import tables as t
from app.errors import NotFound
from app.personal_links.secret import link_token

TOKEN_LENGTH = t.links.c.token.type.length


def find_link(conn: Connection, account_id: int, token: str, secret: str | None) -> dict:
    """The link with this token and the e-mail of its contact, if the token is still the
    one `secret` makes: links made before the secret was rotated no longer verify."""
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
    if row is None or not _made_with(secret, account_id, row):
        raise NotFound("unknown link")
    return dict(row)


def _made_with(secret: str | None, account_id: int, row) -> bool:
    if not secret:
        return False
    made = link_token(secret, account_id, row["contact_id"], row["job_id"])
    return hmac.compare_digest(made, row["token"])
