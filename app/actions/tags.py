"""Tags: add (creating the tags at job start), remove."""

from typing import Literal

import sqlalchemy as sa
from pydantic import Field

from app import tables as t
from app.actions import changes
from app.actions.base import (
    ActionHandler,
    ActionModel,
    ResolveContext,
    RunContext,
    c,
    chunk_contacts,
    handles,
)
from app.contacts.service import ensure_named
from app.db import dialect_insert, in_ids
from app.names import Name, name_key


def _keys(names: list[str]) -> list[str]:
    return sorted({name_key(n) for n in names})


class AddTags(ActionModel):
    """Adds tags to the contact (with the time they were added)."""

    type: Literal["add_tags"]
    tags: list[Name] = Field(
        min_length=1,
        max_length=1000,
        description="Tag names, ignoring case; a tag new to the account is created when the "
        "job starts.",
    )


@handles(AddTags)
class AddTagsHandler(ActionHandler):
    def resolve(self, ctx: ResolveContext) -> None:
        self.keys = _keys(self.action.tags)
        self.tag_ids = (
            list(ensure_named(ctx.conn, t.tags, ctx.account_id, self.action.tags).values())
            if ctx.create
            else None
        )

    def changes(self, rc: RunContext):
        ct = t.contact_tags
        having = (
            sa.select(sa.func.count())
            .select_from(ct.join(t.tags, t.tags.c.id == ct.c.tag_id))
            .where(ct.c.contact_id == c.c.id, t.tags.c.name_key.in_(self.keys))
            .scalar_subquery()
        )
        return having < len(self.keys)

    def apply(self, rc: RunContext, ids: list[int]) -> set[int]:
        ct = t.contact_tags
        chunk = chunk_contacts(rc, ids).subquery()
        tags = t.tags
        log_first = (
            sa.select(*changes.rows(chunk.c.id, "tag", ref=tags.c.id, after="1", after_at=rc.now))
            .select_from(chunk.join(tags, sa.true()))
            .where(
                tags.c.id.in_(self.tag_ids),
                tags.c.account_id == rc.account_id,
                ~sa.exists().where(ct.c.contact_id == chunk.c.id, ct.c.tag_id == tags.c.id),
            )
        )
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
        ins = (
            dialect_insert(rc.conn, ct)
            .from_select(["contact_id", "tag_id", "account_id", "added_at"], source)
            .on_conflict_do_nothing()
        )
        return changes.insert_logged(rc, self.type, ins, "tag", "tag_id", "added_at", log_first)


class RemoveTags(ActionModel):
    """Removes tags from the contact."""

    type: Literal["remove_tags"]
    tags: list[Name] = Field(
        min_length=1,
        max_length=1000,
        description="Tag names, ignoring case; a name the account does not have removes nothing.",
    )


@handles(RemoveTags)
class RemoveTagsHandler(ActionHandler):
    def resolve(self, ctx: ResolveContext) -> None:
        self.keys = _keys(self.action.tags)

    def _tag_ids(self, rc: RunContext):
        return sa.select(t.tags.c.id).where(
            t.tags.c.account_id == rc.account_id, t.tags.c.name_key.in_(self.keys)
        )

    def changes(self, rc: RunContext):
        ct = t.contact_tags
        return sa.exists().where(ct.c.contact_id == c.c.id, ct.c.tag_id.in_(self._tag_ids(rc)))

    def apply(self, rc: RunContext, ids: list[int]) -> set[int]:
        ct = t.contact_tags
        mine = [
            ct.c.account_id == rc.account_id,
            in_ids(rc.conn, ct.c.contact_id, ids),
            ct.c.tag_id.in_(self._tag_ids(rc)),
        ]
        return changes.delete_logged(
            rc, self.type, ct, mine, "tag", ref=ct.c.tag_id, before="1", before_at=ct.c.added_at
        )
