"""API keys: `aud_` + random; only a sha256 of a key is stored."""

import hashlib
import secrets
from datetime import timedelta
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Connection

from app import logs
from app import tables as t
from app.db import ACCOUNT, act_as, is_postgres, present_key, retry_read
from app.errors import Forbidden, Unauthorized

log = logs.get("audience.auth")


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
    """The key's row (id, account_id, label, scope, last_used_at), or None."""
    key_hash = hash_key(key)
    present_key(conn, key_hash)
    k = t.api_keys
    return conn.execute(
        sa.select(k.c.id, k.c.account_id, k.c.label, k.c.scope, k.c.last_used_at).where(
            k.c.key_hash == key_hash
        )
    ).first()


# What a read key may do besides GET: the two reads that take a body.
READ_POSTS = frozenset({"/v1/selections/count", "/v1/selections/preview", "/v1/selections/export"})
USED_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often


def _reads_only(request: Request) -> bool:
    path = request.url.path
    if path.startswith("/v1/keys"):
        return False  # managing keys takes a full key
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return True
    return request.method == "POST" and path in READ_POSTS


def _note_use(engine, found) -> None:
    """last_used_at, to the minute: one small write a key a minute at most; a failure
    here never fails the request."""
    now = t.utcnow()
    if found.last_used_at is not None and now - found.last_used_at < USED_EVERY:
        return
    try:
        with engine.begin() as conn:
            act_as(conn, found.account_id)
            conn.execute(
                sa.update(t.api_keys).where(t.api_keys.c.id == found.id).values(last_used_at=now)
            )
    except Exception:  # noqa: BLE001 - bookkeeping only
        log.warning("could not note an API key's use", exc_info=True)


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        problem = "missing API key" if not header.strip() else "the Authorization header"
        raise Unauthorized(
            f"{problem}: send 'Authorization: Bearer <api key>'"
            + ("" if not header.strip() else " (the word Bearer, a space, then the key)"),
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
    if found.scope != "full" and not _reads_only(request):
        raise Forbidden(
            f"this is a read key ('{found.label}'): it may GET, count and preview, nothing else"
        )
    await run_in_threadpool(_note_use, request.app.state.engine, found)
    account_id = found.account_id
    request.state.account_id = account_id
    request.state.key_label = found.label
    ACCOUNT.set(account_id)
    return account_id


AccountDep = Annotated[int, Depends(current_account)]


def key_label(request: Request) -> str | None:
    """The label of the request's API key (after current_account)."""
    return getattr(request.state, "key_label", None)
