"""Row-level security: a backstop under the code's own account filters (PostgreSQL).

Every account-owned table gets a policy: when the transaction names an account
(`set_config('audience.account_id', …, true)`, which app.db does for every transaction of
an API request), only that account's rows are visible, and only its rows can be written.
A transaction that names none (the job engine's claim and reaper, migrations, seeding)
sees every account. FORCE applies the policies to the tables' owner too; superusers and
BYPASSRLS roles are never subject to them, so the application must connect as an
ordinary role: `audience_app` is created here (when the migrating role may create roles)
with the privileges the application needs, for `?options=-c%20role%3Daudience_app` or
for a login role granted it.

The job tables without an account column (job_actions, job_members, job_output) are
reached only through `jobs`, which has the policy.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SETTING = "current_setting('audience.account_id', true)"
TABLES = [
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
ROLE = "audience_app"


def _policy(table: str, column: str) -> str:
    check = f"(coalesce({SETTING}, '') = '' OR {column} = nullif({SETTING}, '')::bigint)"
    return f"CREATE POLICY account_isolation ON {table} USING {check} WITH CHECK {check}"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in [*((t, "account_id") for t in TABLES), ("accounts", "id")]:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(_policy(table, column))
    op.execute(
        f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN
                CREATE ROLE {ROLE} NOLOGIN NOSUPERUSER NOBYPASSRLS;
            END IF;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'cannot create role {ROLE}; grant the application role yourself';
        END
        $$
        """
    )
    op.execute(
        f"""
        DO $$
        BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN
                GRANT USAGE ON SCHEMA public TO {ROLE};
                GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {ROLE};
                GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {ROLE};
            END IF;
        END
        $$
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in [*TABLES, "accounts"]:
        op.execute(f"DROP POLICY IF EXISTS account_isolation ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
