"""Actions only a Python library can decide: sex from first names, e-mail syntax.
Each streams the chunk's values through the library and writes back set-based."""

import re
from functools import lru_cache
from typing import Literal

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from pydantic import Field, StrictBool

from app.actions.base import ActionHandler, ActionModel, RunContext, c, handles
from app.actions.columns import update_column
from app.db import in_ids, in_values

STREAM = 5000


@lru_cache(maxsize=1)
def _detector():
    import gender_guesser.detector as gender

    return gender.Detector(case_sensitive=False)


@lru_cache(maxsize=200_000)
def sex_of(first_name: str) -> str | None:
    """female / male from a names dictionary, or None when it cannot tell."""
    name = first_name.strip().split()[0] if first_name.strip() else ""
    name = name.split("-")[0]
    if not name:
        return None
    guess = _detector().get_gender(name.capitalize())
    if guess in ("female", "mostly_female"):
        return "female"
    if guess in ("male", "mostly_male"):
        return "male"
    return None


# The plain shape most addresses have: a dot-atom of ASCII atext, '@', LDH labels with
# single hyphens, an alphabetic top-level label. What matches (within the lengths below
# and outside special-use domains) email-validator accepts too, so it skips the library;
# everything else goes to the library. tests/integration/test_python_checks.py holds them equal.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
PLAIN = re.compile(
    rf"{_ATEXT}+(?:\.{_ATEXT}+)*@(?:[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*\.)+[A-Za-z]{{2,63}}\Z"
)
SPECIAL_USE = ("arpa", "invalid", "local", "localhost", "onion", "test")


def _plain(email: str) -> bool:
    if len(email) > 254 or not PLAIN.match(email):
        return False
    local, _, domain = email.rpartition("@")
    if len(local) > 64 or len(domain) > 253:
        return False
    labels = domain.lower().split(".")
    return all(len(label) <= 63 for label in labels) and labels[-1] not in SPECIAL_USE


def email_is_valid(email: str) -> bool:
    """A full syntax check, no DNS. Quoted local parts and IP-literal domains are refused
    (legal in RFC 5322, but no marketing mailer can use them); RFC 5321's 64-octet limit
    on the local part is enforced."""
    if _plain(email):
        return True
    local = email.rpartition("@")[0]
    if len(local.encode()) > 64:
        return False
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


class IdentifySex(ActionModel):
    """Sets the contact's `sex` from its first name, by a dictionary of first names; a
    name it cannot tell leaves it as it is."""

    type: Literal["identify_sex"]
    overwrite: StrictBool = Field(
        False,
        description="`false`: only contacts whose sex is `unknown`; `true`: any contact, "
        "replacing a sex set before.",
    )


@handles(IdentifySex)
class IdentifySexHandler(ActionHandler):
    column = "sex"

    def _candidates(self):
        where = [c.c.first_name.is_not(None), c.c.first_name != ""]
        if not self.action.overwrite:
            where.append(c.c.sex == "unknown")
        return where

    def apply(self, rc: RunContext, ids: list[int]) -> set[int]:
        rows = rc.conn.execute(
            sa.select(c.c.first_name)
            .distinct()
            .where(
                c.c.account_id == rc.account_id, in_ids(rc.conn, c.c.id, ids), *self._candidates()
            )
        ).scalars()
        by_sex: dict[str, list[str]] = {"female": [], "male": []}
        for name in rows:
            sex = sex_of(name)
            if sex:
                by_sex[sex].append(name)
        changed: set[int] = set()
        for sex, names in by_sex.items():
            if names:
                where = sa.and_(
                    in_values(rc.conn, c.c.first_name, names, sa.Text),
                    c.c.sex != sex,
                    *self._candidates(),
                )
                changed |= update_column(rc, self, ids, where, sex)
        return changed

    def would_change(self, rc: RunContext, members: sa.Select) -> int:
        rows = rc.conn.execution_options(yield_per=STREAM).execute(
            sa.select(c.c.first_name, c.c.sex, sa.func.count())
            .where(c.c.id.in_(members), *self._candidates())
            .group_by(c.c.first_name, c.c.sex)
        )
        return sum(n for name, sex, n in rows if (s := sex_of(name)) and s != sex)


class InvalidateBadEmails(ActionModel):
    """Sets `email_valid` to false where the address fails a full syntax check (no DNS
    look-up)."""

    type: Literal["invalidate_bad_emails"]


@handles(InvalidateBadEmails)
class InvalidateBadEmailsHandler(ActionHandler):
    """email_valid = false where the address fails a full syntax check (no DNS)."""

    column = "email_valid"

    def apply(self, rc: RunContext, ids: list[int]) -> set[int]:
        rows = rc.conn.execute(
            sa.select(c.c.id, c.c.email).where(
                c.c.account_id == rc.account_id,
                in_ids(rc.conn, c.c.id, ids),
                c.c.email_valid.is_(sa.true()),
            )
        ).all()
        bad = [cid for cid, email in rows if not email_is_valid(email)]
        if not bad:
            return set()
        return update_column(rc, self, bad, c.c.email_valid.is_(sa.true()), False)

    def would_change(self, rc: RunContext, members: sa.Select) -> int:
        rows = (
            rc.conn.execution_options(yield_per=STREAM)
            .execute(
                sa.select(c.c.email).where(c.c.id.in_(members), c.c.email_valid.is_(sa.true()))
            )
            .scalars()
        )
        return sum(1 for email in rows if not email_is_valid(email))
