-- lf_analytics_keepalive: repeatable; tables in 0037_keepalive_rollups.sql. Edit here.
--
-- The keep-alive part of analytics' fold (docs/analytics.md#recycled-and-reactivated-
-- deals), called by lf_analytics_fold() (51) before the main fold (lf_analytics_apply, in
-- 50_lf_analytics_apply.sql; this file sorts after it and before 51), in the same
-- transaction as the consumer's acks, so each event counts exactly once:
--   * rollup_keepalive_daily: lead.recycled and deal.reactivated count per day, kind
--     and team; a deal.won / deal.lost counts as won / lost (with the won amount) for
--     kind 'reactivated' when the deal is a reactivated opportunity and for kind
--     'recycled' when it had been recycled before it closed (won later, lost again);
--   * the funnel of reactivated opportunities (rollup_funnel_reactivated, per deal in
--     analytics_reactivated): a reactivated deal enters 'new' (its deal.reactivated or
--     its first stage move, whichever is folded first), its stage moves move it as the
--     main fold moves an inbound deal (deals now, amount now, stages reached);
--   * it returns the events for the main fold (lf_analytics_apply, 50) without the
--     stage moves and assignments of reactivated opportunities, so those are neither
--     lead-in nor rows of the inbound funnel. Their won / lost stay in the outcome rollups
--     (v_win_loss): a won reactivated deal is revenue like any other.
-- lf_analytics_keepalive_rows() takes and returns the events as outbox rows, for a
-- caller that has read them already; lf_analytics_keepalive() takes seqs. Reactivated
-- deals are few: their funnel is kept one event at a time. Until the first reactivation,
-- a batch costs a pass over its rows and one index probe; after it, one more pass over
-- its stage moves and assignments against the reactivated deals.
CREATE OR REPLACE FUNCTION lf_analytics_keepalive_rows(evs outbox[]) RETURNS outbox[]
    LANGUAGE plpgsql AS $$
DECLARE
    e record;
    d analytics_reactivated%ROWTYPE;
    v_stage text;
    v_amount numeric;
    v_react bigint[];
BEGIN
    WITH ev AS (
        SELECT o.id, o.type, o.lead_id, o.at, o.payload
          FROM unnest(evs) o
         WHERE o.type IN ('lead.recycled', 'deal.reactivated', 'deal.won', 'deal.lost')),
    k AS (
        SELECT (ev.at AT TIME ZONE 'Asia/Shanghai')::date AS day,
               CASE ev.type WHEN 'lead.recycled' THEN 'recycled' ELSE 'reactivated' END
                   AS kind,
               coalesce(ev.payload ->> 'team', '') AS team, 1 AS deals, 0 AS won,
               0 AS lost, 0::numeric AS won_amount
          FROM ev WHERE ev.type IN ('lead.recycled', 'deal.reactivated')
        UNION ALL
        SELECT (ev.at AT TIME ZONE 'Asia/Shanghai')::date, x.kind, coalesce(l.team, ''),
               0, (ev.type = 'deal.won')::int, (ev.type = 'deal.lost')::int,
               CASE WHEN ev.type = 'deal.won'
                         AND jsonb_typeof(ev.payload -> 'amount') = 'number'
                    THEN (ev.payload ->> 'amount')::numeric ELSE 0 END
          FROM ev
          CROSS JOIN LATERAL (
              SELECT l1.team, l1.reactivated_from FROM leads l1
               WHERE l1.id = ev.lead_id LIMIT 1) l
          CROSS JOIN LATERAL (
              SELECT 'reactivated' WHERE l.reactivated_from IS NOT NULL
              UNION ALL
              SELECT 'recycled' WHERE EXISTS (
                  SELECT 1 FROM lead_recycles r
                   WHERE r.lead_id = ev.lead_id AND r.at <= ev.at)) x (kind)
         WHERE ev.type IN ('deal.won', 'deal.lost'))
    INSERT INTO rollup_keepalive_daily (day, kind, team, deals, won, lost, won_amount)
    SELECT day, kind, team, sum(deals), sum(won), sum(lost), sum(won_amount)
      FROM k GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (day, kind, team) DO UPDATE
    SET deals = rollup_keepalive_daily.deals + EXCLUDED.deals,
        won = rollup_keepalive_daily.won + EXCLUDED.won,
        lost = rollup_keepalive_daily.lost + EXCLUDED.lost,
        won_amount = rollup_keepalive_daily.won_amount + EXCLUDED.won_amount;

    -- Which of the batch's stage moves and assignments are of reactivated
    -- opportunities: leads.reactivated_from says (the truth, whatever order the events
    -- arrive in: the scheduler's deal.reactivated may come after intake's first move of
    -- the deal). No reactivated deal at all (partial index leads_reactivated_from):
    -- nothing more to do. Asked as the first entry of that index (ORDER BY its key,
    -- LIMIT 1), not as NOT EXISTS: the plan is kept for the connection's life, and a
    -- plan made while leads was small and without statistics (IS NOT NULL is then
    -- taken to match nearly every row) scanned the whole table for the first match,
    -- at every batch, as leads grew: 6.4 s of a 10-second whole-stack run
    -- (docs/benchmarks.md). The index's first entry costs the same whatever the
    -- estimates.
    PERFORM 1 FROM leads WHERE reactivated_from IS NOT NULL
      ORDER BY reactivated_from LIMIT 1;
    IF NOT FOUND THEN
        RETURN evs;
    END IF;
    SELECT coalesce(array_agg(o.id), '{}') INTO v_react
      FROM unnest(evs) o
     WHERE o.type IN ('stage.changed', 'lead.assigned')
       AND o.lead_id IN (SELECT l.id FROM leads l WHERE l.reactivated_from IS NOT NULL);

    -- The funnel of reactivated opportunities, in event order. A deal enters 'new' once,
    -- with its deal.reactivated or its first move, whichever is folded first.
    FOR e IN
        SELECT o.id, o.type, o.lead_id::text AS lead, o.payload
          FROM unnest(evs) o
         WHERE (o.type = 'deal.reactivated'
                OR (o.type = 'stage.changed' AND o.id = ANY (v_react)))
         ORDER BY o.id
    LOOP
        INSERT INTO analytics_reactivated (lead_id) VALUES (e.lead)
            ON CONFLICT DO NOTHING;
        IF FOUND THEN
            INSERT INTO rollup_funnel_reactivated AS f (stage, deals_now, deals_reached)
            VALUES ('new', 1, 1)
            ON CONFLICT (stage) DO UPDATE
            SET deals_now = f.deals_now + 1, deals_reached = f.deals_reached + 1;
        END IF;
        CONTINUE WHEN e.type = 'deal.reactivated' OR e.payload ->> 'to' IS NULL;
        SELECT * INTO d FROM analytics_reactivated WHERE lead_id = e.lead FOR UPDATE;
        v_stage := e.payload ->> 'to';
        v_amount := CASE WHEN jsonb_typeof(e.payload -> 'amount') = 'number'
                         THEN (e.payload ->> 'amount')::numeric ELSE d.amount END;
        -- Out of the stage it was in, into the new one (two statements: the two
        -- stages are the same row when the fold's state lags a move).
        UPDATE rollup_funnel_reactivated
           SET deals_now = deals_now - 1, amount_now = amount_now - coalesce(d.amount, 0)
         WHERE stage = d.stage;
        INSERT INTO rollup_funnel_reactivated AS f (stage, deals_now, amount_now,
                                                    deals_reached)
        VALUES (v_stage, 1, coalesce(v_amount, 0),
                CASE WHEN v_stage = ANY (d.reached) THEN 0 ELSE 1 END)
        ON CONFLICT (stage) DO UPDATE
        SET deals_now = f.deals_now + EXCLUDED.deals_now,
            amount_now = f.amount_now + EXCLUDED.amount_now,
            deals_reached = f.deals_reached + EXCLUDED.deals_reached;
        UPDATE analytics_reactivated
           SET stage = v_stage, amount = v_amount,
               reached = CASE WHEN v_stage = ANY (reached) THEN reached
                              ELSE reached || v_stage END
         WHERE lead_id = e.lead;
    END LOOP;

    -- Everything else goes to the main fold.
    IF cardinality(v_react) = 0 THEN
        RETURN evs;
    END IF;
    RETURN ARRAY(SELECT o FROM unnest(evs) o WHERE NOT o.id = ANY (v_react) ORDER BY o.id);
END $$;

-- The same by seq, reading the events from the outbox once (lf_analytics_fold(), 51):
-- returns the seqs for the main fold.
CREATE OR REPLACE FUNCTION lf_analytics_keepalive(seqs bigint[]) RETURNS bigint[]
    LANGUAGE sql AS $$
    SELECT ARRAY(SELECT (x).id FROM unnest(lf_analytics_keepalive_rows(ARRAY(
               SELECT o FROM outbox o WHERE o.id = ANY (seqs) ORDER BY o.id))) x
                 ORDER BY (x).id) $$;
