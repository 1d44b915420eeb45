"""Logs never carry a personal link's token, and no field grows past a few KiB."""

import io
import json

import pytest
import structlog

from app import logs


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ("/v1/links/abcDEF-123_x", "/v1/links/[token]"),
        ("/v1/links/abc/more", "/v1/links/[token]/more"),
        ("/v1/links", "/v1/links"),
        ("/v1/jobs/5", "/v1/jobs/5"),
        ("/v1/contacts/links/x", "/v1/contacts/links/x"),
    ],
)
def test_link_tokens_leave_the_path(path, logged):
    assert logs.loggable_path(path) == logged


@pytest.fixture
def configured(monkeypatch):
    """The service's log set-up, writing to a buffer; the previous one back afterwards."""
    saved = structlog.get_config()
    out = io.StringIO()
    monkeypatch.setattr(logs.sys, "stderr", out)
    logs.setup("INFO", json=True)
    yield out
    structlog.configure(**saved)


def test_a_long_field_keeps_its_head_and_tail(configured):
    sql = "SELECT " + "x, " * 1_000_000 + "THE END"
    logs.get("test").error("failed", sql=sql, short="fine")
    line = json.loads(configured.getvalue())
    assert len(line["sql"]) < logs.MAX_FIELD + 100
    assert line["sql"].startswith("SELECT x, ") and line["sql"].endswith("THE END")
    assert "characters cut" in line["sql"] and line["short"] == "fine"
