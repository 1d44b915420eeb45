"""Funnels, mailings, events and groups: set-based writes and reads, scoped by account."""

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from app import references
from app import tables as t
from app.catalog.schemas import EventIn, FunnelIn, MailingIn
from app.contacts.service import contact_ids_by_email
from app.errors import Conflict, Invalid, NotFound
from app.names import name_key

BATCH = 1000  # rows an INSERT


def _unknown_emails(emails: list[str], found: dict[str, int], what: str) -> None:
    problems = [
        {"path": f"{what}[{i}].email", "message": f"no contact with e-mail '{email}'"}
        for i, email in enumerate(emails)
        if email not in found
    ]
    if problems:
        raise Invalid(f"{problems[0]['path']}: {problems[0]['message']}", details=problems[:100])


# --- funnels ----------------------------------------------------------------------------


def create_funnel(conn: Connection, account_id: int, body: FunnelIn) -> dict:
    keys = [name_key(s) for s in body.stages]
    dupes = [i for i, k in enumerate(keys) if k in keys[:i]]
    if dupes:
        raise Invalid.at(f"stages[{dupes[0]}]", "stage names must differ (ignoring case)")
    try:
        with conn.begin_nested():
            funnel_id = conn.execute(
                sa.insert(t.funnels)
                .values(
                    account_id=account_id,
                    name=body.name,
                    name_key=name_key(body.name),
                    created_at=t.utcnow(),
                )
                .returning(t.funnels.c.id)
            ).scalar_one()
    except IntegrityError:
        raise Conflict(f"a funnel named '{body.name}' exists") from None
    conn.execute(
        sa.insert(t.stages),
        [
            {
                "account_id": account_id,
                "funnel_id": funnel_id,
                "name": s,
                "name_key": k,
                "position": i,
            }
            for i, (s, k) in enumerate(zip(body.stages, keys, strict=True))
        ],
    )
    return {
        "id": funnel_id,
        "name": body.name,
        "stages": body.stages,
        "contacts": dict.fromkeys(body.stages, 0),
    }


def get_funnel(conn: Connection, account_id: int, funnel_id: int) -> dict:
    found = list_funnels(conn, account_id, funnel_id)
    if not found:
        raise NotFound(f"funnel {funnel_id} not found")
    return found[0]


def list_funnels(conn: Connection, account_id: int, funnel_id: int | None = None) -> list[dict]:
    """Funnels with their stages in order, and how many contacts stand at each stage (one
    grouped read of the account-led funnel index)."""
    cf = t.contact_funnels
    at_stage = (
        sa.select(cf.c.stage_id, sa.func.count().label("n"))
        .where(cf.c.account_id == account_id)
        .group_by(cf.c.stage_id)
    )
    query = (
        sa.select(
            t.funnels.c.id, t.funnels.c.name, t.stages.c.id.label("stage_id"), t.stages.c.name
        )
        .join(t.stages, t.stages.c.funnel_id == t.funnels.c.id)
        .where(t.funnels.c.account_id == account_id)
        .order_by(t.funnels.c.id, t.stages.c.position)
    )
    if funnel_id is not None:
        query = query.where(t.funnels.c.id == funnel_id)
        at_stage = at_stage.where(cf.c.funnel_id == funnel_id)
    counts = dict(conn.execute(at_stage).all())
    out: dict[int, dict] = {}
    for fid, name, stage_id, stage in conn.execute(query):
        funnel = out.setdefault(fid, {"id": fid, "name": name, "stages": [], "contacts": {}})
        funnel["stages"].append(stage)
        funnel["contacts"][stage] = counts.get(stage_id, 0)
    return list(out.values())


# --- mailings ---------------------------------------------------------------------------


def create_mailing(conn: Connection, account_id: int, body: MailingIn) -> dict:
    emails = [r.email for r in body.recipients]
    found = contact_ids_by_email(conn, account_id, emails)
    _unknown_emails(emails, found, "recipients")
    mailing_id = conn.execute(
        sa.insert(t.mailings)
        .values(account_id=account_id, name=body.name, sent_at=body.sent_at, created_at=t.utcnow())
        .returning(t.mailings.c.id)
    ).scalar_one()
    rows: dict[int, dict] = {}
    for r in body.recipients:  # one row per contact: a later entry for an e-mail wins
        rows[found[r.email]] = {
            "mailing_id": mailing_id,
            "contact_id": found[r.email],
            "account_id": account_id,
            "sent_at": r.sent_at or body.sent_at,
            "opened_at": r.opened_at,
            "clicked_at": r.clicked_at,
            "bounced": r.bounced,
        }
    values = list(rows.values())
    for i in range(0, len(values), BATCH):
        conn.execute(sa.insert(t.mailing_recipients), values[i : i + BATCH])
    return {"id": mailing_id, "name": body.name, "sent_at": body.sent_at, "recipients": len(values)}


def get_mailing(conn: Connection, account_id: int, mailing_id: int) -> dict:
    row = conn.execute(
        sa.select(t.mailings.c.id, t.mailings.c.name, t.mailings.c.sent_at).where(
            t.mailings.c.account_id == account_id, t.mailings.c.id == mailing_id
        )
    ).first()
    if row is None:
        raise NotFound(f"mailing {mailing_id} not found")
    count = conn.execute(
        sa.select(sa.func.count()).where(t.mailing_recipients.c.mailing_id == mailing_id)
    ).scalar_one()
    return {**row._mapping, "recipients": count}


def list_mailings(conn: Connection, account_id: int) -> list[dict]:
    r = t.mailing_recipients
    counts = (
        sa.select(r.c.mailing_id, sa.func.count().label("n"))
        .where(r.c.account_id == account_id)
        .group_by(r.c.mailing_id)
        .subquery()
    )
    rows = conn.execute(
        sa.select(
            t.mailings.c.id,
            t.mailings.c.name,
            t.mailings.c.sent_at,
            sa.func.coalesce(counts.c.n, 0).label("recipients"),
        )
        .outerjoin(counts, counts.c.mailing_id == t.mailings.c.id)
        .where(t.mailings.c.account_id == account_id)
        .order_by(t.mailings.c.id)
    ).mappings()
    return [dict(r) for r in rows]


# --- events -----------------------------------------------------------------------------


def create_events(conn: Connection, account_id: int, events: list[EventIn]) -> dict:
    emails = [e.email for e in events]
    found = contact_ids_by_email(conn, account_id, emails)
    _unknown_emails(emails, found, "events")
    rows = [
        {
            "account_id": account_id,
            "contact_id": found[e.email],
            "type": e.type,
            "occurred_at": e.occurred_at,
            "value": e.value,
            "products": e.products,
            "details": e.details,
        }
        for e in events
    ]
    for i in range(0, len(rows), BATCH):
        conn.execute(sa.insert(t.events), rows[i : i + BATCH])
    return {"created": len(rows)}


# --- groups -----------------------------------------------------------------------------


def _group_query(account_id: int):
    gm = t.group_members
    members = (
        sa.select(sa.func.count())
        .where(gm.c.group_id == t.groups.c.id)
        .scalar_subquery()
        .label("members")
    )
    return sa.select(t.groups.c.id, t.groups.c.name, t.groups.c.created_at, members).where(
        t.groups.c.account_id == account_id
    )


def get_group(conn: Connection, account_id: int, group_id: int) -> dict:
    row = conn.execute(_group_query(account_id).where(t.groups.c.id == group_id)).mappings().first()
    if row is None:
        raise NotFound(f"group {group_id} not found")
    return dict(row)


def list_groups(conn: Connection, account_id: int) -> list[dict]:
    return [
        dict(r) for r in conn.execute(_group_query(account_id).order_by(t.groups.c.id)).mappings()
    ]


def create_group(conn: Connection, account_id: int, name: str) -> dict:
    try:
        with conn.begin_nested():
            group_id = conn.execute(
                sa.insert(t.groups)
                .values(
                    account_id=account_id, name=name, name_key=name_key(name), created_at=t.utcnow()
                )
                .returning(t.groups.c.id)
            ).scalar_one()
    except IntegrityError:
        raise Conflict(f"a group named '{name}' exists") from None
    return get_group(conn, account_id, group_id)


def rename_group(conn: Connection, account_id: int, group_id: int, name: str) -> dict:
    references.guard(conn, account_id, "group", group_id, rename_to=name)
    try:
        with conn.begin_nested():
            conn.execute(
                sa.update(t.groups)
                .where(t.groups.c.account_id == account_id, t.groups.c.id == group_id)
                .values(name=name, name_key=name_key(name))
            )
    except IntegrityError:
        raise Conflict(f"a group named '{name}' exists") from None
    return get_group(conn, account_id, group_id)


def delete_group(conn: Connection, account_id: int, group_id: int) -> None:
    references.guard(conn, account_id, "group", group_id)
    conn.execute(sa.delete(t.group_members).where(t.group_members.c.group_id == group_id))
    conn.execute(
        sa.delete(t.groups).where(t.groups.c.account_id == account_id, t.groups.c.id == group_id)
    )
