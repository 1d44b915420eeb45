"""GET /console: the web console's page, its assets and its catalogue. Not part of the API
(no key, not in openapi.yaml): the page asks for a key and calls /v1 like any client."""

from pathlib import Path

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse

from app import tables as t
from app.api.deps import AccountDep, ReadConn
from app.auth import hash_key
from app.console.catalog import catalog
from app.errors import NotFound

router = APIRouter(include_in_schema=False)

STATIC = Path(__file__).resolve().parent.parent / "console" / "static"
TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
# Everything from this origin, nothing inline, nothing from elsewhere: the page works offline
# and an injected script or style has nowhere to come from.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _assets() -> dict[str, Path]:
    return {p.name: p for p in STATIC.iterdir() if p.suffix in TYPES}


@router.get("/console")
def console_page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=HEADERS)


@router.get("/console/catalog.json")
def console_catalog() -> JSONResponse:
    return JSONResponse(catalog(), headers=HEADERS)


@router.get("/console/assets/{name}")
def console_asset(name: str) -> FileResponse:
    path = _assets().get(name)  # only a file of the folder, by its exact name
    if path is None:
        raise NotFound(f"no console asset named '{name}'")
    return FileResponse(path, media_type=TYPES[path.suffix], headers=HEADERS)


@router.get("/console/me")
def console_me(request: Request, account_id: AccountDep, conn: ReadConn) -> JSONResponse:
    """Who the key is: its label and scope, so that the page hides what a read key may not
    do (instead of letting its buttons fail)."""
    secret = request.headers["authorization"].partition(" ")[2].strip()
    k = t.api_keys
    row = conn.execute(
        sa.select(k.c.scope, k.c.label).where(
            k.c.account_id == account_id, k.c.key_hash == hash_key(secret)
        )
    ).first()
    scope = row.scope if row is not None else "read"  # when unsure, show less
    return JSONResponse({"label": row and row.label, "scope": scope}, headers=HEADERS)
