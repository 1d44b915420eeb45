"""The key rule: every primary, unique and foreign key of an account's table leads with
`account_id`.

A distributed PostgreSQL (Citus) shards every account-owned table by `account_id` and
keeps the shards of one account together; it can only do so when every key holds that
column, and a foreign key can only join rows of the same shard. So:

- a table's own `id` stays unique on its own (its sequence makes it) but the primary key
  becomes (account_id, id); on SQLite it stays the row id (see app.tables), with a unique
  (account_id, id) beside it;
- a link table's key is (account_id, …what it was);
- a foreign key to another account-owned table is (account_id, column) → (account_id, id),
  which also means a row can never refer to another account's row; those to `jobs` from
  coupons and links cascade instead of setting NULL (a composite key cannot set only one
  of its columns NULL, and jobs are deleted only with their account);
- the unique keys of stages (funnel, name) and links (token) take the account in front;
- indexes the new keys make redundant go, the (contact) indexes that serve a contact's
  deletion become (account, contact), and a webhook's attempts get one by delivery.

Accounts and API keys keep their keys: they are looked up before the account is known, and
a distributed database keeps them whole on every node.

On PostgreSQL every foreign key is dropped first, then the keys change, then the foreign
keys come back (each checked once against the rows). On SQLite each table is rebuilt once
(migrations/env.py turns foreign-key enforcement off while it runs, and checks the result).

Revision ID: 0010_key_rule
Revises: 0009_event_partitions
"""

from alembic import op

revision = "0010_key_rule"
down_revision = "0009_event_partitions"
branch_labels = None
depends_on = None

# Tables whose own id becomes (account_id, id).
OWNED = [
    "users",
    "contacts",
    "tags",
    "funnels",
    "stages",
    "mailings",
    "groups",
    "rules",
    "segments",
    "coupons",
    "links",
    "jobs",
    "webhooks",
    "webhook_deliveries",
    "webhook_attempts",
]
# Link tables: their key before, without the account.
LINKS = {
    "contact_tags": ["contact_id", "tag_id"],
    "contact_owners": ["contact_id", "user_id"],
    "contact_funnels": ["contact_id", "funnel_id"],
    "mailing_recipients": ["mailing_id", "contact_id"],
    "group_members": ["group_id", "contact_id"],
    "contact_details": ["contact_id", "name"],
}
# (table, column, referred table, ON DELETE before)
REFERENCES = [
    ("contact_tags", "contact_id", "contacts", "CASCADE"),
    ("contact_tags", "tag_id", "tags", "CASCADE"),
    ("contact_owners", "contact_id", "contacts", "CASCADE"),
    ("contact_owners", "user_id", "users", "CASCADE"),
    ("stages", "funnel_id", "funnels", "CASCADE"),
    ("contact_funnels", "contact_id", "contacts", "CASCADE"),
    ("contact_funnels", "funnel_id", "funnels", "CASCADE"),
    ("contact_funnels", "stage_id", "stages", "CASCADE"),
    ("mailing_recipients", "mailing_id", "mailings", "CASCADE"),
    ("mailing_recipients", "contact_id", "contacts", "CASCADE"),
    ("group_members", "group_id", "groups", "CASCADE"),
    ("group_members", "contact_id", "contacts", "CASCADE"),
    ("contact_details", "contact_id", "contacts", "CASCADE"),
    ("events", "contact_id", "contacts", "CASCADE"),
    ("coupons", "contact_id", "contacts", "CASCADE"),
    ("coupons", "job_id", "jobs", "SET NULL"),
    ("links", "contact_id", "contacts", "CASCADE"),
    ("links", "job_id", "jobs", "SET NULL"),
    ("job_actions", "job_id", "jobs", "CASCADE"),
    ("webhook_deliveries", "webhook_id", "webhooks", "CASCADE"),
    ("webhook_attempts", "delivery_id", "webhook_deliveries", "CASCADE"),
]
# (table, columns before, columns after)
UNIQUES = [
    ("stages", ["funnel_id", "name_key"], ["account_id", "funnel_id", "name_key"]),
    ("links", ["token"], ["account_id", "token"]),
]
# (table, name, columns) dropped, and made
INDEXES_DROPPED = [
    ("contacts", "ix_contacts_account_id_id", ["account_id", "id"]),
    ("jobs", "ix_jobs_account_id_id", ["account_id", "id"]),
    ("webhooks", "ix_webhooks_account_id_id", ["account_id", "id"]),
    (
        "group_members",
        "ix_group_members_account_group_contact",
        ["account_id", "group_id", "contact_id"],
    ),
    ("group_members", "ix_group_members_contact_id", ["contact_id"]),
    ("mailing_recipients", "ix_mailing_recipients_contact_id", ["contact_id"]),
]
INDEXES_MADE = [
    ("group_members", "ix_group_members_account_contact", ["account_id", "contact_id"]),
    ("mailing_recipients", "ix_mailing_recipients_account_contact", ["account_id", "contact_id"]),
    # the cascade from a deleted delivery (a webhook's deletion) probed every attempt
    ("webhook_attempts", "ix_webhook_attempts_account_delivery", ["account_id", "delivery_id"]),
]


def _fk_name(table: str, columns: list[str], target: str) -> str:
    return f"fk_{table}_{'_'.join(columns)}_{target}"


def _uq_name(table: str, columns: list[str]) -> str:
    return f"uq_{table}_{'_'.join(columns)}"


def _keys(table: str, *, upgrade: bool) -> list[str] | None:
    """The table's primary key after this step (None: it does not change)."""
    if table in OWNED:
        return ["account_id", "id"] if upgrade else ["id"]
    if table in LINKS:
        return ["account_id", *LINKS[table]] if upgrade else LINKS[table]
    return None


def _tables() -> list[str]:
    seen = [*OWNED, *LINKS]
    seen += [table for table, *_ in REFERENCES + UNIQUES + INDEXES_DROPPED + INDEXES_MADE]
    return list(dict.fromkeys(seen))


def _drop_references(batch, table: str, *, upgrade: bool) -> None:
    for name, column, target, _ondelete in REFERENCES:
        if name == table:
            columns = [column] if upgrade else ["account_id", column]
            batch.drop_constraint(_fk_name(table, columns, target), type_="foreignkey")


def _make_references(batch, table: str, *, upgrade: bool) -> None:
    for name, column, target, ondelete in REFERENCES:
        if name != table:
            continue
        if upgrade:
            columns, referred, ondelete = ["account_id", column], ["account_id", "id"], "CASCADE"
        else:
            columns, referred = [column], ["id"]
        batch.create_foreign_key(
            _fk_name(table, columns, target), target, columns, referred, ondelete=ondelete
        )


def _rekey(batch, table: str, *, upgrade: bool) -> None:
    """The table's primary key, unique keys and indexes, as of after this step."""
    keys = _keys(table, upgrade=upgrade)
    if keys is not None:
        batch.drop_constraint(f"pk_{table}", type_="primary")
        batch.create_primary_key(f"pk_{table}", keys)
    for name, before, after in UNIQUES:
        if name == table:
            old, new = (before, after) if upgrade else (after, before)
            batch.drop_constraint(_uq_name(table, old), type_="unique")
            batch.create_unique_constraint(_uq_name(table, new), new)
    dropped, made = (INDEXES_DROPPED, INDEXES_MADE) if upgrade else (INDEXES_MADE, INDEXES_DROPPED)
    for name, index, _columns in dropped:
        if name == table:
            batch.drop_index(index)
    for name, index, columns in made:
        if name == table:
            batch.create_index(index, columns)


def _migrate(*, upgrade: bool) -> None:
    tables = _tables()
    if op.get_bind().dialect.name == "sqlite":
        # One rebuild a table, everything at once (foreign keys are not enforced meanwhile).
        for table in tables:
            with op.batch_alter_table(table, recreate="always") as batch:
                _drop_references(batch, table, upgrade=upgrade)
                _rekey(batch, table, upgrade=upgrade)
                _make_references(batch, table, upgrade=upgrade)
        return
    # A primary key cannot change while a foreign key refers to it.
    for table in tables:
        with op.batch_alter_table(table) as batch:
            _drop_references(batch, table, upgrade=upgrade)
    for table in tables:
        with op.batch_alter_table(table) as batch:
            _rekey(batch, table, upgrade=upgrade)
    for table in tables:
        with op.batch_alter_table(table) as batch:
            _make_references(batch, table, upgrade=upgrade)


def upgrade() -> None:
    _migrate(upgrade=True)


def downgrade() -> None:
    _migrate(upgrade=False)
