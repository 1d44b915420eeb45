"""Loading and reading contacts: set-based, one transaction per request."""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from app import tables as t
from app.contacts.columns import COLUMNS, NEW_CONTACT, SETTABLE
from app.contacts.schemas import ContactIn
from app.db import dialect_insert, in_ids, insert_rows
from app.errors import Invalid
from app.names import name_key

BATCH = 1000  # names a lookup
ROWS_BATCH = 10_000  # rows an INSERT … SELECT (db.insert_rows: a parameter a column)

FunnelStages = dict[tuple[str, str], tuple[int, int]]


def _batches(items: list, size: int = BATCH) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def count_contacts(conn: Connection, account_id: int) -> int:
    return conn.execute(
        sa.select(sa.func.count())
        .select_from(t.contacts)
        .where(t.contacts.c.account_id == account_id)
    ).scalar_one()


def contact_ids_by_email(conn: Connection, account_id: int, emails: list[str]) -> dict[str, int]:
    """E-mail → id of the account's contacts with these e-mails (unknown ones left out)."""
    wanted = sorted(set(emails))
    found: dict[str, int] = {}
    for batch in _batches(wanted):
        found.update(
            conn.execute(
                sa.select(t.contacts.c.email, t.contacts.c.id).where(
                    t.contacts.c.account_id == account_id, t.contacts.c.email.in_(batch)
                )
            ).all()
        )
    return found


def ensure_named(
    conn: Connection, table: sa.Table, account_id: int, names: Iterable[str]
) -> dict[str, int]:
    """Create missing tags/groups by name (ignoring case); return name_key → id."""
    wanted: dict[str, str] = {}
    for name in names:
        wanted.setdefault(name_key(name), name)
    if not wanted:
        return {}
    now = t.utcnow()
    rows = [
        {"account_id": account_id, "name": name, "name_key": key, "created_at": now}
        for key, name in wanted.items()
    ]
    for batch in _batches(rows):
        conn.execute(dialect_insert(conn, table).on_conflict_do_nothing(), batch)
    found: dict[str, int] = {}
    keys = list(wanted)
    for batch in _batches(keys):
        found.update(
            conn.execute(
                sa.select(table.c.name_key, table.c.id).where(
                    table.c.account_id == account_id, table.c.name_key.in_(batch)
                )
            ).all()
        )
    return found


def ensure_users(conn: Connection, account_id: int, emails: Iterable[str]) -> dict[str, int]:
    wanted = sorted({e.lower() for e in emails})
    if not wanted:
        return {}
    now = t.utcnow()
    conn.execute(
        dialect_insert(conn, t.users).on_conflict_do_nothing(),
        [{"account_id": account_id, "email": e, "created_at": now} for e in wanted],
    )
    return dict(
        conn.execute(
            sa.select(t.users.c.email, t.users.c.id).where(
                t.users.c.account_id == account_id, t.users.c.email.in_(wanted)
            )
        ).all()
    )


def resolve_funnel_stages(
    conn: Connection, account_id: int, pairs: Iterable[tuple[str, str]]
) -> FunnelStages:
    """(funnel key, stage key) → (funnel id, stage id) for those that exist."""
    funnel_keys = {f for f, _ in pairs}
    if not funnel_keys:
        return {}
    rows = conn.execute(
        sa.select(t.funnels.c.name_key, t.stages.c.name_key, t.funnels.c.id, t.stages.c.id)
        .join(t.stages, t.stages.c.funnel_id == t.funnels.c.id)
        .where(t.funnels.c.account_id == account_id, t.funnels.c.name_key.in_(funnel_keys))
    ).all()
    return {(f, s): (fid, sid) for f, s, fid, sid in rows}


# --- upsert ---------------------------------------------------------------------------


@dataclass
class Merged:
    """The entries of one request for one e-mail, merged: later fields win, lists add up."""

    index: int  # of the first entry, for error paths
    fields: dict = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    owners: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    details: dict[str, str | None] = field(default_factory=dict)
    # funnel key → (index of the entry, funnel as sent, stage key)
    funnels: dict[str, tuple[int, str, str]] = field(default_factory=dict)


def _merge(entries: list[ContactIn]) -> dict[str, Merged]:
    merged: dict[str, Merged] = {}
    for index, entry in enumerate(entries):
        item = merged.setdefault(entry.email, Merged(index))
        for name in SETTABLE:
            if name in entry.model_fields_set:
                value = getattr(entry, name)
                if value is None and name == "created_at":
                    continue
                item.fields[name] = value.value if hasattr(value, "value") else value
        item.tags += entry.tags
        item.owners += entry.owners
        item.groups += entry.groups
        item.details.update(entry.details)
        for funnel, stage in entry.funnels.items():
            item.funnels[name_key(funnel)] = (index, funnel, name_key(stage))
    return merged


def upsert_contacts(conn: Connection, account_id: int, entries: list[ContactIn]) -> dict:
    """Create or update contacts by e-mail, with their tags, groups, owners, details and
    funnel stages; funnels and stages must exist (checked before anything is written)."""
    merged = _merge(entries)
    stage_ids = _funnel_stages(conn, account_id, merged)
    now = t.utcnow()
    existing = contact_ids_by_email(conn, account_id, list(merged))
    created = _insert_new(conn, account_id, merged, existing, now)
    _update_existing(conn, merged, existing, now)
    ids = {**existing, **created}
    _add_related(conn, account_id, merged, ids, stage_ids, now)
    return {"created": len(created), "updated": len(existing), "ids": ids}


def _funnel_stages(conn: Connection, account_id: int, merged: dict[str, Merged]) -> FunnelStages:
    """The funnel and stage ids the entries name; a 422 if one is unknown."""
    pairs = {(f, s) for item in merged.values() for f, (_, _, s) in item.funnels.items()}
    stage_ids = resolve_funnel_stages(conn, account_id, pairs)
    missing = [
        (f, index, funnel)
        for item in merged.values()
        for f, (index, funnel, s) in item.funnels.items()
        if (f, s) not in stage_ids
    ]
    if not missing:
        return stage_ids
    known = set(
        conn.execute(
            sa.select(t.funnels.c.name_key).where(
                t.funnels.c.account_id == account_id,
                t.funnels.c.name_key.in_({f for f, _, _ in missing}),
            )
        ).scalars()
    )
    problems = [
        {
            "path": f"contacts[{index}].funnels.{funnel}",
            "message": f"unknown {'stage' if f in known else 'funnel'}",
        }
        for f, index, funnel in missing
    ]
    raise Invalid(f"{problems[0]['path']}: {problems[0]['message']}", details=problems)


def _insert_new(
    conn: Connection, account_id: int, merged: dict[str, Merged], existing: dict[str, int], now
) -> dict[str, int]:
    """Insert the contacts not there yet; return their ids by e-mail."""
    rows = [
        {"email": email, **NEW_CONTACT, "created_at": now, **item.fields}
        for email, item in merged.items()
        if email not in existing
    ]
    ids: dict[str, int] = {}
    constants = {"account_id": account_id, "updated_at": now}
    for batch in _batches(rows, ROWS_BATCH):
        ids.update(
            conn.execute(
                insert_rows(conn, t.contacts, batch, constants).returning(
                    t.contacts.c.email, t.contacts.c.id
                )
            ).all()
        )
    return ids


def _update_existing(
    conn: Connection, merged: dict[str, Merged], existing: dict[str, int], now
) -> None:
    """Set the given fields of contacts that exist: one executemany per set of fields."""
    by_fields: dict[tuple[str, ...], list[dict]] = defaultdict(list)
    for email, item in merged.items():
        if email in existing and item.fields:
            by_fields[tuple(sorted(item.fields))].append(
                {"_id": existing[email], **{f"_{k}": v for k, v in item.fields.items()}}
            )
    for fields, rows in by_fields.items():
        stmt = (
            sa.update(t.contacts)
            .where(t.contacts.c.id == sa.bindparam("_id"))
            .values(updated_at=now, **{f: sa.bindparam(f"_{f}") for f in fields})
        )
        for batch in _batches(rows):
            conn.execute(stmt, batch)


# --- tags, groups, owners, details and funnels of upserted contacts ---------------------


@dataclass
class _Related:
    """Rows of the link tables (and details) for the upserted contacts."""

    tags: list[dict] = field(default_factory=list)
    groups: list[dict] = field(default_factory=list)
    owners: list[dict] = field(default_factory=list)
    details_set: list[dict] = field(default_factory=list)
    details_deleted: list[dict] = field(default_factory=list)
    funnels: list[dict] = field(default_factory=list)


def _add_related(
    conn: Connection,
    account_id: int,
    merged: dict[str, Merged],
    ids: dict[str, int],
    stage_ids: FunnelStages,
    now,
) -> None:
    items = merged.values()
    tag_ids = ensure_named(conn, t.tags, account_id, (n for i in items for n in i.tags))
    group_ids = ensure_named(conn, t.groups, account_id, (n for i in items for n in i.groups))
    user_ids = ensure_users(conn, account_id, (e for i in items for e in i.owners))
    related = _Related()
    for email, item in merged.items():
        cid = ids[email]
        for key in {name_key(n) for n in item.tags}:
            related.tags.append({"contact_id": cid, "tag_id": tag_ids[key]})
        for key in {name_key(n) for n in item.groups}:
            related.groups.append({"group_id": group_ids[key], "contact_id": cid})
        for owner in set(item.owners):
            related.owners.append({"contact_id": cid, "user_id": user_ids[owner]})
        for name, value in item.details.items():
            if value is None:
                related.details_deleted.append({"_cid": cid, "_name": name})
            else:
                related.details_set.append({"contact_id": cid, "name": name, "value": value})
        for f, (_, _, s) in item.funnels.items():
            fid, sid = stage_ids[(f, s)]
            related.funnels.append({"contact_id": cid, "funnel_id": fid, "stage_id": sid})
    _add_tags_groups_owners(conn, account_id, related, now)
    _write_details(conn, account_id, related)
    _write_funnels(conn, account_id, related.funnels, now)


def _add_tags_groups_owners(conn: Connection, account_id: int, related: _Related, now) -> None:
    added = {"account_id": account_id, "added_at": now}
    for table, rows in (
        (t.contact_tags, related.tags),
        (t.group_members, related.groups),
        (t.contact_owners, related.owners),
    ):
        for batch in _batches(rows, ROWS_BATCH):
            conn.execute(insert_rows(conn, table, batch, added).on_conflict_do_nothing())


def _write_details(conn: Connection, account_id: int, related: _Related) -> None:
    for batch in _batches(related.details_set, ROWS_BATCH):
        ins = insert_rows(conn, t.contact_details, batch, {"account_id": account_id})
        conn.execute(
            ins.on_conflict_do_update(
                index_elements=["account_id", "contact_id", "name"],
                set_={"value": ins.excluded.value},
            )
        )
    if related.details_deleted:
        conn.execute(
            sa.delete(t.contact_details).where(
                t.contact_details.c.contact_id == sa.bindparam("_cid"),
                t.contact_details.c.name == sa.bindparam("_name"),
            ),
            related.details_deleted,
        )


def _write_funnels(conn: Connection, account_id: int, rows: list[dict], now) -> None:
    """A contact's stage in a funnel; entered_at changes only when the stage does."""
    constants = {"account_id": account_id, "entered_at": now}
    for batch in _batches(rows, ROWS_BATCH):
        ins = insert_rows(conn, t.contact_funnels, batch, constants)
        conn.execute(
            ins.on_conflict_do_update(
                index_elements=["account_id", "contact_id", "funnel_id"],
                set_={"stage_id": ins.excluded.stage_id, "entered_at": ins.excluded.entered_at},
                where=t.contact_funnels.c.stage_id != ins.excluded.stage_id,
            )
        )


# --- reading --------------------------------------------------------------------------


def load_contacts(conn: Connection, account_id: int, ids: list[int]) -> list[dict]:
    """Full contacts (with tags, details, owners, funnels, groups), in the order of `ids`."""
    if not ids:
        return []
    rows = conn.execute(
        sa.select(*COLUMNS).where(
            t.contacts.c.account_id == account_id, in_ids(conn, t.contacts.c.id, ids)
        )
    ).mappings()
    contacts = {
        r["id"]: {**r, "tags": [], "details": {}, "owners": [], "funnels": {}, "groups": []}
        for r in rows
    }
    if contacts:
        _load_related(conn, contacts)
    return [contacts[i] for i in ids if i in contacts]


def _load_related(conn: Connection, contacts: dict[int, dict]) -> None:
    found = list(contacts)

    def each(query):
        return conn.execute(query).all()

    for cid, name in each(
        sa.select(t.contact_tags.c.contact_id, t.tags.c.name)
        .join(t.tags, t.tags.c.id == t.contact_tags.c.tag_id)
        .where(in_ids(conn, t.contact_tags.c.contact_id, found))
        .order_by(t.contact_tags.c.contact_id, t.tags.c.name)
    ):
        contacts[cid]["tags"].append(name)
    for cid, name, value in each(
        sa.select(
            t.contact_details.c.contact_id, t.contact_details.c.name, t.contact_details.c.value
        )
        .where(in_ids(conn, t.contact_details.c.contact_id, found))
        .order_by(t.contact_details.c.contact_id, t.contact_details.c.name)
    ):
        contacts[cid]["details"][name] = value
    for cid, email in each(
        sa.select(t.contact_owners.c.contact_id, t.users.c.email)
        .join(t.users, t.users.c.id == t.contact_owners.c.user_id)
        .where(in_ids(conn, t.contact_owners.c.contact_id, found))
        .order_by(t.contact_owners.c.contact_id, t.users.c.email)
    ):
        contacts[cid]["owners"].append(email)
    for cid, funnel, stage in each(
        sa.select(t.contact_funnels.c.contact_id, t.funnels.c.name, t.stages.c.name)
        .join(t.funnels, t.funnels.c.id == t.contact_funnels.c.funnel_id)
        .join(t.stages, t.stages.c.id == t.contact_funnels.c.stage_id)
        .where(in_ids(conn, t.contact_funnels.c.contact_id, found))
        .order_by(t.contact_funnels.c.contact_id, t.funnels.c.name)
    ):
        contacts[cid]["funnels"][funnel] = stage
    for cid, name in each(
        sa.select(t.group_members.c.contact_id, t.groups.c.name)
        .join(t.groups, t.groups.c.id == t.group_members.c.group_id)
        .where(in_ids(conn, t.group_members.c.contact_id, found))
        .order_by(t.group_members.c.contact_id, t.groups.c.name)
    ):
        contacts[cid]["groups"].append(name)
