-- lf_analytics_fold: repeatable; first created by 0007_analytics.sql. Edit here, not in a migration.
-- What leadflow-analytics calls, inside the transaction that inserts the events' acks,
-- so a redelivered event (its ack already there) is never passed twice. Twin instances
-- take turns (advisory lock 727007): analytics_deals is read-modify-write. The commit
-- does not wait for its WAL flush (synchronous_commit off for this transaction only):
-- a crash can lose the last folds, but it loses their acks with them, so the sweep
-- folds those events again - still exactly once, and nothing else saw the lost commit.
-- PL/pgSQL so that its statements' plans are kept for the connection (a SQL function's
-- are made again at every call: 50_lf_analytics_apply.sql).
CREATE OR REPLACE FUNCTION lf_analytics_fold(seqs bigint[]) RETURNS integer
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(727007);
    PERFORM set_config('synchronous_commit', 'off', true);
    -- The events read from the outbox once (a seq given twice is one event, as with
    -- o.id = ANY (seqs)), a primary-key probe each (LIMIT 1 keeps it one whatever
    -- the statistics: o.id = ANY (seqs) was planned as a scan of the whole outbox
    -- while it was small, and the plan kept); the keep-alive rollups first
    -- (50_lf_analytics_keepalive.sql): they hand back the events for the main fold
    -- without the funnel events of reactivated opportunities.
    RETURN lf_analytics_apply_rows(lf_analytics_keepalive_rows(ARRAY(
        SELECT x.o FROM (SELECT DISTINCT u.id FROM unnest(seqs) u(id)) s
         CROSS JOIN LATERAL (SELECT o FROM outbox o WHERE o.id = s.id LIMIT 1) x
         ORDER BY (x.o).id)), false);
END $$;
