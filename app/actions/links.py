"""Link tables: tags, owners, groups, funnel stages, details."""

import sqlalchemy as sa

from app import tables as t
from app.actions.base import ActionHandler, RunContext, c, chunk_contacts, register
from app.contacts.service import ensure_named, ensure_users
from app.db import dialect_insert, in_ids
from app.errors import Invalid
from app.names import name_key


def _keys(names: list[str]) -> list[str]:
    return sorted({name_key(n) for n in names})


@register
class AddTags(ActionHandler):
    type = "add_tags"

    def resolve(self, conn, account_id, path, *, create):
        self.keys = _keys(self.action.tags)
        self.tag_ids = (
            list(ensure_named(conn, t.tags, account_id, self.action.tags).values())
            if create
            else None
        )

    def changes(self, rc):
        ct = t.contact_tags
        having = (
            sa.select(sa.func.count())
            .select_from(ct.join(t.tags, t.tags.c.id == ct.c.tag_id))
            .where(ct.c.contact_id == c.c.id, t.tags.c.name_key.in_(self.keys))
            .scalar_subquery()
        )
        return having < len(self.keys)

    def apply(self, rc, ids):
        ct = t.contact_tags
        chunk = chunk_contacts(rc, ids).subquery()
        source = (
            sa.select(
                chunk.c.id,
                t.tags.c.id,
                sa.literal(rc.account_id),
                sa.literal(rc.now, t.UTCDateTime),
            )
            .select_from(chunk.join(t.tags, sa.true()))  # every chunk contact × every tag
            .where(t.tags.c.id.in_(self.tag_ids), t.tags.c.account_id == rc.account_id)
        )
        stmt = (
            dialect_insert(rc.conn, ct)
            .from_select(["contact_id", "tag_id", "account_id", "added_at"], source)
            .on_conflict_do_nothing()
            .returning(ct.c.contact_id)
        )
        return set(rc.conn.execute(stmt).scalars())


@register
class RemoveTags(ActionHandler):
    type = "remove_tags"

    def resolve(self, conn, account_id, path, *, create):
        self.keys = _keys(self.action.tags)

    def _tag_ids(self, rc):
        return sa.select(t.tags.c.id).where(
            t.tags.c.account_id == rc.account_id, t.tags.c.name_key.in_(self.keys)
        )

    def changes(self, rc):
        ct = t.contact_tags
        return sa.exists().where(ct.c.contact_id == c.c.id, ct.c.tag_id.in_(self._tag_ids(rc)))

    def apply(self, rc, ids):
        ct = t.contact_tags
        stmt = (
            sa.delete(ct)
            .where(
                ct.c.account_id == rc.account_id,
                in_ids(rc.conn, ct.c.contact_id, ids),
                ct.c.tag_id.in_(self._tag_ids(rc)),
            )
            .returning(ct.c.contact_id)
        )
        return set(rc.conn.execute(stmt).scalars())


class _AddLink(ActionHandler):
    """Insert (contact, thing) rows where missing."""

    table: sa.Table
    thing_column: str

    thing_id: int | None = None

    def changes(self, rc):
        if self.thing_id is None:
            return sa.true()
        tb = self.table
        return sa.not_(
            sa.exists().where(tb.c.contact_id == c.c.id, tb.c[self.thing_column] == self.thing_id)
        )

    def apply(self, rc, ids):
        tb = self.table
        chunk = chunk_contacts(rc, ids).subquery()
        stamp = "added_at"
        source = sa.select(
            chunk.c.id,
            sa.literal(self.thing_id),
            sa.literal(rc.account_id),
            sa.literal(rc.now, t.UTCDateTime),
        )
        stmt = (
            dialect_insert(rc.conn, tb)
            .from_select(
                ["contact_id", self.thing_column, "account_id", stamp], source.where(sa.true())
            )
            .on_conflict_do_nothing()
            .returning(tb.c.contact_id)
        )
        return set(rc.conn.execute(stmt).scalars())


class _RemoveLink(ActionHandler):
    table: sa.Table
    thing_column: str
    thing_id: int | None = None

    def changes(self, rc):
        if self.thing_id is None:
            return sa.false()
        tb = self.table
        return sa.exists().where(
            tb.c.contact_id == c.c.id, tb.c[self.thing_column] == self.thing_id
        )

    def apply(self, rc, ids):
        if self.thing_id is None:
            return set()
        tb = self.table
        stmt = (
            sa.delete(tb)
            .where(
                tb.c.account_id == rc.account_id,
                in_ids(rc.conn, tb.c.contact_id, ids),
                tb.c[self.thing_column] == self.thing_id,
            )
            .returning(tb.c.contact_id)
        )
        return set(rc.conn.execute(stmt).scalars())


def _find(conn, table, account_id, key_column, key):
    return conn.execute(
        sa.select(table.c.id).where(table.c.account_id == account_id, table.c[key_column] == key)
    ).scalar_one_or_none()


@register
class AddOwner(_AddLink):
    type = "add_owner"
    table = t.contact_owners
    thing_column = "user_id"

    def resolve(self, conn, account_id, path, *, create):
        email = self.action.owner.lower()
        if create:
            self.thing_id = ensure_users(conn, account_id, [email])[email]
        else:
            self.thing_id = _find(conn, t.users, account_id, "email", email)


@register
class RemoveOwner(_RemoveLink):
    type = "remove_owner"
    table = t.contact_owners
    thing_column = "user_id"

    def resolve(self, conn, account_id, path, *, create):
        self.thing_id = _find(conn, t.users, account_id, "email", self.action.owner.lower())


@register
class AddToGroup(_AddLink):
    """Insert defined addressees; the group is created when missing."""

    type = "add_to_group"
    table = t.group_members
    thing_column = "group_id"

    def resolve(self, conn, account_id, path, *, create):
        key = name_key(self.action.group)
        if create:
            self.thing_id = ensure_named(conn, t.groups, account_id, [self.action.group])[key]
        else:
            self.thing_id = _find(conn, t.groups, account_id, "name_key", key)


@register
class RemoveFromGroup(_RemoveLink):
    type = "remove_from_group"
    table = t.group_members
    thing_column = "group_id"

    def resolve(self, conn, account_id, path, *, create):
        self.thing_id = _find(conn, t.groups, account_id, "name_key", name_key(self.action.group))


def _funnel(conn, account_id, name, path):
    funnel_id = _find(conn, t.funnels, account_id, "name_key", name_key(name))
    if funnel_id is None:
        raise Invalid.at(f"{path}.funnel", f"unknown funnel '{name}'")
    return funnel_id


@register
class SetFunnelStage(ActionHandler):
    """One stage per funnel per contact, with the time it entered the stage."""

    type = "set_funnel_stage"

    def resolve(self, conn, account_id, path, *, create):
        self.funnel_id = _funnel(conn, account_id, self.action.funnel, path)
        self.stage_id = conn.execute(
            sa.select(t.stages.c.id).where(
                t.stages.c.funnel_id == self.funnel_id,
                t.stages.c.name_key == name_key(self.action.stage),
            )
        ).scalar_one_or_none()
        if self.stage_id is None:
            raise Invalid.at(
                f"{path}.stage", f"unknown stage '{self.action.stage}' in '{self.action.funnel}'"
            )

    def changes(self, rc):
        cf = t.contact_funnels
        return sa.not_(
            sa.exists().where(
                cf.c.contact_id == c.c.id,
                cf.c.funnel_id == self.funnel_id,
                cf.c.stage_id == self.stage_id,
            )
        )

    def apply(self, rc, ids):
        cf = t.contact_funnels
        chunk = chunk_contacts(rc, ids).subquery()
        source = sa.select(
            chunk.c.id,
            sa.literal(self.funnel_id),
            sa.literal(self.stage_id),
            sa.literal(rc.account_id),
            sa.literal(rc.now, t.UTCDateTime),
        ).where(sa.true())
        ins = dialect_insert(rc.conn, cf).from_select(
            ["contact_id", "funnel_id", "stage_id", "account_id", "entered_at"], source
        )
        stmt = ins.on_conflict_do_update(
            index_elements=["contact_id", "funnel_id"],
            set_={"stage_id": ins.excluded.stage_id, "entered_at": ins.excluded.entered_at},
            where=cf.c.stage_id != ins.excluded.stage_id,
        ).returning(cf.c.contact_id)
        return set(rc.conn.execute(stmt).scalars())


@register
class RemoveFromFunnel(_RemoveLink):
    type = "remove_from_funnel"
    table = t.contact_funnels
    thing_column = "funnel_id"

    def resolve(self, conn, account_id, path, *, create):
        self.thing_id = _funnel(conn, account_id, self.action.funnel, path)


@register
class SetDetail(ActionHandler):
    type = "set_detail"

    def changes(self, rc):
        cd = t.contact_details
        return sa.not_(
            sa.exists().where(
                cd.c.contact_id == c.c.id,
                cd.c.name == self.action.name,
                cd.c.value == self.action.value,
            )
        )

    def apply(self, rc, ids):
        cd = t.contact_details
        chunk = chunk_contacts(rc, ids).subquery()
        source = sa.select(
            chunk.c.id,
            sa.literal(self.action.name),
            sa.literal(self.action.value),
            sa.literal(rc.account_id),
        ).where(sa.true())
        ins = dialect_insert(rc.conn, cd).from_select(
            ["contact_id", "name", "value", "account_id"], source
        )
        stmt = ins.on_conflict_do_update(
            index_elements=["contact_id", "name"],
            set_={"value": ins.excluded.value},
            where=cd.c.value != ins.excluded.value,
        ).returning(cd.c.contact_id)
        return set(rc.conn.execute(stmt).scalars())


@register
class DeleteDetail(ActionHandler):
    type = "delete_detail"

    def changes(self, rc):
        cd = t.contact_details
        return sa.exists().where(cd.c.contact_id == c.c.id, cd.c.name == self.action.name)

    def apply(self, rc, ids):
        cd = t.contact_details
        stmt = (
            sa.delete(cd)
            .where(
                cd.c.account_id == rc.account_id,
                in_ids(rc.conn, cd.c.contact_id, ids),
                cd.c.name == self.action.name,
            )
            .returning(cd.c.contact_id)
        )
        return set(rc.conn.execute(stmt).scalars())


__all__ = ["RunContext"]
