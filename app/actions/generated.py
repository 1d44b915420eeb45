"""Coupons and personal links: one per contact, listed by the job's output."""

import base64
import hashlib
import hmac
import secrets
from datetime import timedelta

import sqlalchemy as sa

from app import tables as t
from app.actions.base import ActionHandler, RunContext, c, chunk_contacts, register
from app.db import in_ids, insert_rows
from app.names import name_key

# No look-alikes: no 0/O, 1/I/L.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
MAX_ROUNDS = 20


def new_code(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def _output(rc: RunContext, values: dict[int, str]) -> None:
    if rc.job_id is None or not values:
        return
    rows = [{"contact_id": cid, "value": v} for cid, v in values.items()]
    constants = {"job_id": rc.job_id, "position": rc.position}
    rc.conn.execute(insert_rows(rc.conn, t.job_output, rows, constants).on_conflict_do_nothing())


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
        constants = {
            "account_id": rc.account_id,
            "name": a.name,
            "name_key": key,
            "valid_until": valid_until,
            "job_id": rc.job_id,
            "created_at": rc.now,
        }
        for _ in range(MAX_ROUNDS):
            codes = {cid: new_code(a.length) for cid in pending}
            inserted = rc.conn.execute(
                insert_rows(
                    rc.conn, cp, [{"contact_id": k, "code": v} for k, v in codes.items()], constants
                )
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
        tokens = [
            link_token(rc.settings.link_secret, rc.account_id, c, rc.job_id) for c in contacts
        ]
        urls = {
            cid: self.action.url.replace("{token}", tok)
            for cid, tok in zip(contacts, tokens, strict=True)
        }
        constants = {"account_id": rc.account_id, "job_id": rc.job_id, "created_at": rc.now}
        rc.conn.execute(
            insert_rows(
                rc.conn,
                t.links,
                [
                    {"contact_id": cid, "token": tok, "url": urls[cid]}
                    for cid, tok in zip(contacts, tokens, strict=True)
                ],
                constants,
            ).on_conflict_do_nothing()
        )
        _output(rc, urls)
        return set(contacts)


__all__ = ["c"]
