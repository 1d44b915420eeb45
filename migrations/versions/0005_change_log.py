"""The change log, and jobs that tell their story.

- `change_log`: one row for every change a job makes, written in the chunk's transaction;
  revert and a contact's history read it. Row-level security as every account-owned
  table (0004's policy), and the application role may use it.
- `jobs` gets `kind` (actions, import, revert), `name`, `created_by` (the key's label),
  `reverts` (the job a revert undoes; one revert a job), `conflicts` and `log_purged`.
- `api_keys` gets a `label` ("default" for the keys made so far), a `scope` (full, or
  read: GETs, count and preview) and `last_used_at`.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from app.tables import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ACCOUNT = "(SELECT nullif(current_setting('audience.account_id', true), '')::bigint)"
ENGINE = "(SELECT current_setting('audience.role', true)) = 'engine'"
ROLE = "audience_app"


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(
            sa.Column("label", sa.String(255), nullable=False, server_default="default")
        )
        batch.add_column(sa.Column("scope", sa.String(8), nullable=False, server_default="full"))
        batch.add_column(sa.Column("last_used_at", UTCDateTime))
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="actions"))
        batch.add_column(sa.Column("name", sa.String(255)))
        batch.add_column(sa.Column("created_by", sa.String(255)))
        batch.add_column(sa.Column("reverts", ID))
        batch.add_column(sa.Column("conflicts", sa.BigInteger, nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("log_purged", sa.Boolean, nullable=False, server_default=sa.false())
        )
        batch.create_unique_constraint("uq_jobs_account_id_reverts", ["account_id", "reverts"])
    op.create_table(
        "change_log",
        sa.Column("account_id", ID, nullable=False),
        sa.Column("job_id", ID, nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("contact_id", ID, nullable=False),
        sa.Column("field", sa.String(300), nullable=False),
        sa.Column("ref", ID, nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("before", sa.Text),
        sa.Column("before_at", UTCDateTime),
        sa.Column("after", sa.Text),
        sa.Column("after_at", UTCDateTime),
        sa.Column("before_extra", sa.Text),
        sa.Column("after_extra", sa.Text),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint(
            "account_id", "job_id", "step", "contact_id", "field", "ref", name="pk_change_log"
        ),
    )
    op.create_index(
        "ix_change_log_account_id_contact_id", "change_log", ["account_id", "contact_id", "job_id"]
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE change_log ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE change_log FORCE ROW LEVEL SECURITY")
    check = f"(account_id = {ACCOUNT})"
    op.execute(f"CREATE POLICY account_isolation ON change_log USING {check} WITH CHECK {check}")
    # `audience keys revoke KEY_ID` finds the key's account on the engine's duty
    op.execute(f"CREATE POLICY engine_reads_keys ON api_keys FOR SELECT USING ({ENGINE})")
    op.execute(
        f"""
        DO $$
        BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN
                GRANT SELECT, INSERT, UPDATE, DELETE ON change_log TO {ROLE};
            END IF;
        END
        $$
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP POLICY IF EXISTS engine_reads_keys ON api_keys")
    op.drop_index("ix_change_log_account_id_contact_id", table_name="change_log")
    op.drop_table("change_log")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint("uq_jobs_account_id_reverts", type_="unique")
        for column in ["log_purged", "conflicts", "reverts", "created_by", "name", "kind"]:
            batch.drop_column(column)
    with op.batch_alter_table("api_keys") as batch:
        for column in ["last_used_at", "scope", "label"]:
            batch.drop_column(column)
