-- 0025_teams_pool: a lead's team, what was typed for its region and industry, and the
-- team pool (公海 / 待分配) that replaces the fallback queue.
--
-- region / industry now hold the ids of config/routing.json's vocabularies (华东 ->
-- east) once the router has mapped them; region_raw / industry_raw keep what was typed.
-- A lead without an owner that is waiting for one has a pool_reason (no_eligible_rep,
-- owner_left, recycled, reactivated, released) and pool_since; both are NULL while it
-- is owned. `queue` stays for the pool's name of the old fallback configuration.
ALTER TABLE leads
    ADD COLUMN team             text,
    ADD COLUMN region_raw       text,
    ADD COLUMN industry_raw     text,
    ADD COLUMN pool_reason      text CHECK (pool_reason IN ('no_eligible_rep', 'owner_left',
                                            'recycled', 'reactivated', 'released')),
    ADD COLUMN pool_since       timestamptz,
    ADD COLUMN reactivated_from text,
    ADD CONSTRAINT leads_pool_consistent CHECK ((pool_reason IS NULL) = (pool_since IS NULL));

-- Today's queue is the pool: every open lead that found nobody waits there, since it
-- was queued.
UPDATE leads SET pool_reason = 'no_eligible_rep', pool_since = coalesce(assigned_at, created_at)
 WHERE owner IS NULL AND assigned_at IS NOT NULL AND stage NOT IN ('won', 'lost');

-- The pool of a team, oldest first (GET /v1/pool, auto-routing, the pool SLA).
CREATE INDEX leads_pool ON leads (team, pool_since, id) WHERE pool_reason IS NOT NULL;
