"""Row-level security that fails closed, and an account on every job table.

0003's policies let everything through when a transaction named no account; the job
engine relied on that to work across accounts. Now:

- A transaction sees and writes the rows of the account it names
  (`audience.account_id`) and, naming none, nothing of any account-owned table.
- The job engine's bookkeeping across accounts (claiming a job by id, finding due jobs,
  reaping, choosing a snapshot to purge, `audience doctor`) names the duty instead:
  `audience.role = 'engine'` lets it read and update `jobs` rows, and nothing else. Every
  other statement of a job acts for the job's own account.
- The API key lookup (before the account is known) names the hash of the key it holds
  (`audience.key_hash`), which makes that one `api_keys` row readable.
- `job_actions`, `job_members` and `job_output` get `account_id` (filled from their job;
  rows of jobs that no longer exist are dropped), leading their primary keys, and the
  same policy as every other account-owned table.

Each setting is read through a scalar subquery, so PostgreSQL evaluates it once a
statement (an InitPlan), not once a row: a snapshot writes hundreds of thousands of rows
in one statement, each checked against the policy.

The data is converted before the new policies exist (under 0003's, a migration naming
no account still sees every row). Run migrations as a superuser or a BYPASSRLS role:
under FORCE, the tables' owner is held by the policies too.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ACCOUNT = "(SELECT nullif(current_setting('audience.account_id', true), '')::bigint)"
ENGINE = "(SELECT current_setting('audience.role', true)) = 'engine'"
KEY = "(SELECT current_setting('audience.key_hash', true))"

# 0003's tables, all keeping their policy's name and target column
OWNED = [
    "api_keys",
    "contacts",
    "funnels",
    "groups",
    "jobs",
    "mailings",
    "rules",
    "segments",
    "tags",
    "users",
    "contact_details",
    "contact_owners",
    "contact_tags",
    "coupons",
    "events",
    "group_members",
    "links",
    "mailing_recipients",
    "stages",
    "contact_funnels",
]
# the job tables this revision gives an account: their primary key before and after
JOB_TABLES = {
    "job_actions": ["job_id", "position"],
    "job_members": ["job_id", "contact_id"],
    "job_output": ["job_id", "position", "contact_id"],
}
OLD_CHECK = (
    "(coalesce(current_setting('audience.account_id', true), '') = '' OR {column} = "
    "nullif(current_setting('audience.account_id', true), '')::bigint)"
)


def _isolate(table: str, column: str, check: str) -> None:
    op.execute(f"DROP POLICY IF EXISTS account_isolation ON {table}")
    op.execute(f"CREATE POLICY account_isolation ON {table} USING {check} WITH CHECK {check}")


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, key in JOB_TABLES.items():
        _add_account(table, key, postgres)
    if not postgres:
        return
    for table in JOB_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    for table, column in [*((t, "account_id") for t in [*OWNED, *JOB_TABLES]), ("accounts", "id")]:
        _isolate(table, column, f"({column} = {ACCOUNT})")
    op.execute(f"CREATE POLICY engine_reads_jobs ON jobs FOR SELECT USING ({ENGINE})")
    op.execute(
        f"CREATE POLICY engine_updates_jobs ON jobs FOR UPDATE USING ({ENGINE}) "
        f"WITH CHECK ({ENGINE})"
    )
    op.execute(f"CREATE POLICY key_lookup ON api_keys FOR SELECT USING (key_hash = {KEY})")


def _add_account(table: str, key: list[str], postgres: bool) -> None:
    """account_id from the row's job, leading the primary key."""
    op.add_column(table, sa.Column("account_id", ID, nullable=True))
    if postgres:
        op.execute(
            f"UPDATE {table} SET account_id = jobs.account_id "
            f"FROM jobs WHERE jobs.id = {table}.job_id"
        )
    else:
        op.execute(
            f"UPDATE {table} SET account_id = "
            f"(SELECT jobs.account_id FROM jobs WHERE jobs.id = {table}.job_id)"
        )
    op.execute(f"DELETE FROM {table} WHERE account_id IS NULL")
    with op.batch_alter_table(table) as batch:
        batch.alter_column("account_id", existing_type=ID, nullable=False)
        batch.drop_constraint(f"pk_{table}", type_="primary")
        batch.create_primary_key(f"pk_{table}", ["account_id", *key])
        if table == "job_actions":
            batch.create_foreign_key(
                "fk_job_actions_account_id_accounts",
                "accounts",
                ["account_id"],
                ["id"],
                ondelete="CASCADE",
            )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("DROP POLICY IF EXISTS key_lookup ON api_keys")
        op.execute("DROP POLICY IF EXISTS engine_updates_jobs ON jobs")
        op.execute("DROP POLICY IF EXISTS engine_reads_jobs ON jobs")
        for table, column in [*((t, "account_id") for t in OWNED), ("accounts", "id")]:
            _isolate(table, column, OLD_CHECK.format(column=column))
        for table in JOB_TABLES:
            op.execute(f"DROP POLICY IF EXISTS account_isolation ON {table}")
            op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    for table, key in JOB_TABLES.items():
        with op.batch_alter_table(table) as batch:
            if table == "job_actions":
                batch.drop_constraint("fk_job_actions_account_id_accounts", type_="foreignkey")
            batch.drop_constraint(f"pk_{table}", type_="primary")
            batch.create_primary_key(f"pk_{table}", key)
            batch.drop_column("account_id")
