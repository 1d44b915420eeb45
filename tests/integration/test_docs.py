"""The documentation runs as written, against a live `audience serve` (the newcomer's
embedded default: SQLite, in-process jobs, the demo account):

- every ```http request in docs/*.md is sent; the ```json answer shown right after it (if
  any) is checked — an error's code and paths exactly, a success's keys;
- the README's walk-through (its ```bash block) runs in bash, every request answered
  without a 5xx and every job it waits for succeeds."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"```(\w*)\n(.*?)```", re.S)


def blocks(text: str) -> list[tuple[str, str, str]]:
    """(language, body, the text between this block and the next one)."""
    found = list(BLOCK.finditer(text))
    return [
        (m.group(1), m.group(2), text[m.end() : found[i + 1].start()] if i + 1 < len(found) else "")
        for i, m in enumerate(found)
    ]


def examples() -> list[tuple[str, int, str, str, dict | None]]:
    """(page, n, 'METHOD PATH', body, the answer shown) for every http block of docs/."""
    out = []
    for page in sorted((ROOT / "docs").glob("*.md")):
        found = blocks(page.read_text())
        for i, (language, body, gap) in enumerate(found):
            if language != "http":
                continue
            request, _, payload = body.partition("\n")
            answer = None
            if i + 1 < len(found) and found[i + 1][0] == "json" and not gap.strip():
                answer = json.loads(found[i + 1][1])
            out.append((page.name, i, request.strip(), payload.strip(), answer))
    return out


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """`audience serve` as the README starts it, in a folder of its own."""
    folder = tmp_path_factory.mktemp("live")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIENCE_") or "TEST" in k}
    env.update(AUDIENCE_DEMO_CONTACTS="400", AUDIENCE_LOG_LEVEL="WARNING")
    audience = Path(sys.executable).with_name("audience")
    proc = subprocess.Popen(
        [str(audience), "serve", "--port", str(port)],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    key = None
    try:
        deadline = time.monotonic() + 120
        for line in proc.stdout:
            if line.startswith("demo account API key:"):
                key = line.split(":", 1)[1].strip()
            if line.startswith("Audience listening on"):
                break
            assert time.monotonic() < deadline, "serve did not start"
        assert key, "serve printed no demo key"
        api = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                httpx.get(f"{api}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield api, key
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize(
    ("page", "n", "request_line", "payload", "answer"),
    examples(),
    ids=[f"{page}#{n}" for page, n, *_ in examples()],
)
def test_docs_example(live, page, n, request_line, payload, answer):
    api, key = live
    method, path = request_line.split()
    r = httpx.request(
        method,
        api + path,
        content=payload or None,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=30,
    )
    shown = f"{page} block {n}: {request_line} answered {r.status_code} {r.text[:500]}"
    if answer and "error" in answer:
        assert r.status_code >= 400, shown
        got = r.json()["error"]
        assert got["code"] == answer["error"]["code"], shown
        paths = [d["path"] for d in answer["error"]["details"]]
        assert [d["path"] for d in got["details"]] == paths, shown
        for want, have in zip(answer["error"]["details"], got["details"], strict=True):
            if "…" not in want["message"]:
                assert have["message"] == want["message"], shown
        return
    assert r.status_code < 300, shown
    if answer is not None:
        assert set(r.json()) == set(answer), shown


def test_every_docs_page_has_its_examples_checked():
    pages = {page for page, *_ in examples()}
    assert "selection.md" in pages


def walkthrough() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## A walk through with curl", 1)[1]
    return next(body for language, body, _ in blocks(section) if language == "bash")


@pytest.mark.skipif(not shutil.which("curl"), reason="the walk-through needs curl")
def test_readme_walkthrough_runs_as_written(live):
    api, key = live
    script = walkthrough()
    assert script.startswith("KEY=...")
    script = script.replace("KEY=...", f"KEY={key}", 1).replace(
        "API=http://127.0.0.1:8000", f"API={api}", 1
    )
    # Each answer on a line of its own (-w '\n'); the status of each on a log of its own.
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"walk-{os.getpid()}.status"
    prelude = f"""set -euo pipefail
curl() {{ command curl -D >(grep -m1 '^HTTP' >> {log}) "$@"; }}
"""
    result = subprocess.run(
        ["bash", "-c", prelude + script],
        capture_output=True,
        text=True,
        timeout=120,
    )
    try:
        statuses = [line.split()[1] for line in log.read_text().splitlines()]
    finally:
        log.unlink(missing_ok=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(statuses) >= 15 and not [s for s in statuses if s.startswith("5")], statuses
    answers = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    jobs = [a for a in answers if a.get("kind") in ("actions", "revert") and "status" in a]
    assert jobs and all(a["status"] == "succeeded" for a in jobs), jobs
    assert any(a["kind"] == "revert" and a["conflicts"] == 0 for a in jobs), jobs


def test_docs_link_only_inside_the_repository():
    """Users read README.md and docs/: every link there goes to a file of the repository."""
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)]+)\)", page.read_text()):
            assert "://" not in target, f"{page.name} links outside: {target}"
            path = target.split("#", 1)[0]
            if path:
                assert (page.parent / path).exists(), f"{page.name}: no file {path}"


def snippet(page: str, language: str) -> str:
    return next(
        body for lang, body, _ in blocks((ROOT / "docs" / page).read_text()) if lang == language
    )


SIGNED = {
    "secret": "whsec_docs-example",
    "body": b'{"id": "evt_1", "type": "job.succeeded", "data": {"id": 7, "status": "succeeded"}}',
}


def test_the_python_signature_check_accepts_audiences_signatures_only():
    from app.webhooks.delivery import sign

    namespace: dict = {}
    exec(snippet("webhooks.md", "python"), namespace)  # noqa: S102 - our own documentation
    check = namespace["audience_event"]
    secret, body, now = SIGNED["secret"], SIGNED["body"], int(time.time())
    assert check(secret, sign(secret, body, now), body)["data"]["id"] == 7
    for header, message in [
        (sign("whsec_other", body, now), "not signed"),
        (sign(secret, body + b" ", now), "not signed"),
        (sign(secret, body, now - 3600), "too old"),
    ]:
        with pytest.raises(ValueError, match=message):
            check(secret, header, body)
    with pytest.raises(ValueError, match="not signed"):
        check(secret, sign(secret, body, now), body.replace(b"7", b"8"))


@pytest.mark.skipif(not shutil.which("node"), reason="needs Node.js")
def test_the_javascript_signature_check_accepts_audiences_signatures_only(tmp_path):
    from app.webhooks.delivery import sign

    (tmp_path / "check.mjs").write_text(snippet("webhooks.md", "js"))
    secret, body, now = SIGNED["secret"], SIGNED["body"], int(time.time())
    cases = {
        "good": sign(secret, body, now),
        "other secret": sign("whsec_other", body, now),
        "old": sign(secret, body, now - 3600),
    }
    (tmp_path / "run.mjs").write_text(
        'import { audienceEvent } from "./check.mjs";\n'
        f"const body = Buffer.from({json.dumps(body.decode())});\n"
        f"const cases = {json.dumps(cases)};\n"
        "for (const [name, header] of Object.entries(cases)) {\n"
        "  try { console.log(name, 'ok', audienceEvent("
        f"{json.dumps(secret)}, header, body).data.id); }}\n"
        "  catch (e) { console.log(name, 'refused', e.message); }\n"
        "}\n"
    )
    out = subprocess.run(["node", "run.mjs"], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "good ok 7", lines
    assert lines[1].startswith("other secret refused not signed"), lines
    assert lines[2].startswith("old refused too old"), lines
