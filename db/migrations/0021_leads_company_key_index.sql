-- leadflow:no-transaction
-- 0021_leads_company_key_index: the router's sticky-owner lookup ("the last owner of a
-- lead from the same company") probes by company key, newest first, among owned leads.
-- Built concurrently so that intake keeps inserting while it builds on a large table.
CREATE INDEX CONCURRENTLY IF NOT EXISTS leads_company_key
    ON leads (company_key, created_at DESC)
    WHERE company_key IS NOT NULL AND company_key <> '' AND owner IS NOT NULL;
