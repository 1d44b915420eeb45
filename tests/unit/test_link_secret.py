"""Personal links cannot be forged: outside the embedded demo, `audience serve` and
`audience worker` refuse to start without a strong AUDIENCE_LINK_SECRET; the demo makes
its own and keeps it beside its database."""

import base64
import secrets
import stat

import pytest
import typer
from typer.testing import CliRunner

from app.cli import app as cli
from app.cli import with_link_secret
from app.config import Settings, get_settings
from app.personal_links.secret import DEMO_SECRET_FILE, secret_problem

PG = "postgresql://nobody@127.0.0.1:1/audience"  # never reached: the check comes first


@pytest.mark.parametrize(
    "secret",
    [
        None,
        "",
        "change-me-in-production",
        "change-me",
        "change-me-in-production-change-me-in-production",
        "x" * 64,
        "abcdefghijklmnopqrstuvwxyz012345" * 2,
        secrets.token_hex(16),  # 32 characters, 16 random bytes
    ],
)
def test_weak_secrets_are_refused(secret):
    assert secret_problem(secret) is not None


@pytest.mark.parametrize(
    "secret",
    [
        secrets.token_hex(32),
        secrets.token_urlsafe(32),
        base64.b64encode(secrets.token_bytes(32)).decode(),
    ],
)
def test_random_secrets_of_32_bytes_will_do(secret):
    assert secret_problem(secret) is None


def start(command: str, **env) -> tuple[int, str]:
    get_settings.cache_clear()
    try:
        base = {"AUDIENCE_DATABASE_URL": PG, "AUDIENCE_REDIS_URL": "redis://127.0.0.1:1/0"}
        result = CliRunner().invoke(cli, [command], env={**base, **env})
    finally:
        get_settings.cache_clear()
    return result.exit_code, result.output


@pytest.mark.parametrize("command", ["serve", "worker"])
@pytest.mark.parametrize("secret", [None, "change-me-in-production", "short"])
def test_serve_and_worker_refuse_to_start_without_a_strong_secret(command, secret):
    code, output = start(command, AUDIENCE_LINK_SECRET=secret)
    assert code == 2, output
    assert "AUDIENCE_LINK_SECRET" in output and "openssl rand -hex 32" in output


def test_the_embedded_demo_makes_a_secret_and_keeps_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'audience.db'}"
    first = with_link_secret(Settings(database_url=url, demo=True, link_secret=None))
    again = with_link_secret(Settings(database_url=url, demo=True, link_secret=None))
    assert first.link_secret == again.link_secret  # links stay stable across restarts
    assert secret_problem(first.link_secret) is None
    kept = tmp_path / DEMO_SECRET_FILE
    assert kept.read_text().strip() == first.link_secret
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [DEMO_SECRET_FILE]  # no draft left


def test_sqlite_without_the_demo_needs_a_secret_too(tmp_path):
    url = f"sqlite:///{tmp_path / 'audience.db'}"
    with pytest.raises(typer.Exit):
        with_link_secret(Settings(database_url=url, demo=False, link_secret=None))
    assert not (tmp_path / DEMO_SECRET_FILE).exists()
    chosen = secrets.token_hex(32)
    kept = with_link_secret(Settings(database_url=url, demo=False, link_secret=chosen))
    assert kept.link_secret == chosen
