"""API keys of an account: create (the secret shown once), list, revoke. Every request
looks its key up afresh, so a revoked key is refused at once by every API process."""

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from app import tables as t
from app.auth import hash_key, new_key
from app.errors import NotFound

k = t.api_keys
COLUMNS = (k.c.id, k.c.label, k.c.scope, k.c.prefix, k.c.created_at, k.c.last_used_at)


def create_key(conn: Connection, account_id: int, label: str, scope: str) -> dict:
    key = new_key()
    row = conn.execute(
        sa.insert(k)
        .values(
            account_id=account_id,
            key_hash=hash_key(key),
            prefix=key[:8],
            label=label,
            scope=scope,
            created_at=t.utcnow(),
        )
        .returning(*COLUMNS)
    ).one()
    return {**row._asdict(), "key": key}


def list_keys(conn: Connection, account_id: int) -> list[dict]:
    rows = conn.execute(sa.select(*COLUMNS).where(k.c.account_id == account_id).order_by(k.c.id))
    return [r._asdict() for r in rows]


def revoke_key(conn: Connection, account_id: int, key_id: int) -> None:
    gone = conn.execute(
        sa.delete(k).where(k.c.account_id == account_id, k.c.id == key_id).returning(k.c.id)
    ).first()
    if gone is None:
        raise NotFound(f"key {key_id} not found")


def account_of_key(conn: Connection, key_id: int) -> int | None:
    """The account of a key id (the CLI's revoke, on the tables' owner)."""
    return conn.execute(sa.select(k.c.account_id).where(k.c.id == key_id)).scalar_one_or_none()
