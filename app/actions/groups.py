"""Groups: add defined addressees (the group is created at job start when missing), remove."""

from typing import Literal

from pydantic import Field

from app import tables as t
from app.actions.base import ActionModel, ResolveContext, handles
from app.actions.relations import AddRelation, RemoveRelation, find_id
from app.contacts.service import ensure_named
from app.names import Name, name_key


class AddToGroup(ActionModel):
    """Adds the contact to a group of defined addressees."""

    type: Literal["add_to_group"]
    group: Name = Field(
        description="The group's name, ignoring case; a group new to the account is created "
        "when the job starts."
    )


@handles(AddToGroup)
class AddToGroupHandler(AddRelation):
    table = t.group_members
    thing_column = "group_id"
    field = "group"

    def resolve(self, ctx: ResolveContext) -> None:
        group = self.action.group
        key = name_key(group)
        if ctx.create:
            self.thing_id = ensure_named(ctx.conn, t.groups, ctx.account_id, [group])[key]
        else:
            self.thing_id = find_id(ctx.conn, t.groups, ctx.account_id, "name_key", key)


class RemoveFromGroup(ActionModel):
    """Removes the contact from a group."""

    type: Literal["remove_from_group"]
    group: Name = Field(
        description="The group's name, ignoring case; a name the account does not have "
        "removes nothing."
    )


@handles(RemoveFromGroup)
class RemoveFromGroupHandler(RemoveRelation):
    table = t.group_members
    thing_column = "group_id"
    field = "group"

    def resolve(self, ctx: ResolveContext) -> None:
        key = name_key(self.action.group)
        self.thing_id = find_id(ctx.conn, t.groups, ctx.account_id, "name_key", key)
