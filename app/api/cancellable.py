"""Run a query in a thread; if the client goes away, cancel it on the server."""

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from app import logs

log = logs.get("audience.http")


class QueryHandle:
    """Filled by the worker thread with its connection, so the request can cancel it."""

    conn: Any = None

    def cancel(self) -> None:
        conn = self.conn
        if conn is None or conn.dialect.name != "postgresql":
            return
        try:
            conn.connection.dbapi_connection.cancel_safe()
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
