-- leadflow:no-transaction
-- 0053_team_index_routed: the lists' team index holds routed leads only.
-- `leads_team_created` (team, created_at, id) had an entry for every lead, and a lead is
-- written twice on its way in: intake inserts it with no team (an entry under NULL that
-- no query reads: the lists filter on `l.team = $n`, which never matches NULL), the
-- router's update then gives it its team (a second entry, the one the lists use). The
-- index is now partial, `WHERE team IS NOT NULL`: intake's insert writes one index entry
-- fewer per lead (7 -> 6), and vacuum has one dead entry fewer per lead to remove (the
-- NULL entry died with the router's update). Every query that used the index still does
-- (`team = $n` implies `team IS NOT NULL`, in a generic plan too; GET /v1/pool and the
-- digest's pool counts use `leads_pool`). The router's own entries are unchanged, and
-- the index is about as large as before once vacuum has run: it only ever served the
-- routed leads.
--
-- BUILDS AN INDEX ON A BIG TABLE: CREATE INDEX CONCURRENTLY reads all of `leads` once
-- (1.2 s for 1,000,000 leads on the 2-core development machine at load average 7) while
-- the services go on writing; the old index is then dropped CONCURRENTLY (21 ms) and the
-- new one takes its name (a rename: a SHARE UPDATE EXCLUSIVE lock for a moment). No
-- rewrite of the table, no service to stop: a list by team uses the old index until the
-- new one is valid. If the build is interrupted, PostgreSQL leaves an invalid index
-- `leads_team_created_set` behind: DROP INDEX it and run leadflow-migrate again.
CREATE INDEX CONCURRENTLY IF NOT EXISTS leads_team_created_set
    ON leads (team, created_at, id) WHERE team IS NOT NULL;
DROP INDEX CONCURRENTLY IF EXISTS leads_team_created;
ALTER INDEX IF EXISTS leads_team_created_set RENAME TO leads_team_created;
