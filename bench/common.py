"""Shared bench plumbing: a seeded database (PostgreSQL, or a SQLite file), a running API,
timing."""

import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from app import tables as t
from app.auth import create_account, hash_key, new_key
from app.db import make_engine, normalize_url
from app.migrate import upgrade

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/audience_bench"
AUDIENCE = str(Path(sys.executable).parent / "audience")


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def database(url: str) -> sa.Engine:
    """Create the bench database if missing, migrate it, return an engine."""
    if is_sqlite(url):
        upgrade(url)  # creates the file
        return make_engine(url)
    u = sa.make_url(normalize_url(url))
    admin = sa.create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(
            sa.text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": u.database}
        ).first()
        if not exists:
            conn.exec_driver_sql(f'CREATE DATABASE "{u.database}"')
    admin.dispose()
    upgrade(url)
    return make_engine(url)


def seeded_account(engine: sa.Engine, contacts: int) -> tuple[int, str]:
    """An account named 'bench-N' with N seeded contacts (seeded once, reused), and a
    fresh API key for it."""
    account_id, _ = seed_account(engine, contacts)
    return account_id, api_key(engine, account_id)


def seed_account(engine: sa.Engine, contacts: int) -> tuple[int, dict[str, float] | None]:
    """The account 'bench-N', seeded with N contacts and VACUUM ANALYZEd on first use;
    with how long each took (seconds, `seed` and `vacuum`), or None when it was there
    already."""
    name = f"bench-{contacts}"
    with engine.begin() as conn:
        account_id = conn.execute(
            sa.select(t.accounts.c.id).where(t.accounts.c.name == name)
        ).scalar_one_or_none()
    if account_id is not None:
        return account_id, None
    from app.seed import seed

    with engine.begin() as conn:
        account_id, _ = create_account(conn, name)
    started = time.perf_counter()
    seed(engine, account_id, contacts, progress=sys.stderr.isatty(), seed=42)  # ANALYZEs SQLite
    seconds = {"seed": time.perf_counter() - started, "vacuum": 0.0}
    print(f"seeded {contacts:,} contacts in {seconds['seed']:.0f} s", flush=True)
    if engine.dialect.name == "postgresql":
        started = time.perf_counter()
        raw = engine.raw_connection()
        try:
            raw.driver_connection.autocommit = True
            raw.driver_connection.execute("VACUUM ANALYZE")
        finally:
            raw.close()
        seconds["vacuum"] = time.perf_counter() - started
    return account_id, seconds


def api_key(engine: sa.Engine, account_id: int) -> str:
    """A fresh API key of the account."""
    key = new_key()
    with engine.begin() as conn:
        conn.execute(
            sa.insert(t.api_keys).values(
                account_id=account_id,
                key_hash=hash_key(key),
                prefix=key[:8],
                created_at=t.utcnow(),
            )
        )
    return key


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`audience serve` (and optionally workers) as real processes."""

    def __init__(self, url: str, redis_url: str | None = None, **env):
        self.port = free_port()
        self.env = {
            "AUDIENCE_LINK_SECRET": secrets.token_hex(32),  # unless the caller set one
            **os.environ,
            "AUDIENCE_DATABASE_URL": url,
            "AUDIENCE_LOG_LEVEL": "WARNING",
            **{f"AUDIENCE_{k.upper()}": str(v) for k, v in env.items()},
        }
        if redis_url:
            self.env["AUDIENCE_REDIS_URL"] = redis_url
        else:
            self.env.pop("AUDIENCE_REDIS_URL", None)
        self.procs: list[subprocess.Popen] = []

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self.procs.append(
            subprocess.Popen(
                [AUDIENCE, "serve", "--port", str(self.port)],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the API did not start")

    def worker(self) -> subprocess.Popen:
        proc = subprocess.Popen(
            [AUDIENCE, "worker"], env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.procs.append(proc)
        return proc

    def __exit__(self, *exc):
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def timed(fn) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def table(headers: list[str], rows: list[list]) -> str:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    line = "| " + " | ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = [
        "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
        for r in rows
    ]
    return "\n".join([line, sep, *body])


# --- jobs through a real API and real workers ------------------------------------------

BENCH_REDIS_URL = "redis://127.0.0.1:6379/11"  # not the tests' database (15)
HEALTH_KEY = "arq:queue:health-check"  # arq writes it on a worker's first poll


def vm_hwm_kib(pid: int) -> int:
    """Peak resident set size (VmHWM) of a live process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for pid {pid}")


def start_worker(server: Server, redis_url: str, old=None, timeout: float = 60):
    """Stop `old` (a worker process) if given, start one `audience worker` and return once
    it polls the queue."""
    import redis

    if old is not None:
        old.terminate()
        try:
            old.wait(15)
        except subprocess.TimeoutExpired:
            old.kill()
            old.wait()
    client = redis.Redis.from_url(redis_url)
    try:
        client.delete(HEALTH_KEY)
        proc = server.worker()
        deadline = time.monotonic() + timeout
        while not client.exists(HEALTH_KEY):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the worker did not start")
            time.sleep(0.05)
    finally:
        client.close()
    return proc


class JobFailed(RuntimeError):
    def __init__(self, job: dict):
        super().__init__(f"job {job['id']} {job['status']}: {job['error']}")
        self.job = job


def run_job(http, selection: dict, actions: list[dict], poll: float = 0.05) -> tuple[float, dict]:
    """POST /v1/jobs and poll GET /v1/jobs/{id} until it ends: (submit → end seconds, job).
    Raises JobFailed when it did not succeed."""
    started = time.perf_counter()
    r = http.post("/v1/jobs", json={"selection": selection, "actions": actions})
    if r.status_code != 202:
        raise RuntimeError(f"job refused: {r.status_code} {r.text}")
    job_id = r.json()["id"]
    while True:
        job = http.get(f"/v1/jobs/{job_id}").raise_for_status().json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            elapsed = time.perf_counter() - started
            if job["status"] != "succeeded":
                raise JobFailed(job)
            return elapsed, job
        time.sleep(poll)


def maintain(engine: sa.Engine, *tables: str) -> None:
    """VACUUM (ANALYZE) the tables and CHECKPOINT, so a measurement starts without dead
    rows or dirty buffers left by the previous one."""
    raw = engine.raw_connection()
    try:
        raw.driver_connection.autocommit = True
        for name in tables:
            raw.driver_connection.execute(f"VACUUM (ANALYZE) {name}")
        raw.driver_connection.execute("CHECKPOINT")
    finally:
        raw.close()


def delete_jobs(engine: sa.Engine, job_ids: list[int]) -> None:
    """Remove the bench's jobs (their snapshots and outputs go with them)."""
    if not job_ids:
        return
    with engine.begin() as conn:
        for table in ("job_members", "job_output", "change_log"):  # no foreign key
            conn.execute(sa.text(f"DELETE FROM {table} WHERE job_id = ANY(:ids)"), {"ids": job_ids})
        conn.execute(sa.text("DELETE FROM jobs WHERE id = ANY(:ids)"), {"ids": job_ids})


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"
