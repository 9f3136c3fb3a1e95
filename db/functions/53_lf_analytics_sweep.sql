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
--     makes the insert of the ack row wait for it and insert nothing (the exclusion
--     constraint of consumer_acks), after which the window is read again and only
--     what is still new is acknowledged;
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
    acked bigint;
BEGIN
    SELECT safe_xid, safe_id INTO cx, ci FROM consumer_cursors
     WHERE consumer = p_consumer FOR SHARE;
    IF NOT FOUND THEN
        INSERT INTO consumer_cursors (consumer) VALUES (p_consumer) ON CONFLICT DO NOTHING;
        SELECT safe_xid, safe_id INTO cx, ci FROM consumer_cursors
         WHERE consumer = p_consumer FOR SHARE;
    END IF;
    -- The window's events without an ack get one ack row (one per call, not one per
    -- event: 0051_consumer_ack_batches.sql). The acks that overlap the window's seq
    -- range are read once, as one multirange, and each event tested against it in
    -- memory. A twin that acknowledged one of these events after this statement's
    -- snapshot (or is doing so) makes the insert wait for it and then insert nothing
    -- (ON CONFLICT DO NOTHING on the exclusion constraint); the statement is then run
    -- again, with a new snapshot that sees the twin's acks, so only what is still new
    -- is acknowledged and folded.
    FOR pass IN 1..3 LOOP
        WITH w AS MATERIALIZED (
            SELECT o FROM outbox o
             WHERE o.id > greatest(p_from, ci) AND o.xid >= cx
               AND o.type = ANY (p_types)
             ORDER BY o.id LIMIT p_limit),
        fresh AS MATERIALIZED (
            SELECT w.o FROM w
             WHERE NOT (w.o).id <@ (
                   SELECT coalesce(range_agg(a.seqs), '{}'::int8multirange)
                     FROM consumer_acks a
                    WHERE a.consumer = p_consumer
                      AND a.seqs && (SELECT int8range(min((w.o).id), max((w.o).id), '[]')
                                       FROM w))),
        ins AS (
            INSERT INTO consumer_acks (consumer, seqs, top_xid)
            SELECT p_consumer, range_agg(int8range((f.o).id, (f.o).id, '[]')),
                   max((f.o).xid)
              FROM fresh f HAVING count(*) > 0
                ON CONFLICT DO NOTHING
            RETURNING 1)
        SELECT (SELECT count(*) FROM w), (SELECT max((w.o).id) FROM w),
               ARRAY(SELECT f.o FROM fresh f ORDER BY (f.o).id),
               (SELECT count(*) FROM ins)
          INTO window_n, window_end, evs, acked;
        EXIT WHEN cardinality(evs) = 0 OR acked = 1;
        IF pass = 3 THEN
            -- Three rounds lost to twins: the caller sweeps through the consumer
            -- framework, which settles it event by event.
            RAISE EXCEPTION 'the acks of the analytics sweep kept meeting a twin''s'
                  USING ERRCODE = 'serialization_failure';
        END IF;
    END LOOP;
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
