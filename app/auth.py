"""API keys: `aud_` + random; only a sha256 of a key is stored."""

import hashlib
import secrets
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Connection

from app import tables as t
from app.db import ACCOUNT, act_as, is_postgres, present_key, retry_read
from app.errors import Unauthorized


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return "aud_" + secrets.token_urlsafe(32)


def create_account(conn: Connection, name: str, key: str | None = None) -> tuple[int, str]:
    """A new account and its first key. On PostgreSQL its id is drawn first, so that the
    transaction acts for it (row-level security) before writing its rows."""
    key = key or new_key()
    values = {"name": name, "created_at": t.utcnow()}
    if is_postgres(conn):
        next_id = sa.func.nextval(sa.func.pg_get_serial_sequence("accounts", "id"))
        values["id"] = conn.execute(sa.select(next_id)).scalar_one()
        act_as(conn, values["id"])
    account_id = conn.execute(
        sa.insert(t.accounts).values(**values).returning(t.accounts.c.id)
    ).scalar_one()
    conn.execute(
        sa.insert(t.api_keys).values(
            account_id=account_id, key_hash=hash_key(key), prefix=key[:8], created_at=t.utcnow()
        )
    )
    return account_id, key


def account_for_key(conn: Connection, key: str) -> int | None:
    """The key's account; the lookup shows row-level security the key's hash, which makes
    that one key's row visible to a transaction acting for no account yet."""
    found = key_of(conn, key)
    return None if found is None else found.account_id


def key_of(conn: Connection, key: str) -> sa.Row | None:
    """The key's row (account_id, label), or None."""
    key_hash = hash_key(key)
    present_key(conn, key_hash)
    return conn.execute(
        sa.select(t.api_keys.c.account_id, t.api_keys.c.label).where(
            t.api_keys.c.key_hash == key_hash
        )
    ).first()


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "missing API key: send 'Authorization: Bearer <api key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return token.strip()


bearer_scheme = HTTPBearer(auto_error=False, description="The account's API key")


async def current_account(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)] = None,
) -> int:
    """The key's account. Async so that ACCOUNT, set here, holds for the rest of the
    request (a sync dependency runs in a copied context that dies with it)."""
    key = _bearer(request)
    engine = request.app.state.read_engine

    def lookup() -> sa.Row | None:
        with engine.connect() as conn:
            return key_of(conn, key)

    found = await retry_read(lambda: run_in_threadpool(lookup))
    if found is None:
        raise Unauthorized("wrong API key", headers={"WWW-Authenticate": "Bearer"})
    account_id = found.account_id
    request.state.account_id = account_id
    request.state.key_label = found.label
    ACCOUNT.set(account_id)
    return account_id


AccountDep = Annotated[int, Depends(current_account)]


def key_label(request: Request) -> str | None:
    """The label of the request's API key (after current_account)."""
    return getattr(request.state, "key_label", None)
