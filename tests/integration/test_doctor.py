"""`audience doctor` and /readyz report jobs nobody is running; a database outage longer
than the engine's retries leaves a job stuck (running, its lease unrenewed), never failed,
until it is claimed again and resumes."""

import json
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from alembic import command

from app import tables as t
from app.jobs import runner as job_runner
from app.migrate import alembic_config, upgrade
from tests.conftest import Scoped, doctor, make_settings


@pytest.fixture
def paused(api):
    """No in-process runner: it would pick up (and so repair) the jobs these tests leave."""
    api.app.state.runner.stop()
    yield
    api.app.state.runner.start()


def _job(conn, account_id: int, **values) -> int:
    now = t.utcnow()
    row = dict(
        account_id=account_id,
        status="queued",
        selection={},
        actions=[{"type": "add_tags", "tags": ["x"]}],
        as_of=now,
        created_at=now,
    )
    return conn.execute(
        sa.insert(t.jobs).values(**{**row, **values}).returning(t.jobs.c.id)
    ).scalar_one()


def test_doctor_and_readyz_report_problem_jobs(db_url, engine, api, paused, account):
    stuck_before = api.get("/readyz").json()["jobs"]["stuck"]
    now = t.utcnow()
    hour = timedelta(hours=1)
    with engine.begin() as conn:
        ids = {
            "stuck": _job(
                conn,
                account[0],
                status="running",
                lease_owner="gone:1",
                lease_until=now - timedelta(minutes=5),
                started_at=now - hour,
                attempts=2,
                total=10,
                processed=4,
            ),
            "overdue": _job(conn, account[0], created_at=now - hour),
            "failed": _job(conn, account[0], status="failed", finished_at=now - hour, error="boom"),
            "restarted": _job(
                conn,
                account[0],
                status="running",
                lease_owner="w:5",
                lease_until=now + hour,
                attempts=5,
            ),
            # none of these is a problem
            "alive": _job(
                conn,
                account[0],
                status="running",
                lease_owner="w:1",
                lease_until=now + hour,
                created_at=now - hour,
            ),
            "later": _job(conn, account[0], created_at=now - hour, run_at=now + hour),
            "old failure": _job(
                conn, account[0], status="failed", finished_at=now - 3 * 24 * hour, error="old"
            ),
        }
    try:
        ready = api.get("/readyz")  # counts the stuck job, and stays ready
        assert ready.status_code == 200 and ready.json()["jobs"]["stuck"] == stuck_before + 1

        code, output = doctor(db_url, "--json", "--limit", "10000")
        assert code == 1
        report = json.loads(output)
        kinds = ("stuck", "overdue", "restarted", "failed")
        assert not report["ok"] and set(kinds) <= set(report["problems"])
        assert report["checks"]["database"]["ok"] and report["checks"]["migrations"]["ok"]
        listed = {kind: {j["id"] for j in found["jobs"]} for kind, found in report["jobs"].items()}
        for kind in kinds:  # each where it belongs, and nowhere else
            assert listed[kind] & set(ids.values()) == {ids[kind]}, kind
        stuck = next(j for j in report["jobs"]["stuck"]["jobs"] if j["id"] == ids["stuck"])
        assert (
            stuck["attempts"] == 2 and stuck["processed"] == 4 and stuck["lease_owner"] == "gone:1"
        )

        code, output = doctor(db_url, "--limit", "10000")
        assert code == 1
        assert f"job {ids['stuck']} (account {account[0]}): 4/10 processed, attempt 2" in output
        assert "lease of gone:1 expired" in output and "boom" in output
        assert "something is wrong" in output
    finally:
        with engine.begin() as conn:
            conn.execute(sa.delete(t.jobs).where(t.jobs.c.id.in_(list(ids.values()))))


def test_doctor_on_a_healthy_and_on_an_unmigrated_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    command.upgrade(alembic_config(url), "0001")
    code, output = doctor(url)
    assert code == 1 and "migrations  PROBLEM  at 0001, head is" in output
    upgrade(url)
    code, output = doctor(url)
    assert code == 0, output
    assert output.splitlines()[0] == f"database    ok       {url}"
    assert output.splitlines()[-1] == "healthy"
    code, output = doctor(f"sqlite:///{tmp_path / 'missing.db'}", "--json")
    assert code == 1 and json.loads(output)["problems"] == ["database"]
    assert not (tmp_path / "missing.db").exists()


def test_database_outage_past_the_retries_leaves_the_job_to_its_lease(
    db_url, engine, api, paused, account, monkeypatch
):
    client = Scoped(api, account[1])
    client.load(*[{"email": f"c{i}@outage.example", "score": 0} for i in range(3)])
    job_id = client.post(
        "/v1/jobs",
        json={"selection": {}, "actions": [{"type": "set_score", "mode": "add", "value": 1}]},
    ).json()["id"]
    settings = make_settings(db_url, job_chunk_size=1, job_lease_s=0.2)
    chunk = job_runner._chunk
    calls = {"n": 0, "down": True}

    def flaky_chunk(conn, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 1 and calls["down"]:  # the database goes away after one chunk
            orig = Exception("server closed the connection unexpectedly")
            raise sa.exc.OperationalError("UPDATE …", {}, orig, connection_invalidated=True)
        return chunk(conn, *args, **kwargs)

    monkeypatch.setattr(job_runner, "_chunk", flaky_chunk)
    monkeypatch.setattr(job_runner, "MAX_CHUNK_RETRIES", 2)
    assert job_runner.run_job(engine, job_id, settings) == "interrupted"
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "running" and job["error"] is None, job  # not failed
    assert job["processed"] == 1 and job["attempts"] == 1
    time.sleep(0.25)  # its lease expires: nobody renews it

    code, output = doctor(db_url, "--json", "--stuck-after", "0", "--limit", "10000")
    stuck = {j["id"] for j in json.loads(output)["jobs"]["stuck"]["jobs"]}
    assert code == 1 and job_id in stuck

    calls["down"] = False  # the database is back; the lease has expired: claimed again
    assert job_runner.run_job(engine, job_id, settings) == "succeeded"
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded" and job["attempts"] == 2
    assert job["processed"] == job["total"] == job["actions"][0]["affected"] == 3
    assert client.count({"filter": {"field": "score", "op": "eq", "value": 1}}) == 3
