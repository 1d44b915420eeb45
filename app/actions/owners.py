"""Owners: the account's users responsible for a contact (created at job start)."""

from typing import Literal

from pydantic import Field

from app import tables as t
from app.actions.base import ActionModel, ResolveContext, handles
from app.actions.relations import AddRelation, RemoveRelation, find_id
from app.contacts.schemas import Email
from app.contacts.service import ensure_users


class AddOwner(ActionModel):
    """Adds an owner (a user responsible for the contact) to the contact's owners."""

    type: Literal["add_owner"]
    owner: Email = Field(
        description="The owner's e-mail, any case; a user new to the account is created "
        "when the job starts."
    )


@handles(AddOwner)
class AddOwnerHandler(AddRelation):
    table = t.contact_owners
    thing_column = "user_id"
    field = "owner"

    def resolve(self, ctx: ResolveContext) -> None:
        email = self.action.owner.lower()
        if ctx.create:
            self.thing_id = ensure_users(ctx.conn, ctx.account_id, [email])[email]
        else:
            self.thing_id = find_id(ctx.conn, t.users, ctx.account_id, "email", email)


class RemoveOwner(ActionModel):
    """Removes an owner from the contact's owners."""

    type: Literal["remove_owner"]
    owner: Email = Field(description="The owner's e-mail, any case.")


@handles(RemoveOwner)
class RemoveOwnerHandler(RemoveRelation):
    table = t.contact_owners
    thing_column = "user_id"
    field = "owner"

    def resolve(self, ctx: ResolveContext) -> None:
        email = self.action.owner.lower()
        self.thing_id = find_id(ctx.conn, t.users, ctx.account_id, "email", email)
