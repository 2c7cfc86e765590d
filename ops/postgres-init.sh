#!/bin/sh
# Run by the postgres image on its first start (empty volume): the role Keyplane connects as is an
# ordinary one that owns its database. Superusers bypass row-level security; this role does not.
set -eu
psql -v ON_ERROR_STOP=1 -v pw="$KEYPLANE_DB_PASSWORD" --username "$POSTGRES_USER" --dbname postgres <<'SQL'
create role keyplane login nosuperuser nocreatedb nocreaterole nobypassrls password :'pw';
create database keyplane owner keyplane;
SQL
