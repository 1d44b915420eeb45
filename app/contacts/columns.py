"""Which columns a contact has, which a request may set, and what a new contact starts
with: all read from app.tables, so a new column is added there (and in a migration) and
in the pydantic models, nowhere else."""

import sqlalchemy as sa
from sqlalchemy.sql.elements import False_, True_

from app import tables as t

# A contact as read back (its account is the request's).
COLUMNS: tuple[sa.Column, ...] = tuple(c for c in t.contacts.c if c.name != "account_id")

# What an upsert may set: not the keys (id, e-mail), not `deleted` (actions own it), not
# updated_at (every write sets it).
SETTABLE: tuple[str, ...] = tuple(
    c.name for c in COLUMNS if c.name not in {"id", "email", "deleted", "updated_at"}
)


def _server_default(column: sa.Column):
    """The column's server default as a Python value (None without one). The upsert
    writes every column of a new contact (all rows of one INSERT have the same keys), so
    it needs the defaults the database would have filled in."""
    if column.server_default is None:
        return None
    value = column.server_default.arg  # type: ignore[attr-defined]
    if isinstance(value, str):
        return column.type.python_type(value)  # '0' → 0
    if isinstance(value, True_ | False_):
        return isinstance(value, True_)
    raise TypeError(f"contacts.{column.name}: cannot read its server default {value!r}")


# A new contact's columns, before the request's own fields (created_at: the request's,
# or now).
NEW_CONTACT: dict[str, object] = {
    name: _server_default(t.contacts.c[name]) for name in SETTABLE if name != "created_at"
}
