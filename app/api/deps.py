from collections.abc import Iterator
from typing import Annotated, get_args, get_origin

from fastapi import Depends, Request
from fastapi.routing import APIRoute
from sqlalchemy.engine import Connection, Engine

from app.api.cancellable import ReadQuery, WriteQuery
from app.auth import AccountDep
from app.config import Settings
from app.db import retry_read, set_statement_timeout
from app.errors import Invalid


def get_engine(request: Request) -> Engine:
    return request.app.state.engine


def get_read_engine(request: Request) -> Engine:
    return request.app.state.read_engine


def get_replica_engine(request: Request) -> Engine:
    """For reads that may come from the standby (app.replica) when one is configured."""
    return request.app.state.reads.engine()


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


class ReadRetryingRoute(APIRoute):
    """A GET runs again (auth included) on a fresh connection when the database dropped
    its connection (a restart, a fail-over, a killed backend): reads change nothing, so a
    second try is safe. Count and preview, POSTs that only read, retry on their own."""

    def get_route_handler(self):
        handler = super().get_route_handler()
        if "GET" not in self.methods:
            return handler

        async def retrying(request: Request):
            return await retry_read(lambda: handler(request))

        return retrying


def _takes_many(annotation) -> bool:
    """A list query parameter (`?status=a&status=b`), optional or not."""
    origin = get_origin(annotation)
    if origin in (list, tuple, set, frozenset):
        return True
    return any(_takes_many(arg) for arg in get_args(annotation) if origin is not Annotated)


def _query_names(route: APIRoute) -> dict[str, bool]:
    """The route's query parameters: name → whether it takes more than one value."""
    known = getattr(route, "_audience_query_names", None)
    if known is not None:
        return known
    names: dict[str, bool] = {}
    todo = [route.dependant]
    while todo:
        dependant = todo.pop()
        for param in dependant.query_params:
            names[param.alias] = _takes_many(param.field_info.annotation)
        todo.extend(dependant.dependencies)
    route._audience_query_names = names  # type: ignore[attr-defined]
    return names


async def known_query(request: Request) -> None:
    """An unknown query parameter is a 422, never ignored: a mistyped `?dry_run` must not
    run the job for real. So is a one-value parameter given twice: which one was meant would be a guess."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    known = _query_names(route)
    for name in request.query_params:
        if name not in known:
            raise Invalid.at(f"query.{name}", "unknown query parameter")
        if not known[name] and len(request.query_params.getlist(name)) > 1:
            raise Invalid.at(f"query.{name}", "given more than once (it takes one value)")


def _reading(engine: Engine, request: Request) -> Iterator[Connection]:
    with engine.connect() as conn:
        set_statement_timeout(conn, get_settings(request).statement_timeout_s)
        yield conn


def _read(request: Request, _account: AccountDep) -> Iterator[Connection]:
    yield from _reading(get_read_engine(request), request)


def _replica(request: Request, _account: AccountDep) -> Iterator[Connection]:
    yield from _reading(get_replica_engine(request), request)


def _write(request: Request, _account: AccountDep) -> Iterator[Connection]:
    with get_engine(request).begin() as conn:
        set_statement_timeout(conn, get_settings(request).statement_timeout_s)
        yield conn


def _read_query(request: Request, _account: AccountDep) -> ReadQuery:
    engine = get_read_engine(request)
    return ReadQuery(request, lambda: engine, get_settings(request).statement_timeout_s)


def _replica_query(request: Request, _account: AccountDep) -> ReadQuery:
    reads = request.app.state.reads
    return ReadQuery(request, reads.engine, get_settings(request).statement_timeout_s)


def _write_query(request: Request, _account: AccountDep) -> WriteQuery:
    engine = get_engine(request)
    return WriteQuery(request, lambda: engine, get_settings(request).statement_timeout_s)


EngineDep = Annotated[Engine, Depends(get_engine)]
# For reads outside ReadConn (a streamed response's batches): never waits for writes.
ReadEngineDep = Annotated[Engine, Depends(get_read_engine)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
# The request's connection, after its API key is checked (so row-level security scopes it
# to the account). Read: read-only, beside other reads and writes (on SQLite, which lets
# one writer at a time, writes take turns and reads never wait for them). Write: one
# transaction, committed when the route function returns (before the response is sent),
# rolled back if it raises.
ReadConn = Annotated[Connection, Depends(_read, scope="function")]
WriteConn = Annotated[Connection, Depends(_write, scope="function")]
# A read that may run long (a dry run): cancellable, under the statement timeout.
ReadQueryDep = Annotated[ReadQuery, Depends(_read_query)]
# Reads a standby may answer (app.replica): counts, previews, exports, pickers, listings.
# Never what a client expects to see right after its own write (a job it just submitted).
ReplicaConn = Annotated[Connection, Depends(_replica, scope="function")]
ReplicaQueryDep = Annotated[ReadQuery, Depends(_replica_query)]
ReplicaEngineDep = Annotated[Engine, Depends(get_replica_engine)]
# A write whose reads may run long (a job submit's count): the same, committed at its end.
WriteQueryDep = Annotated[WriteQuery, Depends(_write_query)]

__all__ = [
    "AccountDep",
    "EngineDep",
    "ReadConn",
    "ReadEngineDep",
    "ReadQueryDep",
    "ReplicaConn",
    "ReplicaEngineDep",
    "ReplicaQueryDep",
    "SettingsDep",
    "WriteConn",
    "WriteQueryDep",
]
