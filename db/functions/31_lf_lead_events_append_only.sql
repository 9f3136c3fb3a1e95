-- lf_lead_events_append_only: repeatable; first created by 0004_pipeline.sql. Edit here, not in a migration.
-- The timeline is an audit trail: rows are added, never changed or removed.
-- Corrections are new entries.
CREATE OR REPLACE FUNCTION lf_lead_events_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'lead_events is append-only: add a correcting entry instead'
        USING ERRCODE = 'insufficient_privilege';
END $$;
