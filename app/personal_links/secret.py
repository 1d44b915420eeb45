"""The secret personal link tokens are made with.

A token is an HMAC of (account, contact, job), all sequential ids: whoever knows the
secret computes any contact's token offline and passes for that contact on a landing page.
So outside the embedded demo the service does not start without a strong secret, and the
demo makes a random one and keeps it beside its database (links stay stable across
restarts)."""

import base64
import hashlib
import hmac
import math
import os
import secrets
from collections import Counter
from pathlib import Path

MIN_BYTES = 32
# What a secret's characters say of its randomness, at least (their empirical entropy
# times their number): 32 random bytes written in hex show about 240 bits, in base64 about
# 210; 16 bytes in hex about 115; a word repeated far fewer.
MIN_BITS = 128
PLACEHOLDERS = ("change-me", "changeme", "change_me", "secret", "password")
HOW_TO = "export AUDIENCE_LINK_SECRET=$(openssl rand -hex 32)"
DEMO_SECRET_FILE = "audience-demo.link-secret"


def link_token(secret: str, account_id: int, contact_id: int, job_id: int | None) -> str:
    """HMAC of (account, contact, job): stable on retry, not guessable without the secret,
    and checked again when a link is verified (so a new secret retires every old link)."""
    mac = hmac.new(
        secret.encode(), f"{account_id}:{contact_id}:{job_id}".encode(), hashlib.sha256
    ).digest()
    return base64.urlsafe_b64encode(mac[:24]).decode().rstrip("=")


def secret_problem(secret: str | None) -> str | None:
    """Why `secret` would make forgeable links, or None when it will do."""
    if not secret:
        return "is not set"
    if len(secret.encode()) < MIN_BYTES:
        return f"is shorter than {MIN_BYTES} bytes"
    if any(word in secret.lower() for word in PLACEHOLDERS):
        return "is a placeholder, not a secret"
    if secret in (secret + secret)[1:-1] or _estimated_bits(secret) < MIN_BITS:
        return "does not look random (repeated or too few distinct characters)"
    return None


def _estimated_bits(secret: str) -> float:
    n = len(secret)
    return -sum(c * math.log2(c / n) for c in Counter(secret).values())


def demo_secret(folder: Path) -> str:
    """The embedded demo's secret, made on first use and kept in `folder` (readable by its
    owner only); every later start, API or worker, reads the same one."""
    path = folder / DEMO_SECRET_FILE
    if not path.exists():
        _create_once(path, secrets.token_hex(MIN_BYTES) + "\n")
    return path.read_text().strip()


def _create_once(path: Path, text: str) -> None:
    """Write `path` whole or not at all: an API and a worker starting together both
    read the one that was linked first, never a half-written file."""
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    try:
        os.link(draft, path)
    except FileExistsError:
        pass
    finally:
        draft.unlink()
