"""Coupons: a code per contact, listed by the job's output."""

import secrets
from datetime import timedelta
from typing import Literal

import sqlalchemy as sa
from pydantic import Field

from app import tables as t
from app.actions import changes
from app.actions.base import (
    ActionHandler,
    ActionModel,
    RunContext,
    chunk_contacts,
    handles,
    record_output,
)
from app.db import in_ids, insert_rows
from app.names import Name, name_key
from app.types import integer

# No look-alikes: no 0/O, 1/I/L.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
MAX_ROUNDS = 20


def _kept(name: str, valid_until, job_id, created_at) -> dict:
    """What the change log keeps of a coupon besides its code, to give it back whole."""
    return {
        "name": name,
        "valid_until": valid_until.isoformat() if valid_until else None,
        "job_id": job_id,
        "created_at": created_at.isoformat(),
    }


def new_code(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


class GenerateCoupons(ActionModel):
    """Gives the contact a new coupon code, unique in the account; the job's output
    (`GET /v1/jobs/{id}/output`) lists them. It replaces the contact's coupon of the same
    name, if any."""

    type: Literal["generate_coupons"]
    name: Name = Field(description="The coupon's name, ignoring case.")
    length: integer(ge=5, le=64) = Field(
        description="Characters in a code: capital letters and digits without look-alikes "
        "(no 0, O, 1, I or L)."
    )
    valid_days: integer(ge=1, le=36_500) | None = Field(
        None, description="Days the code is valid from the moment it is made; null: no end."
    )


@handles(GenerateCoupons)
class GenerateCouponsHandler(ActionHandler):
    """A code per contact, unique in the account by a unique index: colliding rows are
    retried with new codes, never checked first. A new coupon of the same name replaces
    the contact's old one. The chunk is one transaction, so a retried chunk starts from
    nothing and never leaves a contact two codes."""

    def changes(self, rc: RunContext):
        return sa.true()

    def apply(self, rc: RunContext, ids: list[int]) -> set[int]:
        contacts = list(rc.conn.execute(chunk_contacts(rc, ids)).scalars())
        if not contacts:
            return set()
        cp = t.coupons
        key = name_key(self.action.name)
        mine = [
            cp.c.account_id == rc.account_id,
            cp.c.name_key == key,
            in_ids(rc.conn, cp.c.contact_id, contacts),
        ]
        replaced = {
            row.contact_id: row
            for row in rc.conn.execute(
                changes.locked(
                    rc,
                    sa.select(
                        cp.c.contact_id,
                        cp.c.code,
                        cp.c.name,
                        cp.c.valid_until,
                        cp.c.job_id,
                        cp.c.created_at,
                    ).where(*mine),
                    cp,
                )
            )
        }
        rc.conn.execute(sa.delete(cp).where(*mine))
        given = self._give_codes(rc, contacts)
        record_output(rc, given)
        changes.log_rows(
            rc,
            self.type,
            [self._logged(rc, key, cid, code, replaced.get(cid)) for cid, code in given.items()],
        )
        return set(given)

    def _logged(self, rc: RunContext, key: str, contact_id: int, code: str, old) -> dict:
        a = self.action
        valid_until = rc.now + timedelta(days=a.valid_days) if a.valid_days else None
        return {
            "contact_id": contact_id,
            "field": changes.COUPON + key,
            "ref": 0,
            "before": old.code if old else None,
            "before_at": old.created_at if old else None,
            "after": code,
            "after_at": rc.now,
            "before_extra": changes.extra(
                _kept(old.name, old.valid_until, old.job_id, old.created_at) if old else None
            ),
            "after_extra": changes.extra(_kept(a.name, valid_until, rc.job_id, rc.now)),
        }

    def _give_codes(self, rc: RunContext, contacts: list[int]) -> dict[int, str]:
        a = self.action
        cp = t.coupons
        constants = {
            "account_id": rc.account_id,
            "name": a.name,
            "name_key": name_key(a.name),
            "valid_until": rc.now + timedelta(days=a.valid_days) if a.valid_days else None,
            "job_id": rc.job_id,
            "created_at": rc.now,
        }
        pending = contacts
        given: dict[int, str] = {}
        for _ in range(MAX_ROUNDS):
            codes = {cid: new_code(a.length) for cid in pending}
            rows = [{"contact_id": k, "code": v} for k, v in codes.items()]
            inserted = rc.conn.execute(
                insert_rows(rc.conn, cp, rows, constants)
                .on_conflict_do_nothing(index_elements=["account_id", "code"])
                .returning(cp.c.contact_id)
            ).scalars()
            for cid in inserted:
                given[cid] = codes[cid]
            pending = [cid for cid in pending if cid not in given]
            if not pending:
                return given
        raise RuntimeError("could not find unique coupon codes; use a longer length")
