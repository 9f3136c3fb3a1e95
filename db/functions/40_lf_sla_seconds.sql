-- lf_sla_seconds: repeatable; first created by 0006_scheduler.sql. Edit here, not in a migration.
CREATE OR REPLACE FUNCTION lf_sla_seconds(sla jsonb, key text, grade text, def integer) RETURNS integer
    LANGUAGE sql IMMUTABLE
    AS $$ SELECT CASE WHEN (sla -> key -> grade)::text ~ '^-?[0-9]{1,9}$'
                      THEN (sla -> key ->> grade)::integer ELSE def END $$;
