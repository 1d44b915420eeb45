"""Indexes that serve the counts: every lookup index leads with the account and covers
its probe.

A count reads one account's slice of a link table by the thing it names (a tag, a funnel
and its stages, a group, an owner, a mailing), and of `events` by type and time or by type
and contact: with `account_id` leading and the probed columns in the index (INCLUDE on
PostgreSQL), each is an index-only scan. The live contacts of an account are one too
(`ix_contacts_account_deleted_id`). The (thing, contact) indexes of contact_tags,
contact_owners and contact_funnels are dropped: the new ones serve every statement that
used them (each names its account). Primary keys and the (contact, …) indexes stay: "does
contact C have X" and deleting a contact probe them.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# (table, name, columns, PostgreSQL INCLUDE columns)
NEW = [
    ("contacts", "ix_contacts_account_deleted_id", ["account_id", "deleted", "id"], []),
    (
        "contact_tags",
        "ix_contact_tags_account_tag_contact",
        ["account_id", "tag_id", "contact_id"],
        [],
    ),
    (
        "contact_owners",
        "ix_contact_owners_account_user_contact",
        ["account_id", "user_id", "contact_id"],
        [],
    ),
    (
        "contact_funnels",
        "ix_contact_funnels_account_funnel_stage_contact",
        ["account_id", "funnel_id", "stage_id", "contact_id"],
        [],
    ),
    (
        "group_members",
        "ix_group_members_account_group_contact",
        ["account_id", "group_id", "contact_id"],
        [],
    ),
    (
        "mailing_recipients",
        "ix_mailing_recipients_account_mailing_contact",
        ["account_id", "mailing_id", "contact_id"],
        ["opened_at", "clicked_at", "bounced"],
    ),
    (
        "events",
        "ix_events_account_type_occurred",
        ["account_id", "type", "occurred_at"],
        ["contact_id", "value"],
    ),
    (
        "events",
        "ix_events_account_type_contact",
        ["account_id", "type", "contact_id", "occurred_at"],
        ["value"],
    ),
]
# (table, name, columns) as 0001 made them
OLD = [
    ("contact_tags", "ix_contact_tags_tag_id_contact_id", ["tag_id", "contact_id"]),
    ("contact_owners", "ix_contact_owners_user_id_contact_id", ["user_id", "contact_id"]),
    (
        "contact_funnels",
        "ix_contact_funnels_funnel_stage_contact",
        ["funnel_id", "stage_id", "contact_id"],
    ),
    ("events", "ix_events_account_type_occurred", ["account_id", "type", "occurred_at"]),
]


def upgrade() -> None:
    for table, name, _columns in OLD:
        op.drop_index(name, table_name=table)
    for table, name, columns, include in NEW:
        op.create_index(name, table, columns, postgresql_include=include)


def downgrade() -> None:
    for table, name, _columns, _include in reversed(NEW):
        op.drop_index(name, table_name=table)
    for table, name, columns in OLD:
        op.create_index(name, table, columns)
