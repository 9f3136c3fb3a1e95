-- 0041_lead_search: the lead lists' text search (GET /v1/leads?q=) moves from a trigram
-- GIN index on `leads` to a side table, `lead_search`, one row per lead holding the
-- searched text with the same GIN index.
--
-- Why: every update of a lead that cannot be HOT (the router's assignment changes
-- owner, team, assigned_at and updated_at, all indexed) writes a new entry in every
-- index of `leads`, the GIN index too, although the searched fields (name, company,
-- e-mail, phone) did not change: about 30 us of the backend per routed lead, a quarter
-- of the router's `UPDATE leads` (docs/benchmarks.md, "The cost of a lead row").
-- `lead_search` is written only when a lead is inserted or one of those four fields
-- changes (the triggers in db/functions/23_lf_lead_search.sql), so the router, the
-- scheduler and stage moves no longer pay for the search.
--
-- The searched text is exactly the expression of the old index, lowered under the "C"
-- collation as before (phone is COLLATE "C", which made the old expression's lower()
-- lower ASCII letters only; the API lowers the query the same way), so a search finds
-- the same leads.
--
-- THIS MIGRATION READS ALL OF `leads` AND BUILDS A GIN INDEX: it copies the searched text
-- of every lead into the new table, then builds the index on it (faster than filling an
-- indexed table). Only the new table is locked while it runs; `leads` is only read (its
-- old index is dropped at the end, a short exclusive lock). Measured on the 2-core
-- development machine: about 20 s per 1,000,000 leads (docs/operations.md, "Upgrading").
-- Leads written by services still running during the migration are caught up when the
-- function folder is applied right after it (23_lf_lead_search.sql), in the same run of
-- leadflow-migrate.
CREATE TABLE lead_search (
    lead_id uuid PRIMARY KEY,
    doc     text COLLATE "C" NOT NULL
);
INSERT INTO lead_search (lead_id, doc)
SELECT l.id, lower((coalesce(l.name, '') || ' ' || coalesce(l.company, '') || ' ' ||
                    coalesce(l.email, '') || ' ' || coalesce(l.phone, '')) COLLATE "C")
  FROM leads l;
CREATE INDEX lead_search_doc ON lead_search USING gin (doc gin_trgm_ops);
DROP INDEX IF EXISTS leads_search;
