-- leadflow:no-transaction
-- 0027_list_indexes: GET /v1/leads pages with a keyset on (created_at, id), newest
-- first, or (updated_at, id), oldest first, so every filter that narrows the list a
-- lot gets an index that ends in the keyset: the page is then an index range scan
-- that stops after `limit` rows, however many millions of leads there are
-- (docs/router.md shows the plans). grade and channel have few values: they filter
-- the (created_at, id) scan instead of costing every insert one more index. The
-- composite indexes replace the single-column ones they start with.
CREATE INDEX CONCURRENTLY IF NOT EXISTS leads_created_id ON leads (created_at, id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS leads_updated_id ON leads (updated_at, id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS leads_owner_created
    ON leads (owner, created_at, id) WHERE owner IS NOT NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS leads_team_created ON leads (team, created_at, id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS leads_stage_created ON leads (stage, created_at, id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS leads_pool_created
    ON leads (created_at, id) WHERE pool_reason IS NOT NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS leads_search ON leads USING gin
    (lower(coalesce(name, '') || ' ' || coalesce(company, '') || ' ' ||
           coalesce(email, '') || ' ' || coalesce(phone, '')) gin_trgm_ops);
DROP INDEX CONCURRENTLY IF EXISTS leads_created;
DROP INDEX CONCURRENTLY IF EXISTS leads_owner;
DROP INDEX CONCURRENTLY IF EXISTS leads_stage;
