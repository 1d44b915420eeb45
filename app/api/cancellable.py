"""Read-only queries a request may have to give up: run in a thread on a connection of
their own (the read engine's: on SQLite they run beside writes and other reads), under the
statement timeout; cancelled on the server when the client goes away; run again on a
fresh connection when the database dropped it."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

from app import logs
from app.db import cancel_statement, retry_read, set_statement_timeout, statement_timed_out
from app.errors import QueryTimeout

log = logs.get("audience.http")
T = TypeVar("T")


class QueryHandle:
    """Filled by the worker thread with its connection, so the request can cancel it."""

    conn: Any = None

    def cancel(self) -> None:
        conn = self.conn
        if conn is None:
            return
        try:
            cancel_statement(conn)
        except Exception:  # noqa: BLE001 - the query may have just finished
            log.warning("could not cancel a query", exc_info=True)


async def run_cancellable(request: Request, work: Callable[[QueryHandle], Any]) -> Any:
    handle = QueryHandle()
    task = asyncio.ensure_future(run_in_threadpool(work, handle))
    while True:
        done, _ = await asyncio.wait({task}, timeout=0.2)
        if done:
            return task.result()
        if await request.is_disconnected():
            log.info("client disconnected: cancelling its query")
            handle.cancel()
            return await task


class ReadQuery:
    """`await query(work)`: work(conn) on a connection of its own (one transaction under
    the statement timeout), cancellable and retried as above; a timeout is a 503."""

    def __init__(self, request: Request, engine: Callable[[], Engine], timeout_s: float):
        self.request = request
        self.engine = engine  # asked again at each try: a retry may go elsewhere
        self.timeout_s = timeout_s

    async def __call__(self, work: Callable[[Connection], T]) -> T:
        return await self._answer_timeout(
            retry_read(lambda: run_cancellable(self.request, self._transaction(work)))
        )

    def _transaction(self, work: Callable[[Connection], T]) -> Callable[[QueryHandle], T]:
        def run(handle: QueryHandle) -> T:
            with self.engine().begin() as conn:
                handle.conn = conn
                set_statement_timeout(conn, self.timeout_s)
                return work(conn)

        return run

    @staticmethod
    async def _answer_timeout(running: Awaitable[T]) -> T:
        try:
            return await running
        except OperationalError as exc:
            if statement_timed_out(exc):
                raise QueryTimeout("the query took longer than the statement timeout") from None
            raise


class WriteQuery(ReadQuery):
    """`await write(work)`: work(conn) in one transaction under the statement timeout,
    committed when it returns; a client that leaves cancels the statement in flight, which
    rolls it all back. Run once, never again on its own: a write whose connection was lost
    answers 503 and the client decides (with an Idempotency-Key, safely)."""

    async def __call__(self, work: Callable[[Connection], T]) -> T:
        return await self._answer_timeout(run_cancellable(self.request, self._transaction(work)))
