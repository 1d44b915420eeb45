"""Detail parsing without exception blocks, so parallel queries can use it.

PL/pgSQL exception blocks open subtransactions, which PostgreSQL refuses inside a
parallel query ("cannot start subtransactions during a parallel operation"). These SQL
functions cannot fail: the patterns admit only what the casts accept. Whitespace is
ASCII's six, spelt out (a class like [[:space:]] would follow the locale).

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TRY_NUMBER = r"""
CREATE FUNCTION audience_try_number(v text) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN v ~ '^[ \t\n\r\f\v]*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,3})?[ \t\n\r\f\v]*$'
        THEN v::numeric
    END
$$;
"""

# Year 0001-9999, month 01-12, day 01-31; a day past the month's end (2023-02-30) rolls
# into the next month, which the outer test catches.
TRY_DATE = r"""
CREATE FUNCTION audience_try_date(v text) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN v ~ '^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])([T ].*)?$'
             AND substr(v, 1, 4) <> '0000'
        THEN CASE
            WHEN extract(month FROM make_date(substr(v, 1, 4)::int, substr(v, 6, 2)::int, 1)
                                    + (substr(v, 9, 2)::int - 1))
                 = substr(v, 6, 2)::int
            THEN make_date(substr(v, 1, 4)::int, substr(v, 6, 2)::int, 1)
                 + (substr(v, 9, 2)::int - 1)
        END
    END
$$;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION IF EXISTS audience_try_number(text)")
    op.execute("DROP FUNCTION IF EXISTS audience_try_date(text)")
    op.execute(TRY_NUMBER)
    op.execute(TRY_DATE)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    from importlib import import_module

    initial = import_module("migrations.versions.0001_initial")
    op.execute("DROP FUNCTION IF EXISTS audience_try_number(text)")
    op.execute("DROP FUNCTION IF EXISTS audience_try_date(text)")
    op.execute(initial.TRY_NUMBER)
    op.execute(initial.TRY_DATE)
