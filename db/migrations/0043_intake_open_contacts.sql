-- leadflow:no-transaction
-- 0043_intake_open_contacts: intake's batch statement (db/functions/21_lf_intake_commit.sql)
-- matches repeat inquiries to open leads with one indexed lookup per batch instead of an
-- advisory lock per phone, e-mail and key. What keeps two requests for the same new
-- person, racing in two committer threads, from making two leads is a unique index:
-- a lead intake creates is marked `intake_open`, the mark is cleared when the lead is
-- won or lost (trigger in db/functions/22_lf_leads_intake_open.sql), and among marked
-- leads a phone and an e-mail are unique. The loser of such a race waits for the
-- winner's commit inside INSERT ... ON CONFLICT DO NOTHING and is then merged into the
-- winner's lead by the next pass of the same function call.
--
-- Leads made otherwise (a keep-alive reactivation, a reopened deal) are never marked, so
-- they can share a phone with an open lead as before; existing leads stay unmarked (no
-- rewrite, no backfill: the column is NULL and both indexes start empty).
ALTER TABLE leads ADD COLUMN IF NOT EXISTS intake_open boolean;
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS leads_intake_open_phone
    ON leads (phone) WHERE intake_open;
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS leads_intake_open_email
    ON leads (email) WHERE intake_open;
-- The jsonb batch function and its key helper are replaced by the typed-array one.
DROP FUNCTION IF EXISTS lf_intake_commit(jsonb);
DROP FUNCTION IF EXISTS lf_batch_keys(jsonb);
