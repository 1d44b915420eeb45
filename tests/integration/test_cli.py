"""The `audience` command as a newcomer meets it: seed and migrate say what they did, a bad
file or setting is a message (exit 2) rather than a traceback, and the demo account goes
only into a database without accounts of its own."""

import json

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from app import tables as t
from app.cli import DEMO_KEY_FILE, ensure_demo
from app.cli import app as cli
from app.config import Settings, get_settings
from app.db import make_engine
from app.migrate import upgrade


def run(*args: str, **env: str):
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(cli, list(args), env=env)
    finally:
        get_settings.cache_clear()


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'fresh.db'}"


def accounts(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(t.accounts)).scalar_one()
    finally:
        engine.dispose()


def test_seed_migrates_a_new_database_first(url):
    result = run("seed", "--contacts", "20", AUDIENCE_DATABASE_URL=url)
    assert result.exit_code == 0, result.output
    assert "migrated from empty" in result.output and "contacts=20" in result.output
    assert accounts(url) == 1


def test_migrate_says_what_it_did(url):
    first = run("migrate", AUDIENCE_DATABASE_URL=url)
    assert first.exit_code == 0 and "migrated from empty to" in first.output, first.output
    again = run("migrate", AUDIENCE_DATABASE_URL=url)
    assert again.exit_code == 0 and "already at the newest schema" in again.output


def test_explain_reports_a_bad_file_plainly(url, tmp_path):
    upgrade(url)
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    result = run("explain", str(bad), AUDIENCE_DATABASE_URL=url)
    assert result.exit_code == 2 and "not JSON" in result.output
    assert "Traceback" not in result.output
    missing = run("explain", str(tmp_path / "none.json"), AUDIENCE_DATABASE_URL=url)
    assert missing.exit_code == 2 and "No such file" in missing.output
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"include": [{"type": "tagg"}]}))
    result = run("explain", str(wrong), AUDIENCE_DATABASE_URL=url)
    assert result.exit_code == 2 and "include[0].type" in result.output, result.output
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"filter": {"field": "score", "op": "gte", "value": 5}}))
    result = run("explain", str(good), AUDIENCE_DATABASE_URL=url)
    assert result.exit_code == 0 and "SELECT" in result.output


def test_a_bad_setting_is_named_not_a_traceback(url):
    result = run("migrate", AUDIENCE_DATABASE_URL=url, AUDIENCE_RATE_LIMIT_BURST="many")
    assert result.exit_code == 2 and "AUDIENCE_RATE_LIMIT_BURST" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("raw", "origins"),
    [
        ("http://x.example", ["http://x.example"]),
        ("http://a.example, http://b.example", ["http://a.example", "http://b.example"]),
        ('["http://a.example"]', ["http://a.example"]),
        ("*", ["*"]),
    ],
)
def test_cors_origins_take_a_plain_list(monkeypatch, raw, origins):
    monkeypatch.setenv("AUDIENCE_CORS_ORIGINS", raw)
    assert Settings().cors_origins == origins


def test_the_demo_goes_only_into_a_database_without_accounts(tmp_path, url):
    upgrade(url)
    settings = Settings(database_url=url, demo_contacts=5)
    engine = make_engine(url)
    try:
        key = ensure_demo(engine, settings)
        assert key and (tmp_path / DEMO_KEY_FILE).read_text().strip() == key
        assert ensure_demo(engine, settings) == key  # a restart: the same account
        assert accounts(url) == 1
    finally:
        engine.dispose()

    own = f"sqlite:///{tmp_path / 'own' / 'mine.db'}"
    (tmp_path / "own").mkdir()
    assert run("seed", "--contacts", "5", AUDIENCE_DATABASE_URL=own).exit_code == 0
    engine = make_engine(own)
    try:
        assert ensure_demo(engine, Settings(database_url=own, demo_contacts=5)) is None
    finally:
        engine.dispose()
    assert accounts(own) == 1 and not (tmp_path / "own" / DEMO_KEY_FILE).exists()
