-- lf_rfc3339: repeatable; first created by 0001_init.sql. Edit here, not in a migration.
-- The envelope every service puts on the wire, built in one place.
CREATE OR REPLACE FUNCTION lf_rfc3339(t timestamptz) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') $$;
