"""Loading and reading contacts: set-based, one transaction per request."""

from collections import defaultdict
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from app import tables as t
from app.contacts.schemas import SCALAR_FIELDS, ContactIn
from app.db import dialect_insert, in_ids, insert_rows
from app.errors import Invalid
from app.names import name_key

BATCH = 1000  # names a lookup
ROWS_BATCH = 10_000  # rows an INSERT … SELECT (db.insert_rows: a parameter a column)

# A new contact's columns, before the request's own fields.
NEW_CONTACT = {
    "first_name": None,
    "last_name": None,
    "phone": None,
    "company": None,
    "city": None,
    "country": None,
    "birth_date": None,
    "sex": "unknown",
    "score": 0,
    "state": "PROSPECT",
    "email_opt_in": False,
    "phone_opt_in": False,
    "email_valid": True,
}


def _batches(items: list, size: int = BATCH) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


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
) -> dict[tuple[str, str], tuple[int, int]]:
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


def _merge(entries: list[tuple[int, ContactIn]]) -> dict[str, dict]:
    """Entries for the same e-mail merge in order: later fields win, lists add up."""
    merged: dict[str, dict] = {}
    for index, entry in entries:
        item = merged.setdefault(
            entry.email,
            {
                "index": index,
                "fields": {},
                "tags": [],
                "owners": [],
                "groups": [],
                "details": {},
                "funnels": {},
            },
        )
        for field in SCALAR_FIELDS:
            if field in entry.model_fields_set:
                value = getattr(entry, field)
                if value is None and field == "created_at":
                    continue
                item["fields"][field] = value.value if hasattr(value, "value") else value
        item["tags"] += entry.tags
        item["owners"] += entry.owners
        item["groups"] += entry.groups
        item["details"].update(entry.details)
        for funnel, stage in entry.funnels.items():
            item["funnels"][name_key(funnel)] = (index, funnel, name_key(stage))
    return merged


def upsert_contacts(conn: Connection, account_id: int, entries: list[ContactIn]) -> dict:
    merged = _merge(list(enumerate(entries)))

    # Funnels and stages must exist: check before writing anything.
    pairs = {(f, s) for item in merged.values() for f, (_, _, s) in item["funnels"].items()}
    stage_ids = resolve_funnel_stages(conn, account_id, pairs)
    problems = []
    for item in merged.values():
        for f, (index, funnel, s) in item["funnels"].items():
            if (f, s) not in stage_ids:
                known = {fk for fk, _ in stage_ids} | {
                    k
                    for (k,) in conn.execute(
                        sa.select(t.funnels.c.name_key).where(
                            t.funnels.c.account_id == account_id, t.funnels.c.name_key == f
                        )
                    )
                }
                what = "stage" if f in known else "funnel"
                problems.append(
                    {"path": f"contacts[{index}].funnels.{funnel}", "message": f"unknown {what}"}
                )
    if problems:
        raise Invalid(f"{problems[0]['path']}: {problems[0]['message']}", details=problems)

    now = t.utcnow()
    emails = list(merged)
    existing: dict[str, int] = {}
    for batch in _batches(emails):
        existing.update(
            conn.execute(
                sa.select(t.contacts.c.email, t.contacts.c.id).where(
                    t.contacts.c.account_id == account_id, t.contacts.c.email.in_(batch)
                )
            ).all()
        )

    new_rows = []
    for email, item in merged.items():
        if email in existing:
            continue
        row = {"email": email, **NEW_CONTACT, "created_at": now}
        row.update(item["fields"])
        new_rows.append(row)
    ids: dict[str, int] = dict(existing)
    constants = {"account_id": account_id, "updated_at": now}
    for batch in _batches(new_rows, ROWS_BATCH):
        ids.update(
            conn.execute(
                insert_rows(conn, t.contacts, batch, constants).returning(
                    t.contacts.c.email, t.contacts.c.id
                )
            ).all()
        )

    # Updates, grouped by the set of fields given, one executemany per group.
    by_fields: dict[tuple[str, ...], list[dict]] = defaultdict(list)
    for email, item in merged.items():
        if email in existing and item["fields"]:
            fields = tuple(sorted(item["fields"]))
            by_fields[fields].append(
                {"_id": existing[email], **{f"_{k}": v for k, v in item["fields"].items()}}
            )
    for fields, rows in by_fields.items():
        stmt = (
            sa.update(t.contacts)
            .where(t.contacts.c.id == sa.bindparam("_id"))
            .values(updated_at=now, **{f: sa.bindparam(f"_{f}") for f in fields})
        )
        for batch in _batches(rows):
            conn.execute(stmt, batch)

    _link_names(conn, account_id, merged, ids, now)
    return {"created": len(new_rows), "updated": len(existing)}


def _link_names(conn, account_id, merged, ids, now) -> None:
    tag_ids = ensure_named(
        conn, t.tags, account_id, (n for i in merged.values() for n in i["tags"])
    )
    group_ids = ensure_named(
        conn, t.groups, account_id, (n for i in merged.values() for n in i["groups"])
    )
    user_ids = ensure_users(conn, account_id, (e for i in merged.values() for e in i["owners"]))
    pairs = {(f, s) for item in merged.values() for f, (_, _, s) in item["funnels"].items()}
    stage_ids = resolve_funnel_stages(conn, account_id, pairs)

    contact_tags, members, owners, details_set, details_del, funnel_rows = [], [], [], [], [], []
    for email, item in merged.items():
        cid = ids[email]
        for key in {name_key(n) for n in item["tags"]}:
            contact_tags.append({"contact_id": cid, "tag_id": tag_ids[key]})
        for key in {name_key(n) for n in item["groups"]}:
            members.append({"group_id": group_ids[key], "contact_id": cid})
        for owner in set(item["owners"]):
            owners.append({"contact_id": cid, "user_id": user_ids[owner]})
        for name, value in item["details"].items():
            if value is None:
                details_del.append({"_cid": cid, "_name": name})
            else:
                details_set.append({"contact_id": cid, "name": name, "value": value})
        for f, (_, _, s) in item["funnels"].items():
            fid, sid = stage_ids[(f, s)]
            funnel_rows.append({"contact_id": cid, "funnel_id": fid, "stage_id": sid})

    for table, rows in (
        (t.contact_tags, contact_tags),
        (t.group_members, members),
        (t.contact_owners, owners),
    ):
        added = {"account_id": account_id, "added_at": now}
        for batch in _batches(rows, ROWS_BATCH):
            conn.execute(insert_rows(conn, table, batch, added).on_conflict_do_nothing())
    for batch in _batches(details_set, ROWS_BATCH):
        ins = insert_rows(conn, t.contact_details, batch, {"account_id": account_id})
        conn.execute(
            ins.on_conflict_do_update(
                index_elements=["contact_id", "name"], set_={"value": ins.excluded.value}
            )
        )
    if details_del:
        conn.execute(
            sa.delete(t.contact_details).where(
                t.contact_details.c.contact_id == sa.bindparam("_cid"),
                t.contact_details.c.name == sa.bindparam("_name"),
            ),
            details_del,
        )
    for batch in _batches(funnel_rows, ROWS_BATCH):
        ins = insert_rows(
            conn, t.contact_funnels, batch, {"account_id": account_id, "entered_at": now}
        )
        conn.execute(
            ins.on_conflict_do_update(
                index_elements=["contact_id", "funnel_id"],
                set_={"stage_id": ins.excluded.stage_id, "entered_at": ins.excluded.entered_at},
                where=t.contact_funnels.c.stage_id != ins.excluded.stage_id,
            )
        )


CONTACT_COLUMNS = [c for c in t.contacts.c if c.name != "account_id"]


def load_contacts(conn: Connection, account_id: int, ids: list[int]) -> list[dict]:
    """Full contacts (with tags, details, owners, funnels, groups), in the order of `ids`."""
    if not ids:
        return []
    rows = conn.execute(
        sa.select(*CONTACT_COLUMNS).where(
            t.contacts.c.account_id == account_id, in_ids(conn, t.contacts.c.id, ids)
        )
    ).mappings()
    contacts = {
        r["id"]: {**r, "tags": [], "details": {}, "owners": [], "funnels": {}, "groups": []}
        for r in rows
    }
    if not contacts:
        return []
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
    return [contacts[i] for i in ids if i in contacts]
