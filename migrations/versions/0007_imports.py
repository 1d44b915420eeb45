"""CSV imports: the staged file, rejected rows, and an import job's counters.

- `import_rows`: the uploaded file, one row a CSV record, written at submit so any
  worker can run the import; deleted as the job applies it, the rest when it ends.
- `import_errors`: one row a problem of a rejected row (GET /v1/jobs/{id}/errors).
- `jobs` gets `import_spec` (header, mapping, options), `created`, `updated`, `rejected`.
Row-level security as every account-owned table (0004's policy), and the application role
may use both tables.

Revision ID: 0007_imports
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_imports"
down_revision = "0006"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ACCOUNT = "(SELECT nullif(current_setting('audience.account_id', true), '')::bigint)"
ROLE = "audience_app"
TABLES = ("import_rows", "import_errors")


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("import_spec", sa.JSON))
        for column in ("created", "updated", "rejected"):
            batch.add_column(sa.Column(column, sa.BigInteger, nullable=False, server_default="0"))
    op.create_table(
        "import_rows",
        sa.Column("account_id", ID, nullable=False),
        sa.Column("job_id", ID, nullable=False),
        sa.Column("line", sa.BigInteger, nullable=False),
        sa.Column("cells", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("account_id", "job_id", "line", name="pk_import_rows"),
    )
    op.create_table(
        "import_errors",
        sa.Column("account_id", ID, nullable=False),
        sa.Column("job_id", ID, nullable=False),
        sa.Column("line", sa.BigInteger, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("column", sa.Text, nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("row", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("account_id", "job_id", "line", "seq", name="pk_import_errors"),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    check = f"(account_id = {ACCOUNT})"
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY account_isolation ON {table} USING {check} WITH CHECK {check}")
        op.execute(
            f"""
            DO $$
            BEGIN
                IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN
                    GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {ROLE};
                END IF;
            END
            $$
            """
        )


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
    with op.batch_alter_table("jobs") as batch:
        for column in ("rejected", "updated", "created", "import_spec"):
            batch.drop_column(column)
