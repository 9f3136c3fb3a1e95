-- 0040_uuid_ids: lead ids become uuid columns; text ids compare bytes (COLLATE "C");
-- no foreign keys on the append-only rows our own code writes; five unused indexes go.
--
-- THIS MIGRATION REWRITES BIG TABLES. It runs in one transaction that holds an ACCESS
-- EXCLUSIVE lock on leads, lead_events, assignments, outbox, timers, notifications,
-- lead_inquiries, lead_claims, lead_recycles and analytics_deals (and, for the index
-- rebuilds of the COLLATE "C" columns, reps, api_keys, customers, consumer_acks,
-- consumer_cursors, routing_ledger, digests and the notify_* tables) from start to
-- commit: nothing reads or writes them meanwhile. Its time grows with those tables'
-- rows: measured 162 s for 1,000,000 leads with 3 timeline entries, 2 outbox events, 1
-- assignment, 1 timer and 2 consumer acks each, on a busy 2-core machine
-- (bench/upgrade_uuid.sh measures it on any machine; docs/operations.md, "Upgrading":
-- the figures and how to run it: stop the services, run leadflow-migrate, start them).
--
-- What changes:
-- 1. Every column holding a lead id is uuid (16 bytes, compared by memcmp) instead of
--    text: leads.id, leads.reactivated_from, leads.lost_deal and lead_id of lead_events,
--    assignments, outbox, timers, notifications, lead_inquiries, lead_claims,
--    lead_recycles and analytics_deals. Lead ids have always been UUIDv7 strings written
--    in lower case, which is exactly how PostgreSQL prints a uuid, so JSON and events
--    carry the same text as before. A row whose id is not a UUID stops the migration
--    before anything changes, with a message naming each column and the query that finds
--    its rows.
-- 2. Rep, team, key, consumer and other text ids are COLLATE "C": their indexes compare
--    bytes, not the database locale's collation rules.
-- 3. Foreign keys dropped (each cost a trigger and a lookup per written row): from the
--    append-only and service-written rows to leads (lead_events, assignments, timers,
--    notifications, lead_inquiries, lead_claims, lead_recycles), to reps (leads.owner,
--    assignments.rep_id, lead_claims.rep_id), to timers (notifications, lead_recycles,
--    digests), to notifications (notify_deliveries) and leads.customer_id. Integrity is
--    checked by a test instead (lf_orphans(), db/functions/95_lf_orphans.sql, run by the
--    integration tests after their workloads).
--    Kept: api_keys.rep_id -> reps (keys are made and edited by people; a key naming a
--    rep that does not exist would be a login with no owner), customers.owner -> reps
--    (edited through the API) and notify_deliveries.dest_key -> notify_dests
--    (destinations are edited by people): none is on a hot write path.
-- 4. Indexes that no query uses are dropped: leads_owner_company (replaced by
--    leads_company_key in 0021), leads_lost_deal (the column is written, never searched),
--    assignments_rep, outbox_type (consumers read the outbox by id and xid) and
--    notifications_undelivered (delivery state lives in notify_deliveries). The query
--    behind every index kept on the hot tables: docs/operations.md, "Indexes".
--
-- Views depend on the columns, so the views reading these tables are dropped here (views
-- on other tables are kept; one that is not leadflow's is named in a WARNING) and the
-- function folder is re-applied after this migration (schema_repeatables is emptied),
-- which re-creates leadflow's. The first version of this file, as it shipped, dropped every
-- view of the schema; a database that ran it records this version's checksum instead:
-- leadflow:corrects-sha256 0ecbf05ca29f5a21d107be6fac9028849f13f803a258182f67c2cfd32227cc59

-- 1. Refuse clearly, before changing anything, when an id is not a UUID.
DO $$
DECLARE
    c     record;
    n     bigint;
    bad   text := '';
BEGIN
    FOR c IN SELECT * FROM (VALUES
        ('leads', 'id'), ('leads', 'reactivated_from'), ('leads', 'lost_deal'),
        ('lead_events', 'lead_id'), ('assignments', 'lead_id'), ('outbox', 'lead_id'),
        ('timers', 'lead_id'), ('notifications', 'lead_id'), ('lead_inquiries', 'lead_id'),
        ('lead_claims', 'lead_id'), ('lead_recycles', 'lead_id'),
        ('analytics_deals', 'lead_id')) AS v(tab, col)
    LOOP
        EXECUTE format('SELECT count(*) FROM %I WHERE %I IS NOT NULL AND %I !~ %L',
                       c.tab, c.col, c.col,
                       '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')
            INTO n;
        IF n > 0 THEN
            bad := bad || format(E'\n  %s.%s: %s row(s); find them with: SELECT * FROM %I'
                                 ' WHERE %I !~ ''^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-'
                                 '[0-9a-f]{4}-[0-9a-f]{12}$'';',
                                 c.tab, c.col, n, c.tab, c.col);
        END IF;
    END LOOP;
    IF bad <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_text_representation',
            MESSAGE = 'migration 0040: lead ids must be lower-case UUIDs (as leadflow writes'
                      ' them); these columns hold others, nothing was changed:' || bad,
            HINT = 'correct or delete those rows (and the rows that refer to them), then run'
                   ' leadflow-migrate again';
    END IF;
END $$;

-- A view on a column whose type changes blocks the change, so the views that read these
-- tables (directly or through other views, in any schema) are dropped; views on other
-- tables are left alone. leadflow's own views are re-created by the function folder; any
-- other view dropped here (a BI tool's, say) is named in a WARNING so that its owner can
-- create it again after the upgrade.
DO $$
DECLARE
    v    record;
    ours text[] := ARRAY['assignment_explanations', 'v_conversion', 'v_first_response',
                         'v_funnel', 'v_funnel_reactivated', 'v_keepalive_daily',
                         'v_keepalive_outcomes', 'v_lead_outcomes', 'v_loss_reasons',
                         'v_pipeline_value', 'v_reactivated_deals', 'v_recycled_deals',
                         'v_stage_conversion', 'v_win_loss'];
BEGIN
    FOR v IN
        WITH RECURSIVE changed AS (
            SELECT c.oid FROM pg_class c
             WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'
               AND c.relname IN ('leads', 'lead_events', 'assignments', 'outbox', 'timers',
                   'notifications', 'lead_inquiries', 'lead_claims', 'lead_recycles',
                   'analytics_deals', 'reps', 'api_keys', 'customers', 'consumer_acks',
                   'consumer_cursors', 'routing_ledger', 'digests', 'notify_teams',
                   'notify_dests', 'notify_deliveries', 'stages', 'loss_reasons')
        ), dependent (oid) AS (
            SELECT r.ev_class FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
             WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
               AND d.refobjid IN (SELECT oid FROM changed) AND r.ev_class <> d.refobjid
            UNION
            SELECT r.ev_class FROM dependent p JOIN pg_depend d ON d.refobjid = p.oid
              JOIN pg_rewrite r ON r.oid = d.objid
             WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
               AND r.ev_class <> d.refobjid
        )
        SELECT DISTINCT n.nspname, c.relname, c.relkind FROM dependent p
          JOIN pg_class c ON c.oid = p.oid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('v', 'm')
         ORDER BY 1, 2
    LOOP
        EXECUTE format('DROP %s IF EXISTS %I.%I CASCADE',
                       CASE v.relkind WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'VIEW' END,
                       v.nspname, v.relname);
        IF v.nspname <> current_schema() OR NOT v.relname = ANY (ours) THEN
            RAISE WARNING 'migration 0040 dropped the view %.%: it reads a column whose type'
                          ' changes; create it again after the upgrade', v.nspname, v.relname;
        END IF;
    END LOOP;
END $$;
DELETE FROM schema_repeatables;
-- Triggers on some of the columns (db/functions/70_access.sql makes them again).
DROP TRIGGER IF EXISTS api_keys_scope ON api_keys;
DROP TRIGGER IF EXISTS api_keys_changed ON api_keys;

-- 3. Foreign keys.
ALTER TABLE lead_events DROP CONSTRAINT IF EXISTS lead_events_lead_id_fkey;
ALTER TABLE assignments DROP CONSTRAINT IF EXISTS assignments_lead_id_fkey,
                        DROP CONSTRAINT IF EXISTS assignments_rep_id_fkey;
ALTER TABLE timers DROP CONSTRAINT IF EXISTS timers_lead_id_fkey;
ALTER TABLE notifications DROP CONSTRAINT IF EXISTS notifications_lead_id_fkey,
                          DROP CONSTRAINT IF EXISTS notifications_timer_id_fkey;
ALTER TABLE lead_inquiries DROP CONSTRAINT IF EXISTS lead_inquiries_lead_id_fkey;
ALTER TABLE lead_claims DROP CONSTRAINT IF EXISTS lead_claims_lead_id_fkey,
                        DROP CONSTRAINT IF EXISTS lead_claims_rep_id_fkey;
ALTER TABLE lead_recycles DROP CONSTRAINT IF EXISTS lead_recycles_lead_id_fkey,
                          DROP CONSTRAINT IF EXISTS lead_recycles_timer_id_fkey;
ALTER TABLE digests DROP CONSTRAINT IF EXISTS digests_timer_id_fkey;
ALTER TABLE notify_deliveries DROP CONSTRAINT IF EXISTS notify_deliveries_notification_id_fkey;
ALTER TABLE leads DROP CONSTRAINT IF EXISTS leads_owner_fkey,
                  DROP CONSTRAINT IF EXISTS leads_customer_id_fkey;

-- 4. Indexes no query uses.
DROP INDEX IF EXISTS leads_owner_company;
DROP INDEX IF EXISTS leads_lost_deal;
DROP INDEX IF EXISTS assignments_rep;
DROP INDEX IF EXISTS outbox_type;
DROP INDEX IF EXISTS notifications_undelivered;

-- 1 and 2. One ALTER TABLE per table: one rewrite each (the uuid columns), indexes
-- rebuilt once.
ALTER TABLE leads
    ALTER COLUMN id TYPE uuid USING id::uuid,
    ALTER COLUMN reactivated_from TYPE uuid USING reactivated_from::uuid,
    ALTER COLUMN lost_deal TYPE uuid USING lost_deal::uuid,
    ALTER COLUMN owner TYPE text COLLATE "C",
    ALTER COLUMN team TYPE text COLLATE "C",
    ALTER COLUMN channel TYPE text COLLATE "C",
    ALTER COLUMN external_id TYPE text COLLATE "C",
    ALTER COLUMN idempotency_key TYPE text COLLATE "C",
    ALTER COLUMN stage TYPE text COLLATE "C",
    ALTER COLUMN phone TYPE text COLLATE "C";
ALTER TABLE lead_events ALTER COLUMN lead_id TYPE uuid USING lead_id::uuid;
ALTER TABLE assignments
    ALTER COLUMN lead_id TYPE uuid USING lead_id::uuid,
    ALTER COLUMN rep_id TYPE text COLLATE "C";
ALTER TABLE outbox
    ALTER COLUMN lead_id TYPE uuid USING lead_id::uuid,
    ALTER COLUMN type TYPE text COLLATE "C";
ALTER TABLE timers
    ALTER COLUMN lead_id TYPE uuid USING lead_id::uuid,
    ALTER COLUMN kind TYPE text COLLATE "C",
    ALTER COLUMN rep_id TYPE text COLLATE "C",
    ALTER COLUMN team TYPE text COLLATE "C";
ALTER TABLE notifications
    ALTER COLUMN lead_id TYPE uuid USING lead_id::uuid,
    ALTER COLUMN rep_id TYPE text COLLATE "C";
ALTER TABLE lead_inquiries
    ALTER COLUMN lead_id TYPE uuid USING lead_id::uuid,
    ALTER COLUMN channel TYPE text COLLATE "C",
    ALTER COLUMN external_id TYPE text COLLATE "C",
    ALTER COLUMN idempotency_key TYPE text COLLATE "C",
    ALTER COLUMN call_sid TYPE text COLLATE "C";
ALTER TABLE lead_claims
    ALTER COLUMN lead_id TYPE uuid USING lead_id::uuid,
    ALTER COLUMN rep_id TYPE text COLLATE "C",
    ALTER COLUMN team TYPE text COLLATE "C";
ALTER TABLE lead_recycles
    ALTER COLUMN lead_id TYPE uuid USING lead_id::uuid,
    ALTER COLUMN from_rep TYPE text COLLATE "C",
    ALTER COLUMN team TYPE text COLLATE "C";
ALTER TABLE analytics_deals ALTER COLUMN lead_id TYPE uuid USING lead_id::uuid;

ALTER TABLE reps
    ALTER COLUMN id TYPE text COLLATE "C",
    ALTER COLUMN team TYPE text COLLATE "C",
    ALTER COLUMN manager TYPE text COLLATE "C";
ALTER TABLE api_keys
    ALTER COLUMN id TYPE text COLLATE "C",
    ALTER COLUMN key_hash TYPE text COLLATE "C",
    ALTER COLUMN rep_id TYPE text COLLATE "C";
ALTER TABLE customers
    ALTER COLUMN key TYPE text COLLATE "C",
    ALTER COLUMN owner TYPE text COLLATE "C";
ALTER TABLE consumer_acks ALTER COLUMN consumer TYPE text COLLATE "C";
ALTER TABLE consumer_cursors ALTER COLUMN consumer TYPE text COLLATE "C";
ALTER TABLE routing_ledger ALTER COLUMN team TYPE text COLLATE "C";
ALTER TABLE digests
    ALTER COLUMN team TYPE text COLLATE "C",
    ALTER COLUMN to_rep TYPE text COLLATE "C";
ALTER TABLE notify_teams
    ALTER COLUMN team TYPE text COLLATE "C",
    ALTER COLUMN manager TYPE text COLLATE "C";
ALTER TABLE notify_dests
    ALTER COLUMN key TYPE text COLLATE "C",
    ALTER COLUMN owner_rep TYPE text COLLATE "C",
    ALTER COLUMN owner_team TYPE text COLLATE "C";
ALTER TABLE notify_deliveries ALTER COLUMN dest_key TYPE text COLLATE "C";
ALTER TABLE stages ALTER COLUMN id TYPE text COLLATE "C";
ALTER TABLE loss_reasons ALTER COLUMN id TYPE text COLLATE "C";
