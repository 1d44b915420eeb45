"""What a front end builds its screens with: the account's contacts listed and searched,
and pickers (tags, owners, event types, detail names) with how many use each, sorted by
name, filtered by a prefix, paged by a cursor (the last name of the page)."""

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from app import tables as t
from app.contacts.service import ensure_named, load_contacts
from app.names import name_key

c = t.contacts


def _like_prefix(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def list_contacts(
    conn: Connection,
    account_id: int,
    *,
    after: int | None,
    limit: int,
    email: str | None,
    q: str | None,
) -> dict:
    """Contacts in id order after the cursor; `email`: the one with that address (any
    case); `q`: a prefix of the e-mail, first or last name (any case)."""
    query = sa.select(c.c.id).where(c.c.account_id == account_id).order_by(c.c.id).limit(limit + 1)
    if after is not None:
        query = query.where(c.c.id > after)
    if email is not None:
        query = query.where(c.c.email == email.strip().lower())
    if q:
        pattern = _like_prefix(q.strip().lower())
        query = query.where(
            sa.or_(
                c.c.email.like(pattern, escape="\\"),
                sa.func.lower(c.c.first_name).like(pattern, escape="\\"),
                sa.func.lower(c.c.last_name).like(pattern, escape="\\"),
            )
        )
    ids = list(conn.execute(query).scalars())
    more = len(ids) > limit
    ids = ids[:limit]
    return {
        "contacts": load_contacts(conn, account_id, ids),
        "next_after": ids[-1] if more else None,
    }


def _page(rows: list, limit: int, key: str) -> tuple[list, str | None]:
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1][key] if more and rows else None)


def _named(query: sa.Select, column, prefix: str | None, after: str | None, limit: int):
    if prefix:
        query = query.where(column.like(_like_prefix(prefix), escape="\\"))
    if after is not None:
        query = query.where(column > after)
    return query.order_by(column).limit(limit + 1)


def _counted(
    conn,
    account_id: int,
    things: sa.Table,
    name,
    links: sa.Table,
    thing,
    key: str,
    prefix,
    after,
    limit,
) -> tuple[list, str | None]:
    """A page of `things` by `name`, each with its rows in `links` (by `thing`), as
    {key: name, "contacts": n}, and the next cursor."""
    page = conn.execute(
        _named(
            sa.select(things.c.id, name.label("name")).where(things.c.account_id == account_id),
            name,
            prefix,
            after,
            limit,
        )
    ).all()
    counts = _counts(conn, links, thing, account_id, [r.id for r in page[:limit]])
    rows = [{key: r.name, "contacts": counts.get(r.id, 0)} for r in page]
    return _page(rows, limit, key)


def tags(conn: Connection, account_id: int, prefix, after, limit) -> dict:
    """Tags by name (as written), each with the contacts that have it."""
    tg, ct = t.tags, t.contact_tags
    rows, next_after = _counted(
        conn, account_id, tg, tg.c.name, ct, ct.c.tag_id, "name", prefix, after, limit
    )
    return {"tags": rows, "next_after": next_after}


def owners(conn: Connection, account_id: int, prefix, after, limit) -> dict:
    us, co = t.users, t.contact_owners
    prefix = prefix.lower() if prefix else prefix
    rows, next_after = _counted(
        conn, account_id, us, us.c.email, co, co.c.user_id, "email", prefix, after, limit
    )
    return {"owners": rows, "next_after": next_after}


def _counts(conn: Connection, table: sa.Table, thing, account_id: int, ids: list[int]) -> dict:
    """{thing id: rows} for one page of things: an index range a thing."""
    if not ids:
        return {}
    return dict(
        conn.execute(
            sa.select(thing, sa.func.count())
            .where(table.c.account_id == account_id, thing.in_(ids))
            .group_by(thing)
        ).all()
    )


def event_types(conn: Connection, account_id: int, prefix, after, limit) -> dict:
    ev = t.events
    query = (
        sa.select(
            ev.c.type.label("type"),
            sa.func.count().label("events"),
            sa.func.max(ev.c.occurred_at).label("last_at"),
        )
        .where(ev.c.account_id == account_id)
        .group_by(ev.c.type)
    )
    rows = [r._asdict() for r in conn.execute(_named(query, ev.c.type, prefix, after, limit))]
    rows, next_after = _page(rows, limit, "type")
    return {"event_types": rows, "next_after": next_after}


def details(conn: Connection, account_id: int, prefix, after, limit) -> dict:
    cd = t.contact_details
    query = (
        sa.select(cd.c.name.label("name"), sa.func.count().label("contacts"))
        .where(cd.c.account_id == account_id)
        .group_by(cd.c.name)
    )
    rows = [r._asdict() for r in conn.execute(_named(query, cd.c.name, prefix, after, limit))]
    rows, next_after = _page(rows, limit, "name")
    return {"details": rows, "next_after": next_after}


def create_tag(conn: Connection, account_id: int, name: str) -> tuple[dict, bool]:
    """The tag named so (ignoring case), created when missing: (tag, created now?)."""
    tg = t.tags
    existing = conn.execute(
        sa.select(tg.c.id).where(tg.c.account_id == account_id, tg.c.name_key == name_key(name))
    ).scalar_one_or_none()
    tag_id = existing or ensure_named(conn, tg, account_id, [name])[name_key(name)]
    row = conn.execute(
        sa.select(tg.c.id, tg.c.name, tg.c.created_at).where(tg.c.id == tag_id)
    ).one()
    return {
        **row._asdict(),
        "contacts": _counts(
            conn, t.contact_tags, t.contact_tags.c.tag_id, account_id, [tag_id]
        ).get(tag_id, 0),
    }, existing is None
