"""The hashed locks agree with pyproject.toml: the Docker image installs requirements.lock and
CI requirements-test.lock (both with --require-hashes, then the package itself with
--no-deps), so a bound changed in pyproject.toml without a refresh of the locks would
otherwise go untested. How to refresh them: README, "Dependencies"."""

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
RUNTIME = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
TEST = [Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"]["test"]]
# `pip install --no-deps --no-build-isolation` builds the package with what the lock pins.
BUILD = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]]

# One pin: `name==version \` then its `--hash=sha256:…` lines.
PIN = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+) \\\n((?:    --hash=sha256:[0-9a-f]{64}.*\n)+)", re.M
)


def pins(lock: str) -> dict[str, str]:
    text = (ROOT / lock).read_text()
    found = {canonicalize_name(name): version for name, version, _ in PIN.findall(text)}
    requirement_lines = [
        line for line in text.splitlines() if line and not line.startswith((" ", "#"))
    ]
    assert len(found) == len(requirement_lines), f"{lock}: a requirement without a hash"
    return found


LOCKS = {
    "requirements.lock": RUNTIME + BUILD,
    "requirements-test.lock": RUNTIME + TEST + BUILD,
}


@pytest.mark.parametrize("lock", LOCKS)
def test_the_lock_satisfies_pyproject(lock):
    pinned = pins(lock)
    for requirement in LOCKS[lock]:
        version = pinned.get(canonicalize_name(requirement.name))
        assert version is not None, f"{lock} does not pin {requirement.name}"
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{lock} pins {requirement.name}=={version}, pyproject.toml asks {requirement}"
        )


def test_ci_tests_what_the_image_runs():
    runtime, test = pins("requirements.lock"), pins("requirements-test.lock")
    assert {name: test.get(name) for name in runtime} == runtime
