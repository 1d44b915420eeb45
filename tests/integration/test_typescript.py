"""A typed front end compiles against what the service documents: TypeScript types
generated from openapi.yaml by openapi-typescript (its default flags) and a front end's
usual calls through openapi-fetch (tests/typescript/client.ts: count, preview, dry run,
submit, status, history, revert, export, pickers) pass `tsc --strict`. Needs npm and its
registry (CI has both); skipped without npm."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "tests" / "typescript"

pytestmark = pytest.mark.skipif(not shutil.which("npm"), reason="needs npm (Node.js)")


def run(*command: str, cwd: Path) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_generated_types_type_check_a_front_ends_calls(tmp_path):
    for name in ("package.json", "package-lock.json", "tsconfig.json", "client.ts"):
        shutil.copy(SOURCE / name, tmp_path / name)
    run("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error", cwd=tmp_path)
    bin_ = tmp_path / "node_modules" / ".bin"
    run(
        str(bin_ / "openapi-typescript"), str(ROOT / "openapi.yaml"), "-o", "api.d.ts", cwd=tmp_path
    )
    run(str(bin_ / "tsc"), "-p", "tsconfig.json", cwd=tmp_path)
