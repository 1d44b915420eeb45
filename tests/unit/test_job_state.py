"""The job lifecycle as data: statuses, allowed moves, runner outcomes (no database)."""

import importlib
import itertools
from typing import get_args

import pytest

from app import tables as t
from app.jobs import repository
from app.jobs.schemas import JobStatus
from app.jobs.state import (
    FINISHED,
    TRANSITIONS,
    IllegalTransition,
    Outcome,
    Status,
    allowed,
    require,
)

Q, R, S, F, C = Status.QUEUED, Status.RUNNING, Status.SUCCEEDED, Status.FAILED, Status.CANCELLED
MOVES = {(Q, R), (Q, C), (R, R), (R, S), (R, F), (R, C)}
PAIRS = list(itertools.product(Status, Status))


def _pair_id(pair) -> str:
    return f"{pair[0]}->{pair[1]}"


@pytest.mark.parametrize("pair", PAIRS, ids=_pair_id)
def test_transition_table(pair):
    source, target = pair
    assert allowed(source, target) is (pair in MOVES)
    if pair in MOVES:
        require(source, target)
    else:
        with pytest.raises(IllegalTransition):
            require(source, target)


def test_every_status_is_in_the_table():
    assert set(TRANSITIONS) == set(Status)
    assert all(set(targets) <= set(Status) for targets in TRANSITIONS.values())


def test_finished_are_the_statuses_without_a_way_out():
    assert set(FINISHED) == {s for s in Status if not TRANSITIONS[s]} == {S, F, C}
    assert len(FINISHED) == len(set(FINISHED))


def test_every_unfinished_status_can_finish():
    for status in set(Status) - set(FINISHED):
        reached, todo = {status}, [status]
        while todo:
            new = set(TRANSITIONS[todo.pop()]) - reached
            reached |= new
            todo.extend(new)
        assert reached & set(FINISHED), status


def test_outcomes_are_not_statuses():
    assert not {o.value for o in Outcome} & {s.value for s in Status}


def test_the_api_type_is_the_enum():
    assert get_args(JobStatus) == tuple(s.value for s in Status)


def test_partial_index_sql_is_migration_0001s():
    """Derived from FINISHED, the text must not change: a new text would need a migration."""
    initial = importlib.import_module("migrations.versions.0001_initial")
    assert str(initial.SNAPSHOT_TO_PURGE) == t.SNAPSHOT_TO_PURGE


class _Recorder:
    """Stands in for a Connection: keeps the statement, reports one row changed; keeps
    the moves the outbox is told of (app.webhooks.outbox writes their deliveries, in the
    same transaction: tests/integration/test_webhooks.py)."""

    rowcount = 1

    def __init__(self):
        self.statements = []
        self.moves = []

    def execute(self, statement):
        self.statements.append(statement)
        return self


@pytest.fixture(autouse=True)
def _outbox(monkeypatch):
    monkeypatch.setattr(
        "app.webhooks.outbox.job_moved", lambda conn, job_id, status: conn.moves.append(status)
    )


def _sql(statement) -> str:
    return " ".join(str(statement.compile(compile_kwargs={"literal_binds": True})).split())


@pytest.mark.parametrize(
    ("move", "guard"),
    [
        (
            lambda conn: repository.claim(conn, 1, owner="w", lease_s=30),
            "jobs.status = 'queued'",
        ),
        (
            lambda conn: repository.finish(conn, 1, owner="w", status=Status.SUCCEEDED),
            "jobs.status = 'running' AND jobs.lease_owner = 'w'",
        ),
        (lambda conn: repository.cancel_queued(conn, 1), "jobs.status = 'queued'"),
        (lambda conn: repository.request_cancel(conn, 1), "jobs.status = 'running'"),
    ],
    ids=["claim", "finish", "cancel_queued", "request_cancel"],
)
def test_each_status_write_is_one_guarded_update(move, guard):
    conn = _Recorder()
    assert move(conn) is True
    [statement] = conn.statements
    sql = _sql(statement)
    assert sql.startswith("UPDATE jobs SET") and "WHERE jobs.id = 1 AND" in sql
    assert guard in sql
    # a status change tells the outbox; a cancel request changes no status
    assert len(conn.moves) == (0 if guard == "jobs.status = 'running'" else 1)


def test_claim_takes_due_jobs_only():
    conn = _Recorder()
    repository.claim(conn, 1, owner="w", lease_s=30)
    sql = _sql(conn.statements[0])
    assert "jobs.status = 'queued' AND (jobs.run_at IS NULL OR jobs.run_at <=" in sql
    assert "jobs.status = 'running' AND jobs.lease_until <" in sql


def test_a_forbidden_move_is_refused_before_any_sql():
    conn = _Recorder()
    with pytest.raises(IllegalTransition):
        repository.finish(conn, 1, owner="w", status=Status.QUEUED)
    assert conn.statements == []
