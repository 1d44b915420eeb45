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
    from app.config import get_settings

    return get_settings()


def _is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


@app.command()
def migrate() -> None:
    """Bring the database schema up to date (Alembic)."""
    from app.migrate import upgrade

    upgrade(_settings().database_url)
    typer.echo("database is up to date")


def ensure_demo(engine, settings) -> str:
    """The embedded default's demo account: created (with demo data) on first start; its
    key is kept beside the database so it can be printed at every start."""
    import sqlalchemy as sa

    from app import tables as t
    from app.auth import account_for_key, create_account

    key_path = Path(DEMO_KEY_FILE)
    key = key_path.read_text().strip() if key_path.exists() else None
    with engine.begin() as conn:
        if key and account_for_key(conn, key) is not None:
            return key
        account_id, key = create_account(conn, "demo", key)
    key_path.write_text(key + "\n")
    os.chmod(key_path, 0o600)
    if settings.demo_contacts > 0:
        from app.seed import seed

        seed(engine, account_id, settings.demo_contacts, progress=sys.stderr.isatty())
    with engine.connect() as conn:
        n = conn.execute(
            sa.select(sa.func.count())
            .select_from(t.contacts)
            .where(t.contacts.c.account_id == account_id)
        ).scalar_one()
    typer.echo(f"demo account created with {n} contacts", err=True)
    return key


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

    settings = _settings()
    logs.setup(settings.log_level, settings.log_json)
    if _is_sqlite(settings.database_url):
        upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    if settings.demo and _is_sqlite(settings.database_url):
        key = ensure_demo(engine, settings)
        typer.echo(f"demo account API key: {key}")
        typer.echo(
            f"try: curl -s -X POST http://{host}:{port}/v1/selections/count "
            f"-H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' "
            "-d '{}'"
        )
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

    settings = _settings()
    logs.setup(settings.log_level, settings.log_json)
    if not settings.redis_url:
        typer.echo("AUDIENCE_REDIS_URL is not set: jobs run inside `audience serve`", err=True)
        raise typer.Exit(2)
    if burst:
        make_worker(settings, burst=True).run()
    else:
        run_forever(settings)


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
    from app.seed import seed

    engine = make_engine(_settings().database_url)
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
    import sqlalchemy as sa

    from app.db import is_postgres, make_engine
    from app.selection.compile import count_query
    from app.selection.service import parse_selection, prepare

    data = json.loads(sys.stdin.read() if str(spec) == "-" else spec.read_text())
    engine = make_engine(_settings().database_url)
    with engine.begin() as conn:
        selection = parse_selection(data, prefix="")
        ctx = prepare(conn, account, selection)
        query = count_query(selection, ctx)
        compiled = query.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True})
        typer.echo(str(compiled))
        if is_postgres(conn):
            verb = "EXPLAIN (ANALYZE, BUFFERS)" if analyze else "EXPLAIN"
            for (line,) in conn.execute(sa.text(f"{verb} {compiled}")):
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
