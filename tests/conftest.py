"""Fixtures: real databases (SQLite always; PostgreSQL when AUDIENCE_TEST_DATABASE_URL is
set), one fresh database per test session, one fresh account per test (accounts are
isolated, so tests never see each other's data)."""

import os
import secrets
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.auth import create_account
from app.cli import app as cli
from app.config import Settings, get_settings
from app.db import make_engine, normalize_url
from app.main import create_app
from app.migrate import upgrade

# Servers and workers (and so the arq workers tests start) refuse to start without a
# strong link secret: the test session's own, random.
os.environ.setdefault("AUDIENCE_LINK_SECRET", secrets.token_hex(32))
PG_URL = os.environ.get("AUDIENCE_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("AUDIENCE_TEST_REDIS_URL")


def free_port() -> int:
    """A TCP port nothing listens on now, for a server a test starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_database(base_url: str) -> Iterator[str]:
    """A new database on the server of `base_url`, dropped afterwards."""
    name = f"audience_test_{uuid.uuid4().hex[:10]}"
    url = sa.make_url(normalize_url(base_url))
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'audience.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    if not PG_URL:
        pytest.skip("PostgreSQL tests need AUDIENCE_TEST_DATABASE_URL")
    gen = _pg_database(PG_URL)
    url = next(gen)
    upgrade(url)
    yield url
    gen.close()


@contextmanager
def login_role(pg_url: str) -> Iterator[str]:
    """A LOGIN role that is only a member of audience_app, made by the deployment's own
    script (deploy/postgres-roles.sh) when psql is at hand; its URL on pg_url's database,
    dropped afterwards. How the API and workers log in (compose.yaml), and the one way
    that works behind a transaction pooler too: PgBouncer does not pass on the `options`
    startup parameter, so `-c role=audience_app` cannot choose the role."""
    name = f"audience_login_{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    url = sa.make_url(normalize_url(pg_url))
    script = Path(__file__).parents[1] / "deploy" / "postgres-roles.sh"
    owner = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    if shutil.which("psql"):
        env = {
            **os.environ,
            "PGHOST": url.host or "",
            "PGPORT": str(url.port or 5432),
            "PGUSER": url.username or "",
            "PGPASSWORD": url.password or "",
            "PGDATABASE": url.database or "",
            "AUDIENCE_DB_USER": name,
            "AUDIENCE_DB_PASSWORD": password,
        }
        for _ in range(2):  # compose runs it at every start: it must be idempotent
            subprocess.run(["sh", str(script)], env=env, check=True, capture_output=True)
    else:
        with owner.connect() as conn:
            conn.exec_driver_sql(
                f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{password}' IN ROLE audience_app"
            )
    try:
        yield url.set(username=name, password=password).render_as_string(hide_password=False)
    finally:
        with owner.connect() as conn:
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (name,),
            )
            conn.exec_driver_sql(f'DROP ROLE "{name}"')
        owner.dispose()


@pytest.fixture(scope="session")
def app_login_url(pg_url) -> Iterator[str]:
    """The test database's URL as the session's login role (see login_role)."""
    with login_role(pg_url) as url:
        yield url


@pytest.fixture(
    scope="session", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def db_url(request) -> str:
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture(scope="session")
def engine(db_url):
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def doctor(database_url: str, *args: str) -> tuple[int, str]:
    """`audience doctor ARGS` on this database, without Redis: (exit status, output)."""
    get_settings.cache_clear()
    try:
        env = {"AUDIENCE_DATABASE_URL": database_url, "AUDIENCE_REDIS_URL": None}
        result = CliRunner().invoke(cli, ["doctor", *args], env=env)
    finally:
        get_settings.cache_clear()
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def make_settings(db_url: str, **overrides) -> Settings:
    values = dict(
        database_url=db_url,
        redis_url=None,
        job_poll_s=0.05,
        job_chunk_size=7,
        job_lease_s=30,
        demo=False,
        log_level="WARNING",
        rate_limit_per_s=0,  # tests/integration/test_ratelimit.py turns it on
    )
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
def app_engine(request, db_url, engine) -> Iterator[sa.Engine]:
    """The engine of the app under test: on PostgreSQL logged in as a member of
    audience_app, as it is deployed, so that every test through the API (jobs included)
    runs under row-level security; the session's `engine` (the tables' owner) serves the
    tests' own look-ups."""
    if not db_url.startswith("postgresql"):
        yield engine
        return
    with app_role_engine(request.getfixturevalue("app_login_url"), pool_size=10) as role_engine:
        yield role_engine


@pytest.fixture(scope="session")
def api(db_url, app_engine) -> Iterator[TestClient]:
    """The app on this database, in-process job runner started."""
    app = create_app(make_settings(db_url), engine=app_engine)
    with TestClient(app) as client:
        yield client


@contextmanager
def app_role_engine(login_url: str, pool_size: int) -> Iterator[sa.Engine]:
    """An engine on `login_url` (app_login_url), checked to be held by row-level security:
    a member of audience_app, neither superuser nor BYPASSRLS."""
    engine = make_engine(login_url, pool_size=pool_size)
    try:
        with engine.connect() as conn:
            held = conn.exec_driver_sql(
                "SELECT pg_has_role(current_user, 'audience_app', 'MEMBER')"
                " AND NOT rolsuper AND NOT rolbypassrls FROM pg_roles WHERE rolname = current_user"
            ).scalar()
            assert held, "the app's login role must be held by row-level security"
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def account(engine) -> tuple[int, str]:
    with engine.begin() as conn:
        return create_account(conn, f"test-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def client(api: TestClient, account) -> TestClient:
    """A client whose requests carry this test's fresh account key."""
    return Scoped(api, account[1])


class Scoped:
    """Wraps a TestClient, adding the Authorization header; fails loudly on 5xx."""

    def __init__(self, client: TestClient, key: str):
        self._client = client
        self.key = key
        self.headers = {"Authorization": f"Bearer {key}"}

    def request(self, method: str, url: str, **kw):
        headers = {**self.headers, **kw.pop("headers", {})}
        response = self._client.request(method, url, headers=headers, **kw)
        assert response.status_code < 500, response.text
        return response

    def get(self, url, **kw):
        return self.request("GET", url, **kw)

    def post(self, url, **kw):
        return self.request("POST", url, **kw)

    def put(self, url, **kw):
        return self.request("PUT", url, **kw)

    def delete(self, url, **kw):
        return self.request("DELETE", url, **kw)

    # helpers used across tests
    def load(self, *contacts: dict) -> dict:
        r = self.post("/v1/contacts", json={"contacts": list(contacts)})
        assert r.status_code == 200, r.text
        return r.json()

    def ids(self, *emails: str) -> list[int]:
        """Contact ids by e-mail, through the public API (preview)."""
        spec = {
            "filter": {"field": "email", "op": "in", "value": list(emails)},
            "deleted": "include",
        }
        r = self.post("/v1/selections/preview", json={"selection": spec, "limit": 1000})
        by_email = {c["email"]: c["id"] for c in r.json()["contacts"]}
        return [by_email[e.lower()] for e in emails]

    def count(self, spec: dict) -> int:
        r = self.post("/v1/selections/count", json=spec)
        assert r.status_code == 200, r.text
        return r.json()["total"]

    def wait(self, job_id: int, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            job = self.get(f"/v1/jobs/{job_id}").json()
            if job["status"] in ("succeeded", "failed", "cancelled"):
                return job
            assert time.monotonic() < deadline, f"job {job_id} still {job['status']}"
            time.sleep(0.05)

    def run(self, selection: dict, actions: list[dict], timeout: float = 60, **extra) -> dict:
        r = self.post("/v1/jobs", json={"selection": selection, "actions": actions, **extra})
        assert r.status_code == 202, r.text
        return self.wait(r.json()["id"], timeout)


@pytest.fixture
def solo_app(db_url, app_engine, api):
    """make(**settings) -> a TestClient of an app with those settings and the only job
    runner on this database (the session's is paused: two runners would race for jobs)."""
    api.app.state.runner.stop()
    clients: list[TestClient] = []
    session_engine = app_engine

    def make(app_engine=None, **overrides) -> TestClient:
        settings = make_settings(db_url, **overrides)
        app = create_app(settings, engine=app_engine or session_engine)
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)
    api.app.state.runner.start()
