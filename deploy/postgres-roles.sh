#!/bin/sh
# The database roles of a deployment; compose.yaml runs it before the migrations, at every
# start (it creates what is missing and sets the password again, so a rotated one applies).
#
#   audience_app        NOLOGIN: the application's privileges (the migrations grant them);
#                       row-level security holds it to one account a transaction.
#   $AUDIENCE_DB_USER   LOGIN, password $AUDIENCE_DB_PASSWORD: what the API and the workers
#                       log in as. A member of audience_app and nothing more: not a
#                       superuser, no BYPASSRLS, so no RESET ROLE can step past the policies.
#
# It connects with libpq's variables (PGHOST, PGDATABASE, PGUSER, PGPASSWORD) as a role that
# may create roles: the database's superuser, which also owns the tables and migrates them.
set -eu
: "${AUDIENCE_DB_USER:?the login role of the API and workers}"
: "${AUDIENCE_DB_PASSWORD:?its password}"
psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
SET client_min_messages = warning;
\getenv login AUDIENCE_DB_USER
\getenv password AUDIENCE_DB_PASSWORD
SELECT 'CREATE ROLE audience_app NOLOGIN NOSUPERUSER NOBYPASSRLS'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'audience_app') \gexec
SELECT format('CREATE ROLE %I LOGIN', :'login')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'login') \gexec
SELECT format(
    'ALTER ROLE %I LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE INHERIT PASSWORD %L',
    :'login', :'password'
) \gexec
SELECT format('GRANT audience_app TO %I', :'login') \gexec
SQL
echo "roles ready: $AUDIENCE_DB_USER (member of audience_app)"
