"""Where reads go: a PostgreSQL hot standby (AUDIENCE_READ_DATABASE_URL) while it answers
and is no more than AUDIENCE_MAX_REPLICA_LAG_S behind, otherwise the primary.

Counts, previews, exports, pickers and listings read through `Reads.engine()`. Job
snapshots, every write, and API key look-ups (a revoked key must stop at once, not when
the standby has replayed the revocation) stay on the primary. The standby's state is
looked at once a second at most, by whichever request comes first; a dropped connection
to it marks it down at once. Falling back is counted (`fallbacks`, also on /metrics when
it is served) and logged when it starts and ends."""

import threading
import time

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from app import logs

log = logs.get("audience.replica")

# Seconds the standby is behind: 0 while it has replayed all it received from a primary it
# is streaming from; otherwise the age of the last transaction it replayed (it may be
# disconnected, or replay may be paused or slow). Not a standby at all: 0.
LAG = sa.text(
    """
    SELECT CASE
        WHEN NOT pg_is_in_recovery() THEN 0
        WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()
             AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming')
            THEN 0
        ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 1e9)
    END
    """
)


class Reads:
    def __init__(
        self,
        local: Engine,
        replica: Engine | None = None,
        max_lag_s: float = 5.0,
        recheck_s: float = 1.0,
    ):
        self.local = local  # the primary's read engine (on SQLite, the side-by-side reader)
        self.replica = replica
        self.max_lag_s = max_lag_s
        self.recheck_s = recheck_s
        self.fallbacks = 0  # reads sent to the primary while a standby is configured
        self.lag_s: float | None = None  # the standby's lag at the last look (None: down)
        self._healthy = False
        self._checked_at = float("-inf")
        self._lock = threading.Lock()
        if replica is not None:
            event.listen(replica, "handle_error", self._on_error)

    def engine(self) -> Engine:
        """The engine this read should use."""
        if self.replica is None:
            return self.local
        self.refresh()
        if self._healthy:
            return self.replica
        self.fallbacks += 1
        return self.local

    def refresh(self) -> None:
        """Look at the standby again when the last look is over recheck_s old (one thread
        looks; the others go by the last look)."""
        stale = time.monotonic() - self._checked_at >= self.recheck_s
        if self.replica is not None and stale and self._lock.acquire(blocking=False):
            try:
                self._check()
            finally:
                self._lock.release()

    def state(self) -> dict:
        """For /readyz: whether reads go to the standby, and its lag."""
        return {
            "configured": self.replica is not None,
            "in_use": self.replica is not None and self._healthy,
            "lag_s": self.lag_s,
            "fallbacks": self.fallbacks,
        }

    def _check(self) -> None:
        try:
            with self.replica.connect() as conn:
                lag = float(conn.execute(LAG).scalar_one())
        except sa.exc.DBAPIError as exc:
            self._set(False, None, f"standby unreachable ({type(exc.orig).__name__})")
        else:
            ok = lag <= self.max_lag_s
            self._set(ok, lag, None if ok else f"standby {lag:.1f} s behind")
        self._checked_at = time.monotonic()

    def _set(self, healthy: bool, lag: float | None, why: str | None) -> None:
        if healthy != self._healthy:
            if healthy:
                log.info("reads go to the standby again", lag_s=lag)
            else:
                log.warning("reads go to the primary", reason=why)
        self._healthy, self.lag_s = healthy, lag

    def _on_error(self, context) -> None:
        if context.is_disconnect:
            self._set(False, None, "standby connection lost")
            self._checked_at = time.monotonic()
