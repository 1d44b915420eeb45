"""CSV import end to end vs a hand-written floor (COPY + one set-based upsert a table).

    python -m bench.imports [--url postgresql://…/audience_bench] [--rows 100000]

A generated CSV of `--rows` contacts (e-mail, names, city, score, birth date, two tags,
a detail) is imported twice into a fresh account through POST /v1/imports of an app in
this process (its in-process job runner applies it): once when every row is new, once
with every value changed (every row an update). Timed from the upload to the job's
success, so parsing, staging, the change log and the job's chunks are all in it.

The floor, into another fresh account: the same file COPYed into a temporary table, then
ONE INSERT … ON CONFLICT DO UPDATE for contacts, one for tags, one for contact tags and
one for details (no validation, no change log, no per-row errors): what PostgreSQL needs
at the least to do the same. Targets: at least 20,000 rows a second, and within 3× the
floor.
"""

import argparse
import tempfile
import time
import uuid

import sqlalchemy as sa
from fastapi.testclient import TestClient

from app.auth import create_account
from app.config import Settings
from app.main import create_app
from bench.common import DEFAULT_URL, database, is_sqlite, table, verdict

RATE_TARGET = 20_000
RATIO_TARGET = 3.0
HEADER = "email,first_name,last_name,city,score,birth_date,tags,detail:plan\n"


def write_csv(rows: int, version: int) -> str:
    """The file, on disk (an upload is streamed from it)."""
    f = tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False, encoding="utf-8")  # noqa: SIM115
    with f:
        f.write(HEADER)
        for i in range(rows):
            f.write(
                f"contact{i}@bench.example,Łucja{i % 500 + version},Nowak-{i % 97},"
                f"Kraków {i % 50 + version},{i % 1000 + version},19{i % 90 + 10}-0{i % 9 + 1}-1{i % 9},"
                f"t{i % 20};v{version},{'gold' if (i + version) % 2 else 'silver'}\n"
            )
    return f.name


def new_account(engine: sa.Engine) -> tuple[int, str]:
    with engine.begin() as conn:
        return create_account(conn, f"bench-imports-{uuid.uuid4().hex[:6]}")


def imported(client: TestClient, key: str, path: str) -> tuple[float, dict]:
    headers = {"Authorization": f"Bearer {key}"}
    started = time.perf_counter()
    with open(path, "rb") as f:
        r = client.post("/v1/imports", headers=headers, files={"file": ("b.csv", f, "text/csv")})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    while True:
        job = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
        if job["status"] not in ("queued", "running"):
            break
        time.sleep(0.2)
    assert job["status"] == "succeeded", job
    return time.perf_counter() - started, job


FLOOR = [
    """INSERT INTO contacts (account_id, email, first_name, last_name, city, score, birth_date,
           created_at, updated_at)
       SELECT :a, lower(email), first_name, last_name, city, score::bigint, birth_date::date,
           now(), now() FROM stage
       ON CONFLICT (account_id, email) DO UPDATE SET first_name = excluded.first_name,
           last_name = excluded.last_name, city = excluded.city, score = excluded.score,
           birth_date = excluded.birth_date, updated_at = excluded.updated_at""",
    """INSERT INTO tags (account_id, name, name_key, created_at)
       SELECT DISTINCT :a, x, lower(x), now() FROM stage, unnest(string_to_array(tags, ';')) x
       ON CONFLICT DO NOTHING""",
    """INSERT INTO contact_tags (contact_id, tag_id, account_id, added_at)
       SELECT c.id, g.id, :a, now() FROM stage s
       JOIN contacts c ON c.account_id = :a AND c.email = lower(s.email)
       CROSS JOIN unnest(string_to_array(s.tags, ';')) x
       JOIN tags g ON g.account_id = :a AND g.name_key = lower(x)
       ON CONFLICT DO NOTHING""",
    """INSERT INTO contact_details (contact_id, name, value, account_id)
       SELECT c.id, 'plan', s.plan, :a FROM stage s
       JOIN contacts c ON c.account_id = :a AND c.email = lower(s.email)
       ON CONFLICT (contact_id, name) DO UPDATE SET value = excluded.value""",
]


def floor(engine: sa.Engine, account_id: int, path: str) -> float:
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TEMP TABLE stage (email text, first_name text, last_name text, city text,"
            " score text, birth_date text, tags text, plan text) ON COMMIT DROP"
        )
        cursor = conn.connection.dbapi_connection.cursor()
        with open(path, "rb") as f, cursor.copy("COPY stage FROM STDIN (FORMAT csv, HEADER)") as cp:
            while block := f.read(1 << 16):
                cp.write(block)
        for statement in FLOOR:
            conn.execute(sa.text(statement), {"a": account_id})
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    if is_sqlite(args.url):
        raise SystemExit("the import benchmark compares with COPY: PostgreSQL only")
    engine = database(args.url)
    settings = Settings(database_url=args.url, redis_url=None, demo=False, log_level="WARNING")
    files = [write_csv(args.rows, version) for version in (0, 1)]
    rows = []
    with TestClient(create_app(settings, engine=engine)) as client:
        account_id, key = new_account(engine)
        for what, path in zip(("all new", "all updated"), files, strict=True):
            seconds, job = imported(client, key, path)
            rate = args.rows / seconds
            floor_account, _ = new_account(engine)
            if what == "all updated":
                floor(engine, floor_account, files[0])
            floor_s = floor(engine, floor_account, path)
            ratio = seconds / floor_s
            ok = rate >= RATE_TARGET and ratio <= RATIO_TARGET
            counts = f"{job['created']} created, {job['updated']} updated"
            rows.append(
                [
                    what,
                    counts,
                    f"{seconds:.2f}",
                    f"{rate:,.0f}",
                    f"{floor_s:.2f}",
                    f"{ratio:.1f}×",
                    verdict(ok),
                ]
            )
    print(f"\nImport of {args.rows:,} rows ({args.url.rsplit('/', 1)[-1]})\n")
    print(table(["run", "job", "import s", "rows/s", "floor s", "vs floor", "target"], rows))
    print(f"\ntargets: ≥ {RATE_TARGET:,} rows/s, ≤ {RATIO_TARGET}× the floor")


if __name__ == "__main__":
    main()
