"""A job's life: its statuses and the moves allowed between them, as data.

```
queued ──claim──▶ running ──▶ succeeded | failed | cancelled
   │                 ▲  │
   └──▶ cancelled    └──┘ claimed again once its lease expired (a worker vanished)
```

The database holds the status; app.jobs.repository makes every move as one UPDATE guarded
by the status it leaves, checked against TRANSITIONS here. Nothing here touches a database
(app.tables derives its partial index from FINISHED).
"""

from enum import StrEnum


class Status(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


# Every move a job may make. running → running: a worker claims a job whose lease expired.
TRANSITIONS: dict[Status, tuple[Status, ...]] = {
    Status.QUEUED: (Status.RUNNING, Status.CANCELLED),
    Status.RUNNING: (Status.RUNNING, Status.SUCCEEDED, Status.CANCELLED, Status.FAILED),
    Status.SUCCEEDED: (),
    Status.FAILED: (),
    Status.CANCELLED: (),
}

# The statuses a job never leaves, in the order of the partial index's SQL text
# (app.tables.SNAPSHOT_TO_PURGE, as migration 0001 wrote it).
FINISHED: tuple[Status, ...] = tuple(s for s in TRANSITIONS[Status.RUNNING] if not TRANSITIONS[s])


class IllegalTransition(ValueError):
    """A move TRANSITIONS does not allow: a bug in the code that asked for it."""


def allowed(source: Status, target: Status) -> bool:
    return target in TRANSITIONS[source]


def require(source: Status, target: Status) -> None:
    if not allowed(source, target):
        raise IllegalTransition(f"a job does not go from {source} to {target}")


class Outcome(StrEnum):
    """Why a run of the job runner ended without finishing the job (a run that finished it
    answers the job's Status instead)."""

    NOT_CLAIMED = "not-claimed"  # not due, or another worker holds its lease
    LOST_LEASE = "lost-lease"  # another worker claimed it while this one ran it
    INTERRUPTED = "interrupted"  # the database went away: the lease will bring it back
