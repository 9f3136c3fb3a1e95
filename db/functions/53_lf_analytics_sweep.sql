-- lf_analytics_sweep: repeatable. Edit here, not in a migration.
--
-- The analytics consumer's outbox sweep, acknowledgement and fold in one call
-- (services/analytics/sweep.c), where the consumer framework (common/consumer.c) takes
-- three statements and reads each event from the outbox three times: the window of
-- unacknowledged events, the insert of their acks, the fold reading them by seq. Here
-- the window is read once, its events without an ack get one, and exactly those rows
-- are folded (lf_analytics_apply_rows(), 50_lf_analytics_apply.sql), in the caller's
-- one transaction. The guarantees are the consumer's (lf/consumer.h):
--   * the cursor row is share-locked first and no ack is inserted below it (the window
--     starts above safe_id and at safe_xid), so an advance never passes an event this
--     transaction acknowledges;
--   * an event gets its ack and its fold in the same transaction, once: the window
--     skips events with an ack, and a twin acknowledging the same event concurrently
--     makes the plain insert fail (unique violation), after which it is retried with
--     ON CONFLICT DO NOTHING, which waits for the twin and keeps only what is still
--     new;
--   * twins fold one at a time (advisory lock 727007, taken after the acks, as in
--     lf_analytics_fold(), so a twin holding acks and waiting for the lock never
--     waits for us);
--   * the commit does not wait for its WAL flush, as in lf_analytics_fold().
-- p_from: where the previous full window ended (0: from the cursor). Returns the
-- window's size and last seq (the caller pages on while windows come back full) and
-- how many events were folded. A failure (a malformed payload) rolls the call back;
-- the caller then sweeps through the consumer framework, which sets the culprit
-- aside.
CREATE OR REPLACE FUNCTION lf_analytics_sweep(p_consumer text, p_types text[],
                                              p_from bigint, p_limit integer,
                                              OUT window_n integer,
                                              OUT window_end bigint,
                                              OUT folded integer)
    LANGUAGE plpgsql AS $$
DECLARE
    cx xid8;
    ci bigint;
    evs outbox[];
BEGIN
    SELECT safe_xid, safe_id INTO cx, ci FROM consumer_cursors
     WHERE consumer = p_consumer FOR SHARE;
    IF NOT FOUND THEN
        INSERT INTO consumer_cursors (consumer) VALUES (p_consumer) ON CONFLICT DO NOTHING;
        SELECT safe_xid, safe_id INTO cx, ci FROM consumer_cursors
         WHERE consumer = p_consumer FOR SHARE;
    END IF;
    BEGIN
        WITH w AS MATERIALIZED (
            SELECT o FROM outbox o
             WHERE o.id > greatest(p_from, ci) AND o.xid >= cx
               AND o.type = ANY (p_types)
             ORDER BY o.id LIMIT p_limit),
        ins AS (
            INSERT INTO consumer_acks (consumer, event_id)
            SELECT p_consumer, (w.o).id FROM w
             -- A probe per row, on purpose: as an anti-join the planner sorts or
             -- hashes every ack of the consumer, which grows with the backlog.
             WHERE (SELECT 1 FROM consumer_acks a
                     WHERE a.consumer = p_consumer AND a.event_id = (w.o).id) IS NULL
             ORDER BY (w.o).id
            RETURNING event_id)
        SELECT (SELECT count(*) FROM w), (SELECT max((w.o).id) FROM w),
               ARRAY(SELECT w.o FROM w JOIN ins ON ins.event_id = (w.o).id
                      ORDER BY (w.o).id)
          INTO window_n, window_end, evs;
    EXCEPTION WHEN unique_violation THEN
        WITH w AS MATERIALIZED (
            SELECT o FROM outbox o
             WHERE o.id > greatest(p_from, ci) AND o.xid >= cx
               AND o.type = ANY (p_types)
             ORDER BY o.id LIMIT p_limit),
        ins AS (
            INSERT INTO consumer_acks (consumer, event_id)
            SELECT p_consumer, (w.o).id FROM w ORDER BY (w.o).id
                ON CONFLICT DO NOTHING
            RETURNING event_id)
        SELECT (SELECT count(*) FROM w), (SELECT max((w.o).id) FROM w),
               ARRAY(SELECT w.o FROM w JOIN ins ON ins.event_id = (w.o).id
                      ORDER BY (w.o).id)
          INTO window_n, window_end, evs;
    END;
    folded := 0;
    IF cardinality(evs) > 0 THEN
        PERFORM pg_advisory_xact_lock(727007);
        PERFORM set_config('synchronous_commit', 'off', true);
        -- The keep-alive rollups first; they hand back the events for the main fold
        -- without the funnel events of reactivated opportunities
        -- (50_lf_analytics_keepalive.sql).
        folded := lf_analytics_apply_rows(lf_analytics_keepalive_rows(evs), false);
    END IF;
END $$;
