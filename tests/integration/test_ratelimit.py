"""Per-account rate limits on count, preview and job submission: 429 with Retry-After,
in the contract's error shape; other accounts and other kinds keep their own buckets.
Local buckets always; the shared Redis buckets when Redis is reachable."""

import uuid

import pytest
from fastapi.testclient import TestClient

from app.auth import create_account
from app.main import create_app
from tests.conftest import REDIS_URL, Scoped, make_settings

SPEC = {"filter": {"field": "score", "op": "gt", "value": 0}}


@pytest.fixture(params=["local", "redis"])
def limited(request, db_url, engine):
    """make() -> a client of a fresh account on an app allowing 3 requests, then 1 a
    minute, per kind."""
    redis_url = None
    if request.param == "redis":
        if not REDIS_URL:
            pytest.skip("needs AUDIENCE_TEST_REDIS_URL")
        redis_url = REDIS_URL
        import redis

        # Account ids restart with each test database; their old buckets must not linger.
        with redis.Redis.from_url(redis_url) as r:
            for key in r.scan_iter("audience:rate:*"):
                r.delete(key)
    settings = make_settings(db_url, rate_limit_per_s=1 / 60, rate_limit_burst=3)
    app = create_app(settings, engine=engine, start_runner=False)
    if redis_url:  # only the limiter talks to Redis: no job here needs a worker
        app.state.settings = settings.model_copy(update={"redis_url": redis_url})
    with TestClient(app) as api:

        def make() -> Scoped:
            with engine.begin() as conn:
                _, key = create_account(conn, f"rl-{uuid.uuid4().hex[:8]}")
            return Scoped(api, key)

        make.redis_url = redis_url
        yield make


def test_count_and_preview_share_a_bucket(limited):
    client = limited()
    assert client.post("/v1/selections/count", json=SPEC).status_code == 200
    assert client.post("/v1/selections/preview", json={"selection": SPEC}).status_code == 200
    assert client.post("/v1/selections/count", json=SPEC).status_code == 200
    r = client.post("/v1/selections/count", json=SPEC)
    assert r.status_code == 429
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    error = r.json()["error"]
    assert error["code"] == "rate_limited" and "retry" in error["message"]
    assert error["details"] == []
    r = client.post("/v1/selections/preview", json={"selection": SPEC})
    assert r.status_code == 429
    if limited.redis_url:  # the bucket is Redis's, shared by every API process
        import redis

        keys = redis.Redis.from_url(limited.redis_url).keys("audience:rate:*:selections")
        assert keys


def test_accounts_and_kinds_have_their_own_buckets(limited):
    first, second = limited(), limited()
    for _ in range(3):
        assert first.post("/v1/selections/count", json=SPEC).status_code == 200
    assert first.post("/v1/selections/count", json=SPEC).status_code == 429
    assert second.post("/v1/selections/count", json=SPEC).status_code == 200
    job = {"selection": SPEC, "actions": [{"type": "add_tags", "tags": ["x"]}]}
    for _ in range(3):
        assert first.post("/v1/jobs?dry_run=true", json=job).status_code == 200
    r = first.post("/v1/jobs", json=job)
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
    assert first.get("/v1/jobs").status_code == 200  # reading is not limited


def test_a_bad_key_is_401_not_429(limited):
    client = limited()
    for _ in range(5):
        r = client.post("/v1/selections/count", json=SPEC, headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401


def test_limit_off(db_url, engine):
    settings = make_settings(db_url, rate_limit_per_s=0, rate_limit_burst=1)
    app = create_app(settings, engine=engine, start_runner=False)
    with engine.begin() as conn:
        _, key = create_account(conn, f"rl-{uuid.uuid4().hex[:8]}")
    with TestClient(app) as api:
        client = Scoped(api, key)
        for _ in range(5):
            assert client.post("/v1/selections/count", json=SPEC).status_code == 200
