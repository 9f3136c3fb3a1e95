-- 0012_roles: one PostgreSQL role per service and a read-only role for BI tools.
--
-- leadflow_intake, leadflow_router, leadflow_scheduler and leadflow_analytics are what
-- the services log in as (compose, make run, the tests), so that none of them runs as
-- the owner of the schema: none can drop, alter or truncate a table, and each reads and
-- writes only the tables its job needs. leadflow_bi reads the analytics views and
-- rollups, and nothing with a person's name, phone or e-mail in it. What each may do is
-- granted in db/functions/99_grants.sql, re-applied whenever a function file changes.
--
-- Roles belong to the cluster, not the database: each is created only when missing
-- (another database of the same cluster may have made it, even at this moment). They
-- start NOLOGIN; leadflow-migrate gives them a password and LOGIN when
-- LEADFLOW_DB_SERVICE_PASSWORD / LEADFLOW_DB_BI_PASSWORD are set (compose does), and
-- make run and the tests let them log in over their loopback trust authentication.
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['leadflow_intake', 'leadflow_router', 'leadflow_scheduler',
                             'leadflow_analytics', 'leadflow_bi'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL; -- made by a concurrent migration of another database
            END;
        END IF;
    END LOOP;
END $$;
