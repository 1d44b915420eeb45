"""Webhooks: a real HTTP receiver on 127.0.0.1 gets signed deliveries of a job's events,
from the in-process runner (SQLite and PostgreSQL) and from a real arq worker (PostgreSQL
and Redis); a failed delivery is sent again with the same id; private targets are refused
without AUDIENCE_WEBHOOK_ALLOW_PRIVATE; another account sees and deletes nothing."""

import hashlib
import hmac
import json
import os
import shutil
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from fastapi.testclient import TestClient

from app.auth import create_account
from app.config import Settings
from app.main import create_app
from app.webhooks import delivery
from tests.conftest import REDIS_URL, Scoped, make_settings

FAST = dict(webhook_allow_private=True, webhook_retry_base_s=0.2, webhook_poll_s=0.05)


class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST and answers the next status of
    `answers` (then 200 for ever)."""

    def __init__(self, answers: list[int] | None = None):
        self.answers = list(answers or [])
        self.received: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body}
                )
                status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait(self, n: int, timeout: float = 30) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.received) < n:
            assert time.monotonic() < deadline, f"{len(self.received)} of {n} deliveries came"
            time.sleep(0.02)
        return self.received

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made: list[Receiver] = []

    def make(answers: list[int] | None = None) -> Receiver:
        made.append(Receiver(answers))
        return made[-1]

    yield make
    for r in made:
        r.close()


def verify(secret: str, delivered: dict) -> dict:
    """What a receiver does: check Audience-Signature, then read the body."""
    fields = dict(p.split("=", 1) for p in delivered["headers"]["Audience-Signature"].split(","))
    signed = f"{fields['t']}.".encode() + delivered["body"]
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, fields["v1"])
    assert abs(int(fields["t"]) - time.time()) < 60
    return json.loads(delivered["body"])


def recorded(client, webhook_id: int, n: int, timeout: float = 10) -> list[dict]:
    """The webhook's attempts, once there are `n` (an attempt is recorded just after the
    receiver answered it)."""
    deadline = time.monotonic() + timeout
    while True:
        found = client.get(f"/v1/webhooks/{webhook_id}/deliveries").json()["deliveries"]
        if len(found) >= n or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def create(client, url: str, events: list[str] | None = None) -> dict:
    body = {"url": url} if events is None else {"url": url, "events": events}
    r = client.post("/v1/webhooks", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def test_a_job_is_delivered_signed(solo_app, account, receiver):
    client = Scoped(solo_app(**FAST), account[1])
    hook = receiver()
    made = create(client, hook.url)
    assert made["secret"].startswith("whsec_") and made["events"] == [
        "job.started",
        "job.succeeded",
        "job.failed",
        "job.cancelled",
    ]
    client.load({"email": "a@example.com"}, {"email": "b@example.com"})
    job = client.run({}, [{"type": "add_tags", "tags": ["hooked"]}])
    assert job["status"] == "succeeded"

    bodies = [verify(made["secret"], d) for d in hook.wait(2)]
    assert [b["type"] for b in bodies] == ["job.started", "job.succeeded"]
    assert len({b["id"] for b in bodies}) == 2
    started, succeeded = (b["data"] for b in bodies)
    assert started["id"] == succeeded["id"] == job["id"]
    assert started["status"] == "running"
    assert succeeded == client.get(f"/v1/jobs/{job['id']}").json()  # as GET answers it
    assert hook.received[0]["headers"]["Content-Type"] == "application/json"

    deliveries = recorded(client, made["id"], 2)
    assert [(d["event"], d["status"], d["response_code"], d["attempt"]) for d in deliveries] == [
        ("job.succeeded", "succeeded", 200, 1),
        ("job.started", "succeeded", 200, 1),
    ]
    assert deliveries[0]["event_id"] == bodies[1]["id"] and deliveries[0]["job_id"] == job["id"]
    assert deliveries[0]["error"] is None and deliveries[0]["next_attempt_at"] is None


def test_a_failed_delivery_comes_again_with_the_same_id(solo_app, account, receiver):
    client = Scoped(solo_app(**FAST), account[1])
    hook = receiver(answers=[500])
    made = create(client, hook.url, ["job.succeeded"])
    client.load({"email": "a@example.com"})
    job = client.run({}, [{"type": "add_tags", "tags": ["x"]}])
    first, second = (verify(made["secret"], d) for d in hook.wait(2))
    assert first == second and first["type"] == "job.succeeded"
    assert first["data"]["id"] == job["id"]

    attempts = recorded(client, made["id"], 2)
    found = [(d["attempt"], d["status"], d["response_code"], d["event_id"]) for d in attempts]
    assert found == [(2, "succeeded", 200, first["id"]), (1, "failed", 500, first["id"])]
    assert attempts[1]["error"] == "the receiver answered 500"
    # one page at a time
    one = client.get(f"/v1/webhooks/{made['id']}/deliveries?limit=1").json()
    assert one["next_before"] == attempts[0]["id"]
    older = client.get(f"/v1/webhooks/{made['id']}/deliveries?limit=1&before={one['next_before']}")
    assert older.json()["deliveries"][0]["attempt"] == 1


def test_a_cancelled_job_is_delivered(solo_app, account, receiver):
    client = Scoped(solo_app(**FAST), account[1])
    hook = receiver()
    made = create(client, hook.url, ["job.cancelled"])
    r = client.post(
        "/v1/jobs",
        json={
            "selection": {},
            "actions": [{"type": "add_tags", "tags": ["x"]}],
            "run_at": "2099-01-01T00:00:00Z",
        },
    )
    assert client.post(f"/v1/jobs/{r.json()['id']}/cancel").status_code == 200
    (body,) = (verify(made["secret"], d) for d in hook.wait(1))
    assert body["type"] == "job.cancelled" and body["data"]["status"] == "cancelled"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "https://192.168.0.1/",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/",
        "http://100.64.0.1/",
    ],
)
def test_private_targets_are_refused(client, url):
    r = client.post("/v1/webhooks", json={"url": url})
    assert r.status_code == 422, r.text
    (detail,) = r.json()["error"]["details"]
    assert detail["path"] == "url" and "AUDIENCE_WEBHOOK_ALLOW_PRIVATE" in detail["message"]
    assert client.get("/v1/webhooks").json() == {"webhooks": []}


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": "hooks.example.com"}, "url"),
        ({"url": "http:///nohost"}, "url"),
        ({"url": "https://example.com", "events": ["job.exploded"]}, "events[0]"),
        ({"url": "https://example.com", "events": []}, "events"),
        ({"events": ["job.failed"]}, "url"),
    ],
)
def test_bad_webhooks_are_422_at_their_path(client, body, path):
    r = client.post("/v1/webhooks", json=body)
    assert r.status_code == 422, r.text
    assert path in {d["path"] for d in r.json()["error"]["details"]}


def test_a_public_address_is_accepted(client):
    made = create(client, "https://93.184.215.14/hook", ["job.failed"])
    assert made["url"] == "https://93.184.215.14/hook" and made["events"] == ["job.failed"]


def test_the_secret_is_shown_once_and_accounts_are_isolated(api, client, engine):
    made = create(client, "https://93.184.215.14/a")
    shown = client.get(f"/v1/webhooks/{made['id']}").json()
    assert shown == {k: v for k, v in made.items() if k != "secret"}
    assert client.get("/v1/webhooks").json() == {"webhooks": [shown]}

    with engine.begin() as conn:
        other = Scoped(api, create_account(conn, "other")[1])
    assert other.get("/v1/webhooks").json() == {"webhooks": []}
    for method, path in [
        ("GET", f"/v1/webhooks/{made['id']}"),
        ("GET", f"/v1/webhooks/{made['id']}/deliveries"),
        ("DELETE", f"/v1/webhooks/{made['id']}"),
    ]:
        r = other.request(method, path)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert client.get(f"/v1/webhooks/{made['id']}").status_code == 200

    assert client.delete(f"/v1/webhooks/{made['id']}").status_code == 204
    assert client.get(f"/v1/webhooks/{made['id']}").status_code == 404
    assert client.delete(f"/v1/webhooks/{made['id']}").status_code == 404


def test_a_read_key_may_list_but_not_create(api, client):
    read = client.post("/v1/keys", json={"label": "dashboard", "scope": "read"}).json()["key"]
    reader = Scoped(api, read)
    assert reader.get("/v1/webhooks").status_code == 200
    r = reader.post("/v1/webhooks", json={"url": "https://93.184.215.14/"})
    assert r.status_code == 403


def test_the_address_is_checked_again_at_delivery(receiver):
    hook = receiver()
    strict = Settings(webhook_allow_private=False, webhook_timeout_s=2)
    outcome = delivery.post(hook.url, b"{}", "s", settings=strict)
    assert not outcome.ok and "loopback" in outcome.error and hook.received == []
    lenient = Settings(webhook_allow_private=True, webhook_timeout_s=2)
    assert delivery.post(hook.url, b"{}", "s", settings=lenient).ok


def test_a_redirect_is_not_followed(receiver):
    hook = receiver(answers=[302])
    outcome = delivery.post(hook.url, b"{}", "s", settings=Settings(**FAST))
    assert not outcome.ok and outcome.response_code == 302 and len(hook.received) == 1


def test_a_delivery_claimed_by_a_worker_that_died_is_sent_again(
    solo_app, account, receiver, app_engine
):
    """A worker claims a delivery and dies before sending it: once its lease passes,
    the next loop sends it."""
    settings = make_settings("sqlite://", **FAST)
    client = Scoped(solo_app(**{**FAST, "webhook_poll_s": 3600}), account[1])
    hook = receiver()
    made = create(client, hook.url, ["job.cancelled"])
    r = client.post(
        "/v1/jobs",
        json={
            "selection": {},
            "actions": [{"type": "add_tags", "tags": ["x"]}],
            "run_at": "2099-01-01T00:00:00Z",
        },
    )
    client.post(f"/v1/jobs/{r.json()['id']}/cancel")
    with app_engine.begin() as conn:  # the worker that dies
        (claimed,) = [
            c
            for c in delivery.claim_due(conn, limit=100, lease_s=0.3)
            if c.account_id == account[0]
        ]
    with app_engine.begin() as conn:
        assert not [
            c for c in delivery.claim_due(conn, limit=100, lease_s=60) if c.account_id == account[0]
        ]
    time.sleep(0.4)
    with app_engine.begin() as conn:
        (again,) = [
            c for c in delivery.claim_due(conn, limit=100, lease_s=60) if c.account_id == account[0]
        ]
    assert again.id == claimed.id and again.attempt == 2
    assert delivery.deliver(app_engine, again, settings) is True
    (body,) = (verify(made["secret"], d) for d in hook.wait(1))
    assert body["type"] == "job.cancelled"


# --- PostgreSQL, Redis and a real `audience worker` ------------------------------------


@pytest.mark.postgres
@pytest.mark.redis
def test_a_worker_delivers(db_url, api, account, receiver):
    if not db_url.startswith("postgresql"):
        pytest.skip("the worker tests run on PostgreSQL")
    if not REDIS_URL or not shutil.which("redis-server"):
        pytest.skip("needs AUDIENCE_TEST_REDIS_URL and redis-server")
    from tests.conftest import free_port
    from tests.integration.test_worker import Redis, Worker

    api.app.state.runner.stop()
    redis = Redis()
    redis.start()
    env = {
        **os.environ,
        "AUDIENCE_DATABASE_URL": db_url,
        "AUDIENCE_REDIS_URL": redis.url,
        "AUDIENCE_LOG_LEVEL": "WARNING",
        "AUDIENCE_WEBHOOK_ALLOW_PRIVATE": "true",
        "AUDIENCE_WEBHOOK_RETRY_BASE_S": "0.2",
        "AUDIENCE_WEBHOOK_POLL_S": "0.1",
        "AUDIENCE_WORKER_METRICS_PORT": str(metrics_port := free_port()),
    }
    worker = Worker(env)
    try:
        settings = make_settings(db_url, redis_url=redis.url, webhook_allow_private=True)
        with TestClient(create_app(settings)) as app_client:
            client = Scoped(app_client, account[1])
            hook = receiver(answers=[503])
            made = create(client, hook.url, ["job.started", "job.succeeded"])
            client.load({"email": "a@example.com"})
            worker.start()
            job = client.run({}, [{"type": "add_tags", "tags": ["w"]}])
            bodies = [verify(made["secret"], d) for d in hook.wait(3)]
            by_type = {}
            for b in bodies:
                by_type.setdefault(b["type"], []).append(b["id"])
            assert len(by_type["job.started"] + by_type["job.succeeded"]) == 3
            retried = [ids for ids in by_type.values() if len(ids) == 2]
            assert len(retried) == 1 and retried[0][0] == retried[0][1]
            assert bodies[-1]["data"]["id"] == job["id"]
            # the worker serves what it did on its own metrics port
            deadline = time.monotonic() + 10
            while True:
                text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
                if 'audience_webhook_deliveries_total{outcome="succeeded"} 2.0' in text:
                    break
                assert time.monotonic() < deadline, text
                time.sleep(0.1)
            assert 'audience_webhook_deliveries_total{outcome="failed"} 1.0' in text
            assert 'audience_job_rows_applied_total{kind="actions"} 1.0' in text
    finally:
        worker.stop()
        redis.stop()
        api.app.state.runner.start()


def test_a_delivery_is_given_up_after_the_retry_window(solo_app, account, receiver):
    window = {**FAST, "webhook_retry_base_s": 0.1, "webhook_retry_window_s": 0.5}
    client = Scoped(solo_app(**window), account[1])
    hook = receiver(answers=[500] * 100)
    made = create(client, hook.url, ["job.succeeded"])
    client.load({"email": "a@example.com"})
    client.run({}, [{"type": "add_tags", "tags": ["x"]}])
    deadline = time.monotonic() + 10
    while True:
        attempts = client.get(f"/v1/webhooks/{made['id']}/deliveries").json()["deliveries"]
        if attempts and attempts[0]["next_attempt_at"] is None:
            break  # given up
        assert time.monotonic() < deadline, attempts
        time.sleep(0.05)
    assert len(attempts) >= 2 and all(a["status"] == "failed" for a in attempts)
    assert len({a["event_id"] for a in attempts}) == 1
    n = len(hook.received)
    time.sleep(0.5)
    assert len(hook.received) == n  # nothing more is sent


def test_a_deleted_webhook_gets_nothing_more(solo_app, account, receiver, app_engine):
    client = Scoped(solo_app(**{**FAST, "webhook_poll_s": 3600}), account[1])
    hook = receiver()
    made = create(client, hook.url, ["job.cancelled"])
    r = client.post(
        "/v1/jobs",
        json={
            "selection": {},
            "actions": [{"type": "add_tags", "tags": ["x"]}],
            "run_at": "2099-01-01T00:00:00Z",
        },
    )
    client.post(f"/v1/jobs/{r.json()['id']}/cancel")
    with app_engine.begin() as conn:
        claimed = [c for c in delivery.claim_due(conn, limit=100, lease_s=60)]
    (mine,) = [c for c in claimed if c.account_id == account[0]]
    assert client.delete(f"/v1/webhooks/{made['id']}").status_code == 204
    assert delivery.deliver(app_engine, mine, make_settings("sqlite://", **FAST)) is None
    assert hook.received == []


def test_a_delivery_connects_to_the_address_it_checked(receiver, monkeypatch):
    """The name is resolved once, at delivery, and checked; the request goes to that
    address with the name in Host. A name that now resolves to a private address (DNS
    rebinding) is not called."""
    hook = receiver()
    port = hook.server.server_address[1]
    real = socket.getaddrinfo
    answers = {"receiver.test": "127.0.0.1"}

    def resolve(host, *args, **kw):
        if host in answers:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port))]
        return real(host, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    url = f"http://receiver.test:{port}/hook"
    outcome = delivery.post(url, b"{}", "s", settings=Settings(**FAST))
    assert outcome.ok, outcome
    assert hook.received[0]["headers"]["Host"] == f"receiver.test:{port}"

    strict = Settings(webhook_allow_private=False, webhook_timeout_s=2)
    outcome = delivery.post(url, b"{}", "s", settings=strict)
    assert not outcome.ok and "not a public address" in outcome.error
    assert len(hook.received) == 1
