-- leadflow:no-transaction
-- 0046_unmarked_contacts: a lead's phone and e-mail are indexed once, not twice.
-- Every lead intake makes is marked `intake_open` (0043) and so had its phone and e-mail
-- in two indexes each: the unique `leads_intake_open_phone`/`_email` and the plain
-- `leads_phone`/`leads_email` of every lead. The plain ones are replaced by partial
-- ones of the leads NOT marked (`intake_open IS NOT TRUE`: leads won or lost, keep-alive
-- reactivations, reopened deals, leads older than 0043), and intake's repeat-inquiry
-- lookup (db/functions/21_lf_intake_commit.sql) probes both halves. Each insert by
-- intake and each later update of the lead that is not HOT (the router's assignment,
-- stage moves, timeline touches) writes two index entries fewer.
--
-- BUILDS INDEXES ON A BIG TABLE: each CREATE INDEX CONCURRENTLY reads all of `leads`
-- once (a few seconds per million leads) while writers go on; the old indexes are then
-- dropped CONCURRENTLY (docs/operations.md, upgrade notes). Until the function folder
-- is applied right after, the old lf_intake_commit finds no index for its lookup of the
-- unmarked leads and reads a whole index per lead instead: stop intake for the upgrade.
CREATE INDEX CONCURRENTLY IF NOT EXISTS leads_phone_unmarked ON leads (phone)
    WHERE phone IS NOT NULL AND intake_open IS NOT TRUE;
CREATE INDEX CONCURRENTLY IF NOT EXISTS leads_email_unmarked ON leads (email)
    WHERE email IS NOT NULL AND intake_open IS NOT TRUE;
DROP INDEX CONCURRENTLY IF EXISTS leads_phone;
DROP INDEX CONCURRENTLY IF EXISTS leads_email;
