"""A live `audience serve` (SQLite, or PostgreSQL + Redis + a real arq worker) and a
headless Chromium driven by Selenium. Screenshots of each step go to $AUDIENCE_SCREENSHOTS
(default /tmp/audience-console-shots); the path is printed at the end of the run."""

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.auth import create_account
from tests.conftest import REDIS_URL, free_port

AUDIENCE = str(Path(sys.executable).parent / "audience")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SHOTS = Path(os.environ.get("AUDIENCE_SCREENSHOTS", "/tmp/audience-console-shots"))
_taken: list[Path] = []


class Live:
    """`audience serve` (and, with Redis, `audience worker`) as subprocesses."""

    def __init__(self, db_url: str, redis_url: str | None, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "AUDIENCE_DATABASE_URL": db_url,
            "AUDIENCE_DEMO": "false",
            "AUDIENCE_LOG_LEVEL": "WARNING",
            "AUDIENCE_JOB_CHUNK_SIZE": "5",
            "AUDIENCE_JOB_POLL_S": "0.05",
            "AUDIENCE_RATE_LIMIT_PER_S": "0",
        }
        self.env.pop("AUDIENCE_REDIS_URL", None)
        if redis_url:
            self.env["AUDIENCE_REDIS_URL"] = redis_url
        self.log = log.open("ab")
        self.procs: list[subprocess.Popen] = []

    def start(self) -> None:
        serve = [AUDIENCE, "serve", "--port", str(self.port)]
        self.procs.append(subprocess.Popen(serve, env=self.env, stdout=self.log, stderr=self.log))
        if "AUDIENCE_REDIS_URL" in self.env:
            worker = [AUDIENCE, "worker"]
            self.procs.append(
                subprocess.Popen(worker, env=self.env, stdout=self.log, stderr=self.log)
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.procs[0].poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"audience serve did not start: see {self.log.name}")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.procs.clear()
        self.log.close()


@pytest.fixture(scope="module")
def live(db_url, tmp_path_factory) -> Iterator[Live]:
    postgres = db_url.startswith("postgresql")
    redis_url = REDIS_URL if postgres else None  # PostgreSQL: the production shape
    log = tmp_path_factory.mktemp("live") / "serve.log"
    server = Live(db_url, redis_url, log)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def key(engine) -> str:
    """A fresh account's full key."""
    with engine.begin() as conn:
        return create_account(conn, f"console-{uuid.uuid4().hex[:8]}")[1]


@pytest.fixture
def http(live, key) -> Iterator[httpx.Client]:
    """The API of the live server, as the test's account."""
    with httpx.Client(
        base_url=live.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as client:
        yield client


@pytest.fixture(scope="module")
def downloads(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads):
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip("needs chromium and chromium-driver (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument("--window-size=1366,900")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


@pytest.fixture
def shot(request, browser):
    """shot("step"): a screenshot named after the test and the step."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    test = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    counter = iter(range(1, 100))

    def take(step: str) -> Path:
        path = SHOTS / f"{test}-{next(counter):02d}-{step}.png"
        browser.save_screenshot(str(path))
        _taken.append(path)
        return path

    return take


def pytest_terminal_summary(terminalreporter):
    if _taken:
        terminalreporter.write_line(f"console screenshots ({len(_taken)}): {SHOTS}")
