"""Coupons and personal links: one per contact, listed by the job's output."""

import base64
import hashlib
import hmac
import secrets
from datetime import timedelta

import sqlalchemy as sa

from app import tables as t
from app.actions.base import ActionHandler, RunContext, c, chunk_contacts, register
from app.db import dialect_insert, in_ids
from app.names import name_key

# No look-alikes: no 0/O, 1/I/L.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
MAX_ROUNDS = 20


def new_code(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def _output(rc: RunContext, values: dict[int, str]) -> None:
    if rc.job_id is None or not values:
        return
    rc.conn.execute(
        dialect_insert(rc.conn, t.job_output).on_conflict_do_nothing(),
        [
            {"job_id": rc.job_id, "position": rc.position, "contact_id": cid, "value": v}
            for cid, v in values.items()
        ],
    )


@register
class GenerateCoupons(ActionHandler):
    """A code per contact, unique in the account by a unique index: colliding rows are
    retried with new codes, never checked first. A new coupon of the same name replaces
    the contact's old one. The chunk is one transaction, so a retried chunk starts from
    nothing and never leaves a contact two codes."""

    type = "generate_coupons"
    has_output = True

    def changes(self, rc):
        return sa.true()

    def apply(self, rc, ids):
        a = self.action
        key = name_key(a.name)
        contacts = list(rc.conn.execute(chunk_contacts(rc, ids)).scalars())
        if not contacts:
            return set()
        cp = t.coupons
        rc.conn.execute(
            sa.delete(cp).where(
                cp.c.account_id == rc.account_id,
                cp.c.name_key == key,
                in_ids(rc.conn, cp.c.contact_id, contacts),
            )
        )
        valid_until = rc.now + timedelta(days=a.valid_days) if a.valid_days else None
        pending = contacts
        given: dict[int, str] = {}
        for _ in range(MAX_ROUNDS):
            rows = [
                {
                    "account_id": rc.account_id,
                    "contact_id": cid,
                    "name": a.name,
                    "name_key": key,
                    "code": new_code(a.length),
                    "valid_until": valid_until,
                    "job_id": rc.job_id,
                    "created_at": rc.now,
                }
                for cid in pending
            ]
            codes = {r["contact_id"]: r["code"] for r in rows}
            inserted = rc.conn.execute(
                dialect_insert(rc.conn, cp)
                .values(rows)
                .on_conflict_do_nothing(index_elements=["account_id", "code"])
                .returning(cp.c.contact_id)
            ).scalars()
            for cid in inserted:
                given[cid] = codes[cid]
            pending = [cid for cid in pending if cid not in given]
            if not pending:
                break
        else:
            raise RuntimeError("could not find unique coupon codes; use a longer length")
        _output(rc, given)
        return set(given)


def link_token(secret: str, account_id: int, contact_id: int, job_id: int | None) -> str:
    """HMAC of (account, contact, job): stable on retry, verifiable, not guessable."""
    mac = hmac.new(
        secret.encode(), f"{account_id}:{contact_id}:{job_id}".encode(), hashlib.sha256
    ).digest()
    return base64.urlsafe_b64encode(mac[:24]).decode().rstrip("=")


@register
class GenerateLinks(ActionHandler):
    type = "generate_links"
    has_output = True

    def changes(self, rc):
        return sa.true()

    def apply(self, rc, ids):
        contacts = list(rc.conn.execute(chunk_contacts(rc, ids)).scalars())
        if not contacts:
            return set()
        urls = {}
        rows = []
        for cid in contacts:
            token = link_token(rc.settings.link_secret, rc.account_id, cid, rc.job_id)
            urls[cid] = self.action.url.replace("{token}", token)
            rows.append(
                {
                    "account_id": rc.account_id,
                    "contact_id": cid,
                    "job_id": rc.job_id,
                    "token": token,
                    "url": urls[cid],
                    "created_at": rc.now,
                }
            )
        rc.conn.execute(dialect_insert(rc.conn, t.links).values(rows).on_conflict_do_nothing())
        _output(rc, urls)
        return set(contacts)


__all__ = ["c"]
