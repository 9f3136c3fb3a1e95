-- leadflow:no-transaction
-- 0048_lost_deal_contacts: a new lead finds its customer's lost deal by phone and by
-- e-mail in indexes of lost deals only (lf_keepalive_link_lost_batch() and
-- lf_keepalive_link_lost(), db/functions/43_lf_keepalive_reactivate.sql), as it already
-- does by company key (leads_lost_company, 0036), instead of probing the indexes of
-- every lead's phone and e-mail and reading each hit's row to learn it is not lost.
-- Partial: a lead enters them only when it is lost, so intake's inserts and the
-- router's updates add no entry. Built CONCURRENTLY: the build reads all of `leads`
-- (a few seconds per million leads) without blocking writes.
CREATE INDEX CONCURRENTLY IF NOT EXISTS leads_lost_phone ON leads (phone, closed_at)
    WHERE loss_reason IS NOT NULL AND closed_at IS NOT NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS leads_lost_email ON leads (email, closed_at)
    WHERE loss_reason IS NOT NULL AND closed_at IS NOT NULL;
