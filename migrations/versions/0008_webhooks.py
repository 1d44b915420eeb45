"""Webhooks and their outbox.

- `webhooks`: an account's endpoints, the events each wants, the secret that signs them.
- `webhook_deliveries`: the outbox, one row an event a webhook, written in the transaction
  that moved the job; the delivery loop claims due rows across accounts on the engine's
  duty (as it claims jobs), then sends and records each acting for its account.
- `webhook_attempts`: every attempt, as GET /v1/webhooks/{id}/deliveries lists them.

Row-level security as every account-owned table (0004's policy); the engine's duty may
read and update deliveries (nothing else of them); the application role may use all three.

Revision ID: 0008_webhooks
Revises: 0007_imports
"""

import sqlalchemy as sa
from alembic import op

from app.tables import UTCDateTime

revision = "0008_webhooks"
down_revision = "0007_imports"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ACCOUNT = "(SELECT nullif(current_setting('audience.account_id', true), '')::bigint)"
ENGINE = "(SELECT current_setting('audience.role', true)) = 'engine'"
ROLE = "audience_app"
TABLES = ["webhooks", "webhook_deliveries", "webhook_attempts"]


def _account() -> sa.Column:
    return sa.Column(
        "account_id", ID, sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("id", ID, primary_key=True),
        _account(),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("events", sa.JSON, nullable=False),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_webhooks_account_id_id", "webhooks", ["account_id", "id"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", ID, primary_key=True),
        _account(),
        sa.Column(
            "webhook_id", ID, sa.ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("job_id", ID, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", UTCDateTime, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("finished_at", UTCDateTime),
    )
    op.create_index(
        "ix_webhook_deliveries_status", "webhook_deliveries", ["status", "next_attempt_at"]
    )
    op.create_index(
        "ix_webhook_deliveries_account_id_webhook_id",
        "webhook_deliveries",
        ["account_id", "webhook_id"],
    )
    op.create_table(
        "webhook_attempts",
        sa.Column("id", ID, primary_key=True),
        _account(),
        sa.Column(
            "delivery_id",
            ID,
            sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("webhook_id", ID, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("response_code", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("duration_ms", sa.Integer, nullable=False),
    )
    op.create_index(
        "ix_webhook_attempts_account_id_webhook_id_id",
        "webhook_attempts",
        ["account_id", "webhook_id", "id"],
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    check = f"(account_id = {ACCOUNT})"
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY account_isolation ON {table} USING {check} WITH CHECK {check}")
    op.execute(f"CREATE POLICY engine_reads ON webhook_deliveries FOR SELECT USING ({ENGINE})")
    op.execute(
        f"CREATE POLICY engine_updates ON webhook_deliveries FOR UPDATE USING ({ENGINE}) "
        f"WITH CHECK ({ENGINE})"
    )
    tables = ", ".join(TABLES)
    sequences = ", ".join(f"{table}_id_seq" for table in TABLES)
    op.execute(
        f"""
        DO $$
        BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN
                GRANT SELECT, INSERT, UPDATE, DELETE ON {tables} TO {ROLE};
                GRANT USAGE, SELECT ON SEQUENCE {sequences} TO {ROLE};
            END IF;
        END
        $$
        """
    )


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
