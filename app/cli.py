"""The `audience` command."""

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Audience: mass contact management.", no_args_is_help=True, add_completion=False
)
accounts_app = typer.Typer(help="Accounts and API keys.", no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")

DEMO_KEY_FILE = "audience-demo.key"


def _settings():
    from pydantic import ValidationError

    from app.config import get_settings

    try:
        return get_settings()
    except ValidationError as exc:
        for error in exc.errors():
            name = "AUDIENCE_" + "_".join(str(part) for part in error["loc"]).upper()
            typer.echo(f"{name}: {error['msg']}", err=True)
        raise typer.Exit(2) from None


def _is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


@app.command()
def migrate() -> None:
    """Bring the database schema up to date (Alembic)."""
    from app.migrate import upgrade

    before, after = upgrade(_settings().database_url)
    if before == after:
        typer.echo(f"database already at the newest schema ({after})")
    else:
        typer.echo(f"database migrated from {before or 'empty'} to {after}")


def ensure_demo(engine, settings) -> str | None:
    """The embedded default's demo account: created (with demo data) on the first start,
    into a database without accounts; its key is kept beside the database so it can be
    printed at every start. None: a database with accounts of its own gets no demo."""
    import sqlalchemy as sa

    from app import tables as t
    from app.auth import account_for_key, create_account
    from app.contacts.service import count_contacts

    key_path = _database_folder(settings.database_url) / DEMO_KEY_FILE
    key = key_path.read_text().strip() if key_path.exists() else None
    with engine.begin() as conn:
        if key and account_for_key(conn, key) is not None:
            return key
        if conn.execute(sa.select(sa.func.count()).select_from(t.accounts)).scalar_one():
            # Someone's own database (accounts, no demo of ours): leave it as it is.
            return None
        account_id, key = create_account(conn, "demo", key)
    key_path.write_text(key + "\n")
    os.chmod(key_path, 0o600)
    if settings.demo_contacts > 0:
        from app.seed import seed

        seed(engine, account_id, settings.demo_contacts, progress=sys.stderr.isatty())
    with engine.connect() as conn:
        n = count_contacts(conn, account_id)
    typer.echo(f"demo account created with {n} contacts", err=True)
    return key


def _embedded_demo(settings) -> bool:
    return settings.demo and _is_sqlite(settings.database_url)


def _database_folder(url: str) -> Path:
    import sqlalchemy as sa

    database = sa.make_url(url).database
    if not database or database == ":memory:":
        return Path.cwd()
    return Path(database).resolve().parent


def with_link_secret(settings):
    """The settings a server or worker runs with: the embedded demo makes its own link
    secret (kept beside its database); anywhere else a missing, short, placeholder or
    patterned AUDIENCE_LINK_SECRET stops the start (exit status 2), as links made with it
    could be forged."""
    from app.personal_links.secret import HOW_TO, MIN_BYTES, demo_secret, secret_problem

    if not settings.link_secret and _embedded_demo(settings):
        secret = demo_secret(_database_folder(settings.database_url))
        settings = settings.model_copy(update={"link_secret": secret})
    problem = secret_problem(settings.link_secret)
    if problem is not None:
        typer.echo(
            f"AUDIENCE_LINK_SECRET {problem}: personal links made with it could be forged. "
            f"Set it to at least {MIN_BYTES} random bytes, the same for the API and every "
            f"worker, e.g.\n  {HOW_TO}",
            err=True,
        )
        raise typer.Exit(2)
    return settings


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
) -> None:
    """Run the API. With no settings: a SQLite file here, jobs in-process, a demo account."""
    import uvicorn

    from app import logs
    from app.db import make_engine
    from app.main import create_app
    from app.migrate import upgrade

    settings = with_link_secret(_settings())
    logs.setup(settings.log_level, settings.log_json)
    if _is_sqlite(settings.database_url):
        upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    address = f"http://{host}:{port}"
    key = ensure_demo(engine, settings) if _embedded_demo(settings) else None
    if key:
        typer.echo(f"demo account API key: {key}")
        typer.echo(
            f"try: curl -s -X POST {address}/v1/selections/count "
            f"-H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' "
            "-d '{}'"
        )
    elif _embedded_demo(settings):
        typer.echo("no demo account: this database has accounts of its own")
    typer.echo(f"Audience listening on {address} (API docs at {address}/docs)")
    uvicorn.run(
        create_app(settings, engine=engine), host=host, port=port, log_config=None, access_log=False
    )


@app.command()
def worker(
    burst: Annotated[bool, typer.Option(help="exit when the queue is empty")] = False,
) -> None:
    """Run an arq worker (needs AUDIENCE_REDIS_URL)."""
    from app import logs
    from app.jobs.worker import make_worker, run_forever

    settings = with_link_secret(_settings())
    logs.setup(settings.log_level, settings.log_json)
    if not settings.redis_url:
        typer.echo("AUDIENCE_REDIS_URL is not set: jobs run inside `audience serve`", err=True)
        raise typer.Exit(2)
    if burst:
        make_worker(settings, burst=True).run()
    else:
        run_forever(settings)


@app.command()
def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    stuck_after: Annotated[
        float, typer.Option(help="a lease expired this many seconds ago: stuck", min=0)
    ] = 10,
    queued_minutes: Annotated[
        float, typer.Option(help="queued and due this many minutes: overdue", min=0)
    ] = 10,
    failed_hours: Annotated[
        float, typer.Option(help="report jobs failed in the last N hours (0: none)", min=0)
    ] = 24,
    max_attempts: Annotated[
        int, typer.Option(help="a running job claimed more often than this: restarted", min=1)
    ] = 3,
    limit: Annotated[int, typer.Option(help="jobs listed of each kind", min=0)] = 20,
) -> None:
    """Check the database, its migrations, the month partitions of events (PostgreSQL), Redis
    and the jobs; exit 1 if anything is wrong.

    Jobs, of all accounts: stuck (running, but their worker stopped renewing the lease and
    nobody resumed them: are workers running?), overdue (queued, and nobody takes them),
    restarted (workers keep dying under them), failed recently."""
    from datetime import timedelta

    from app.db import make_engine
    from app.jobs.repository import job_problems

    settings = _settings()
    url = settings.database_url
    checks: dict[str, dict] = {}
    jobs: dict[str, dict] = {}
    engine = make_engine(url, **_doctor_engine_options(url))
    try:
        checks["database"] = _check_database(engine, url)
        if checks["database"]["ok"]:
            checks["migrations"] = _check_migrations(engine, url)
            if checks["migrations"]["ok"] and not _is_sqlite(url):
                checks["partitions"] = _check_partitions(engine)
            with engine.connect() as conn:
                jobs = job_problems(
                    conn,
                    stuck_after=timedelta(seconds=stuck_after),
                    queued_for=timedelta(minutes=queued_minutes),
                    failed_within=timedelta(hours=failed_hours),
                    max_attempts=max_attempts,
                    limit=limit,
                )
    finally:
        engine.dispose()
    if failed_hours == 0:
        jobs.pop("failed", None)
    checks["redis"] = _check_redis(settings.redis_url)
    problems = [name for name, check in checks.items() if not check["ok"]]
    problems += [kind for kind, found in jobs.items() if found["count"]]
    report = {"ok": not problems, "problems": problems, "checks": checks, "jobs": jobs}
    if as_json:
        typer.echo(json.dumps(report, default=lambda v: v.isoformat(), indent=2))
    else:
        _print_doctor(report, stuck_after, queued_minutes, max_attempts, failed_hours)
    if problems:
        raise typer.Exit(1)


def _doctor_engine_options(url: str) -> dict:
    if _is_sqlite(url):
        return {}
    return {"connect_args": {"connect_timeout": 5, "application_name": "audience doctor"}}


def _redacted(url: str) -> str:
    import sqlalchemy as sa

    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL we cannot parse is not shown
        return "?"


def _check_database(engine, url: str) -> dict:
    from app.jobs.repository import ping

    database = engine.url.database
    if _is_sqlite(url) and database and database != ":memory:" and not Path(database).exists():
        return {"ok": False, "detail": f"{_redacted(url)}: no such file"}  # never create it
    try:
        with engine.connect() as conn:
            ping(conn)
        return {"ok": True, "detail": _redacted(url)}
    except Exception as exc:  # noqa: BLE001 - any failure means "unreachable"
        return {"ok": False, "detail": f"{_redacted(url)}: {_one_line(exc)}"}


def _one_line(exc: Exception) -> str:
    message = " ".join(str(getattr(exc, "orig", None) or exc).split())
    return f"{type(exc).__name__}: {message}"[:500]


def _check_migrations(engine, url: str) -> dict:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from app.migrate import alembic_config

    heads = set(ScriptDirectory.from_config(alembic_config(url)).get_heads())
    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    at = ", ".join(sorted(current)) or "none"
    if current == heads:
        return {"ok": True, "detail": f"at head {at}"}
    head = ", ".join(sorted(heads))
    return {"ok": False, "detail": f"at {at}, head is {head}: run `audience migrate`"}


def _check_partitions(engine) -> dict:
    from app.events_partitions import check

    with engine.connect() as conn:
        return check(conn)


def _check_redis(url: str | None) -> dict:
    if not url:
        return {"ok": True, "detail": "not configured: jobs run in the API process"}
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3)
        try:
            client.ping()
        finally:
            client.close()
        return {"ok": True, "detail": _redacted(url)}
    except Exception as exc:  # noqa: BLE001 - any failure means "unreachable"
        return {"ok": False, "detail": f"{_redacted(url)}: {_one_line(exc)}"}


def _print_doctor(
    report: dict, stuck_after: float, queued_minutes: float, max_attempts: int, failed_hours: float
):
    for name, check in report["checks"].items():
        typer.echo(f"{name:<11} {'ok' if check['ok'] else 'PROBLEM':<8} {check['detail']}")
    said = {
        "stuck": f"running, lease expired over {stuck_after:g} s ago (no worker renews it)",
        "overdue": f"queued and due for over {queued_minutes:g} min (no worker takes it)",
        "restarted": f"running, claimed over {max_attempts} times (workers die under it?)",
        "failed": f"failed in the last {failed_hours:g} h",
    }
    for kind, found in report["jobs"].items():
        status = (
            "ok" if not found["count"] else f"{found['count']} job{'s' * (found['count'] != 1)}"
        )
        typer.echo(f"{kind:<11} {status:<8} {said[kind]}")
        for job in found["jobs"]:
            typer.echo("  " + _job_line(kind, job))
        if found["count"] > len(found["jobs"]):
            typer.echo(f"  … and {found['count'] - len(found['jobs'])} more")
    typer.echo("healthy" if report["ok"] else "something is wrong (exit status 1)")


def _job_line(kind: str, job: dict) -> str:
    from app import tables as t

    line = (
        f"job {job['id']} (account {job['account_id']}): {job['processed']}/"
        f"{job['total'] if job['total'] is not None else '?'} processed, "
        f"attempt {job['attempts']}"
    )
    now = t.utcnow()
    if kind == "stuck":
        ago = (now - job["lease_until"]).total_seconds()
        line += f", lease of {job['lease_owner']} expired {ago:.0f} s ago"
    elif kind == "overdue":
        due = job["run_at"] or job["created_at"]
        line += f", due {(now - due).total_seconds() / 60:.0f} min ago"
    elif kind == "failed":
        line += f", at {job['finished_at']:%Y-%m-%d %H:%M:%S}Z: {(job['error'] or '')[:200]}"
    return line


@accounts_app.command("create")
def accounts_create(name: str) -> None:
    """Create an account; its API key is the last line printed."""
    from app.auth import create_account
    from app.db import make_engine

    engine = make_engine(_settings().database_url)
    with engine.begin() as conn:
        account_id, key = create_account(conn, name)
    typer.echo(f"account {account_id} '{name}' created; API key (shown once):")
    typer.echo(key)


keys_app = typer.Typer(help="API keys: create, list, revoke.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def keys_create(
    account: Annotated[int, typer.Argument(help="the account's id")],
    label: Annotated[str, typer.Option(help="who uses it (a job's created_by)")],
    scope: Annotated[str, typer.Option(help="full, or read: GETs, count, preview")] = "full",
) -> None:
    """Create a key for an account; the key is the last line printed (shown once)."""
    import sqlalchemy as sa

    from app import tables as t
    from app.db import act_as, make_engine
    from app.keys.service import create_key

    if scope not in ("full", "read"):
        typer.echo("--scope must be full or read", err=True)
        raise typer.Exit(2)
    with make_engine(_settings().database_url).begin() as conn:
        act_as(conn, account)
        if not conn.execute(sa.select(t.accounts.c.id).where(t.accounts.c.id == account)).first():
            typer.echo(f"no account {account}", err=True)
            raise typer.Exit(1)
        made = create_key(conn, account, label, scope)
    typer.echo(f"key {made['id']} '{label}' ({scope}) for account {account} (shown once):")
    typer.echo(made["key"])


@keys_app.command("list")
def keys_list(account: Annotated[int, typer.Argument(help="the account's id")]) -> None:
    """The account's keys: id, scope, prefix, label, created, last used."""
    from app.db import act_as, make_engine
    from app.keys.service import list_keys

    with make_engine(_settings().database_url).begin() as conn:
        act_as(conn, account)
        for k in list_keys(conn, account):
            used = f"{k['last_used_at']:%Y-%m-%d %H:%M}" if k["last_used_at"] else "never"
            typer.echo(
                f"{k['id']}\t{k['scope']}\t{k['prefix']}…\t{k['label']}\t"
                f"created {k['created_at']:%Y-%m-%d %H:%M}\tlast used {used}"
            )


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[int, typer.Argument(help="the key's id (keys list)")]) -> None:
    """Revoke a key: refused from the next request on, by every API process. Run it with
    the database's administrative login (as `audience migrate`): on PostgreSQL the
    application's role sees no key before it knows the account."""
    from app.db import act_as, make_engine
    from app.errors import NotFound
    from app.keys.service import account_of_key, revoke_key

    engine = make_engine(_settings().database_url)
    with engine.begin() as conn:
        account = account_of_key(conn, key_id)
    if account is None:
        typer.echo(f"no key {key_id} (or this login may not see it)", err=True)
        raise typer.Exit(1)
    with engine.begin() as conn:
        act_as(conn, account)
        try:
            revoke_key(conn, account, key_id)
        except NotFound:
            typer.echo(f"no key {key_id}", err=True)
            raise typer.Exit(1) from None
    typer.echo(f"key {key_id} revoked")


@app.command("seed")
def seed_command(
    contacts: Annotated[int, typer.Option("--contacts", min=1, help="how many contacts")] = 10_000,
    account: Annotated[int | None, typer.Option(help="account id (default: a new account)")] = None,
    random_seed: Annotated[int | None, typer.Option("--seed", help="random seed")] = None,
) -> None:
    """Load realistic demo data, with a progress bar."""
    import time

    from app.auth import create_account
    from app.db import make_engine
    from app.migrate import upgrade
    from app.seed import seed

    settings = _settings()
    before, after = upgrade(settings.database_url)
    if before != after:
        typer.echo(f"database migrated from {before or 'empty'} to {after}", err=True)
    engine = make_engine(settings.database_url)
    key = None
    if account is None:
        with engine.begin() as conn:
            account, key = create_account(conn, f"seed {contacts}")
    started = time.perf_counter()
    counts = seed(engine, account, contacts, progress=True, seed=random_seed)
    typer.echo(
        f"seeded account {account} in {time.perf_counter() - started:.1f}s: "
        + ", ".join(f"{k}={v}" for k, v in counts.items())
    )
    if key:
        typer.echo(key)


@app.command()
def explain(
    spec: Annotated[Path, typer.Argument(help="a selection spec (JSON file, - for stdin)")],
    account: Annotated[int, typer.Option(help="account id")] = 1,
    analyze: Annotated[bool, typer.Option(help="EXPLAIN ANALYZE (runs the query)")] = False,
) -> None:
    """Print the SQL a selection compiles to and, on PostgreSQL, its plan."""
    from app.db import for_account, make_engine
    from app.selection.service import explain as explain_selection

    try:
        data = json.loads(sys.stdin.read() if str(spec) == "-" else spec.read_text())
    except OSError as exc:
        typer.echo(f"{spec}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None
    except ValueError as exc:
        typer.echo(f"{spec}: not JSON: {exc}", err=True)
        raise typer.Exit(2) from None
    engine = for_account(make_engine(_settings().database_url), account)
    from app.errors import AudienceError

    try:
        with engine.begin() as conn:
            sql, plan = explain_selection(conn, account, data, analyze=analyze)
    except AudienceError as exc:
        for detail in exc.details or [{"path": "", "message": exc.message}]:
            typer.echo(f"{spec}: {detail['path']}: {detail['message']}", err=True)
        raise typer.Exit(2) from None
    for line in [sql, *plan]:
        typer.echo(line)


@app.command()
def openapi(
    output: Annotated[Path, typer.Option(help="where to write")] = Path("openapi.yaml"),
) -> None:
    """Write the OpenAPI document the app serves (kept equal to openapi.yaml)."""
    from app.openapi import render

    output.write_text(render())
    typer.echo(f"wrote {output}")


def main() -> None:
    app()
