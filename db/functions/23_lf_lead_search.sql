-- lf_lead_search_*: repeatable; the table is made by 0041_lead_search.sql. Edit here, not in
-- a migration.
-- `lead_search` holds each lead's searched text (name, company, e-mail, phone, lowered as
-- the lists' search lowers its query: lf_lead_search_doc) with the trigram index of
-- GET /v1/leads?q=. It is written only when a lead is inserted, deleted, or one of those
-- four fields is set, so updates of other columns (the router's assignment, stage moves,
-- the scheduler's clocks) never touch the search index.
--
-- Inserts: intake's batch function writes the search rows of the leads it creates in its
-- own statement (21_lf_intake_commit.sql); those leads are the ones marked intake_open
-- when inserted, and the row trigger below skips them by its WHEN clause, so PostgreSQL
-- queues nothing for them. Every other insert (a keep-alive reactivation) gets its row
-- from the trigger. (Until 2026-12-01 a statement trigger with a transition table did it
-- for every insert: every inserted row of leads, about 1 KB, was copied into a tuple
-- store and inserted again by a second statement.)
-- Edits: a row trigger limited to UPDATE OF the four columns, with a WHEN clause, so an
-- UPDATE that does not name them does not even evaluate it (PostgreSQL forbids a column
-- list on an UPDATE trigger with transition tables, and a statement trigger without the
-- list would copy every updated row of every UPDATE of leads into a tuple store).
-- The expression must stay the same as in 0041 and in services/intake/api_lists.c's
-- search.

-- The searched text of a lead (an SQL function PostgreSQL inlines where it is used).
CREATE OR REPLACE FUNCTION lf_lead_search_doc(p_name text, p_company text, p_email text,
                                              p_phone text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT lower((coalesce(p_name, '') || ' ' || coalesce(p_company, '') || ' ' ||
                  coalesce(p_email, '') || ' ' || coalesce(p_phone, '')) COLLATE "C")
$$;

CREATE OR REPLACE FUNCTION lf_lead_search_edited() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO lead_search (lead_id, doc)
    VALUES (NEW.id, lf_lead_search_doc(NEW.name, NEW.company, NEW.email, NEW.phone))
    ON CONFLICT (lead_id) DO UPDATE SET doc = EXCLUDED.doc;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION lf_lead_search_deleted() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM lead_search s USING lf_old_leads o WHERE s.lead_id = o.id;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION lf_lead_search_truncated() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE lead_search;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS leads_search_inserted ON leads;
DROP FUNCTION IF EXISTS lf_lead_search_inserted();
CREATE TRIGGER leads_search_inserted AFTER INSERT ON leads
    FOR EACH ROW WHEN (NEW.intake_open IS NOT TRUE)
    EXECUTE FUNCTION lf_lead_search_edited();
DROP TRIGGER IF EXISTS leads_search_edited ON leads;
CREATE TRIGGER leads_search_edited AFTER UPDATE OF name, company, email, phone ON leads
    FOR EACH ROW
    WHEN (OLD.name IS DISTINCT FROM NEW.name OR OLD.company IS DISTINCT FROM NEW.company
          OR OLD.email IS DISTINCT FROM NEW.email OR OLD.phone IS DISTINCT FROM NEW.phone)
    EXECUTE FUNCTION lf_lead_search_edited();
DROP TRIGGER IF EXISTS leads_search_deleted ON leads;
CREATE TRIGGER leads_search_deleted AFTER DELETE ON leads
    REFERENCING OLD TABLE AS lf_old_leads
    FOR EACH STATEMENT EXECUTE FUNCTION lf_lead_search_deleted();
DROP TRIGGER IF EXISTS leads_search_truncated ON leads;
CREATE TRIGGER leads_search_truncated AFTER TRUNCATE ON leads
    FOR EACH STATEMENT EXECUTE FUNCTION lf_lead_search_truncated();

-- Catch-up: leads written between 0041's copy and these triggers (services left running
-- during an upgrade). The triggers above already hold a lock that keeps writers of leads
-- out until this transaction commits, so nothing slips between the two. On an up-to-date
-- database this finds nothing: one anti-join of the two primary keys (about 0.5 s per
-- 1,000,000 leads), paid only when the function folder is re-applied.
INSERT INTO lead_search (lead_id, doc)
SELECT l.id, lf_lead_search_doc(l.name, l.company, l.email, l.phone)
  FROM leads l
 WHERE NOT EXISTS (SELECT 1 FROM lead_search s WHERE s.lead_id = l.id);
