"""The account's rows that contact rows refer to: tags, funnels and their stages, groups,
users (sales reps) and a year of mailings. Found by name, created when missing, so a second
run into the same account reuses them."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from app import tables as t
from app.contacts.service import ensure_named, ensure_users
from app.names import name_key
from app.seed.vocabulary import DAY, FUNNELS, GROUPS, MAILINGS, TAGS, USERS


class PlannedMailing(NamedTuple):
    name: str
    sent: int
    drafted: int
    share: float  # of the contacts living when it was sent, that it was sent to


class Mailing(NamedTuple):
    id: int
    sent: int
    share: float


class Catalog(NamedTuple):
    """Ids, in the vocabulary's order."""

    tags: list[int]
    funnels: list[tuple[int, list[int]]]  # (funnel id, its stage ids)
    groups: list[int]
    users: list[int]
    mailings: list[Mailing]

    def references(self, account_id: int) -> dict[str, list[int]]:
        """Every row a contact row may refer to, by table (the account's own included)."""
        return {
            "accounts": [account_id],
            "tags": self.tags,
            "funnels": [funnel_id for funnel_id, _ in self.funnels],
            "stages": [stage for _, stages in self.funnels for stage in stages],
            "groups": self.groups,
            "users": self.users,
            "mailings": [mailing.id for mailing in self.mailings],
        }


def plan_mailings(rng: random.Random, now: int) -> list[PlannedMailing]:
    """One in each of the last 12 calendar months, mid-morning UTC, named for its month."""
    today = datetime.fromtimestamp(now, UTC)
    planned = []
    for back in range(12, 0, -1):
        year, month = divmod(today.year * 12 + today.month - 1 - back, 12)
        sent = int(datetime(year, month + 1, rng.randrange(3, 27), tzinfo=UTC).timestamp())
        sent += rng.randrange(7 * 3600, 11 * 3600)
        drafted = sent - rng.randrange(DAY, 7 * DAY)
        name = f"{MAILINGS[month]} {year}"
        planned.append(PlannedMailing(name, sent, drafted, rng.uniform(0.2, 0.6)))
    return planned


def store_catalog(engine: Engine, account_id: int, mailings: list[PlannedMailing]) -> Catalog:
    with engine.begin() as conn:
        found = conn.execute(sa.select(t.accounts.c.id).where(t.accounts.c.id == account_id))
        if found.first() is None:
            raise ValueError(f"account {account_id} does not exist")
        tags = ensure_named(conn, t.tags, account_id, TAGS)
        funnels = ensure_named(conn, t.funnels, account_id, [name for name, _, _ in FUNNELS])
        funnel_ids = [funnels[name_key(name)] for name, _, _ in FUNNELS]
        groups = ensure_named(conn, t.groups, account_id, GROUPS)
        users = ensure_users(conn, account_id, [email for email, _ in USERS])
        return Catalog(
            tags=[tags[name_key(name)] for name in TAGS],
            funnels=[
                (funnel_id, _ensure_stages(conn, account_id, funnel_id, stages))
                for funnel_id, (_, stages, _) in zip(funnel_ids, FUNNELS, strict=True)
            ],
            groups=[groups[name_key(name)] for name in GROUPS],
            users=[users[email] for email, _ in USERS],
            mailings=_ensure_mailings(conn, account_id, mailings),
        )


def _ensure_stages(conn: Connection, account_id: int, funnel_id: int, names) -> list[int]:
    """The stages' ids; the missing ones are added after the funnel's last stage."""
    st = t.stages
    found = dict(
        conn.execute(sa.select(st.c.name_key, st.c.id).where(st.c.funnel_id == funnel_id)).all()
    )
    top = conn.execute(
        sa.select(sa.func.max(st.c.position)).where(st.c.funnel_id == funnel_id)
    ).scalar()
    position = -1 if top is None else top
    for name in names:
        if name_key(name) not in found:
            position += 1
            found[name_key(name)] = conn.execute(
                sa.insert(st)
                .values(
                    account_id=account_id,
                    funnel_id=funnel_id,
                    name=name,
                    name_key=name_key(name),
                    position=position,
                )
                .returning(st.c.id)
            ).scalar_one()
    return [found[name_key(n)] for n in names]


def _ensure_mailings(
    conn: Connection, account_id: int, planned: list[PlannedMailing]
) -> list[Mailing]:
    """A mailing of the same name is reused as it was sent: a second run sends the same
    mailings to its own contacts."""
    existing = {
        name: (mailing_id, int(sent_at.timestamp()))
        for mailing_id, name, sent_at in conn.execute(
            sa.select(t.mailings.c.id, t.mailings.c.name, t.mailings.c.sent_at)
            .where(
                t.mailings.c.account_id == account_id,
                t.mailings.c.name.in_([p.name for p in planned]),
            )
            .order_by(t.mailings.c.id)
        )
    }
    mailings = []
    for name, sent, drafted, share in planned:
        if name in existing:
            mailing_id, sent = existing[name]
        else:
            mailing_id = conn.execute(
                sa.insert(t.mailings)
                .values(
                    account_id=account_id,
                    name=name,
                    sent_at=datetime.fromtimestamp(sent, UTC),
                    created_at=datetime.fromtimestamp(drafted, UTC),
                )
                .returning(t.mailings.c.id)
            ).scalar_one()
        mailings.append(Mailing(mailing_id, sent, share))
    return mailings
