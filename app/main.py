"""create_app(): engine, job runner, routers, error handlers, middleware."""

import time
import uuid
from contextlib import asynccontextmanager

import structlog
from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from app import docs, errors, logs, metrics
from app.api import (
    catalog,
    console,
    contacts,
    health,
    imports,
    jobs,
    keys,
    personal_links,
    pickers,
    rules,
    selections,
    webhooks,
)
from app.api.deps import known_query
from app.config import Settings, get_settings
from app.db import make_engine, read_engine
from app.jobs.transports import make_runner
from app.openapi import defaults_described
from app.replica import Reads

log = logs.get("audience.http")
IMPORTS = "/v1/imports"


class RequestContext:
    """A request id per request (X-Request-ID in and out), one access log line,
    and a body size limit enforced while reading (413 before the body is read whole)."""

    def __init__(self, app: ASGIApp, max_body: int, larger: dict[str, int] | None = None):
        self.app = app
        self.max_body = max_body
        self.larger = larger or {}  # path → its own limit (an import's file)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if scope["method"] in ("POST", "PUT", "PATCH") and _not_declared_json(headers):
            scope = _as_json(scope)
        request_id = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = {"code": 500}
        max_body = self.larger.get(scope["path"].rstrip("/"), self.max_body)
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > max_body:
            await _too_large(send, request_id)
            return
        received = {"n": 0}

        async def limited_receive():
            message = await receive()
            if message["type"] == "http.request":
                received["n"] += len(message.get("body", b""))
                if received["n"] > max_body:
                    # an HTTPException: FastAPI passes it on (anything else reading the
                    # body raises, it turns into a 400)
                    raise HTTPException(413, "request body too large")
            return message

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_template(scope)
            metrics.HTTP_REQUESTS.labels(scope["method"], route, str(status["code"])).inc()
            metrics.HTTP_LATENCY.labels(scope["method"], route).observe(elapsed)
            log.info(
                "request",
                method=scope["method"],
                path=logs.loggable_path(scope["path"]),
                status=status["code"],
                ms=round(elapsed * 1000, 1),
            )


def _route_template(scope: Scope) -> str:
    """The route the request matched, as declared (`/v1/jobs/{job_id}`): never the raw
    path, which holds ids and tokens; `unmatched` for a path no route has."""
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) and path else "unmatched"


def _not_declared_json(headers: dict[bytes, bytes]) -> bool:
    """A body sent as anything but JSON or a form upload: a browser's fetch() with a string
    body says text/plain, curl -d says x-www-form-urlencoded. Read as JSON all the same."""
    kind = headers.get(b"content-type", b"").lower()
    return b"json" not in kind and not kind.startswith(b"multipart/")


def _as_json(scope: Scope) -> Scope:
    kept = [(k, v) for k, v in scope.get("headers") or [] if k.lower() != b"content-type"]
    return {**scope, "headers": [*kept, (b"content-type", b"application/json")]}


async def _too_large(send: Send, request_id: str) -> None:
    import json

    body = json.dumps(errors.error_body("payload_too_large", "request body too large")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"x-request-id", request_id.encode("latin-1")),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def create_app(
    settings: Settings | None = None, *, engine=None, start_runner: bool = True
) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if start_runner:
            app.state.runner.start()
        try:
            yield
        finally:
            app.state.runner.stop()
            if owns_engine:
                app.state.engine.dispose()
            if app.state.reads.replica is not None:
                app.state.reads.replica.dispose()

    app = FastAPI(
        title="Audience",
        version="1.0.0",
        description=(
            "Mass contact management for marketing automation: pick a group of contacts "
            "with a selection spec, count it exactly, and run bulk actions on it as jobs."
        ),
        lifespan=lifespan,
        dependencies=[Depends(known_query)],
        docs_url=None,  # app.docs serves it from shipped files
        redoc_url=None,
    )
    owns_engine = engine is None
    app.state.settings = settings
    app.state.engine = engine or make_engine(settings.database_url)
    app.state.read_engine = read_engine(app.state.engine)  # disposed with it
    replica = (
        make_engine(settings.read_database_url, connect_args={"connect_timeout": 2})
        if settings.read_database_url
        else None
    )
    app.state.reads = Reads(app.state.read_engine, replica, settings.max_replica_lag_s)
    app.state.runner = make_runner(settings, app.state.engine)
    errors.install(app)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=["Retry-After", "Content-Disposition", "Location", "X-Request-ID"],
    )
    app.add_middleware(GZipMiddleware, minimum_size=1024)
    app.add_middleware(
        RequestContext,
        max_body=settings.max_body_bytes,
        larger={IMPORTS: settings.max_import_bytes},
    )
    for module in (
        health,
        pickers,
        contacts,
        catalog,
        selections,
        rules,
        jobs,
        imports,
        personal_links,
        keys,
        console,
        webhooks,
    ):
        app.include_router(module.router)
    docs.install(app)
    errors.document_limits(app)
    defaults_described(app)
    return app
