-- lf_analytics_apply: repeatable; first created by 0007_analytics.sql. Edit here, not in a migration.
-- The fold of outbox events into every rollup: one statement that reads the events once
-- and upserts each rollup table with one grouped INSERT ... ON CONFLICT. Returns how many
-- of the events were of a type analytics folds. With funnel_only, only analytics_deals
-- and rollup_funnel are updated (the backfill in 0007).
--   lf_analytics_apply_rows(evs, funnel_only): the events as outbox rows, for a caller
--     that has read them already (lf_analytics_sweep(), 53_lf_analytics_sweep.sql);
--   lf_analytics_apply(seqs, funnel_only): the events by seq, read from the outbox (the
--     system of record) - the ZeroMQ path and the per-event fallback.
--
-- The funnel part keeps per deal the stage it is in, the amount its last stage move
-- carried and the stages it entered (analytics_deals); the deals of the batch are
-- collapsed to one row each (their last stage, last amount, the stages they entered),
-- compared with what the fold knew, and the differences are added to rollup_funnel.
--
-- PL/pgSQL, not SQL, for the plan: a SQL function's statements are planned again at
-- every call, and planning this one took ~1.2 ms of CPU per call - 130 us per event
-- in batches of 10, which is what a consumer that keeps up folds (docs/benchmarks.md:
-- why analytics' CPU per lead swung from 51 to 207 us with the batch size). PL/pgSQL
-- keeps the plan for the connection's life. Its generic plan estimates the events at
-- a handful of rows whatever the batch: hence the aggregates below instead of joins
-- back to ev.
CREATE OR REPLACE FUNCTION lf_analytics_apply_rows(evs outbox[], funnel_only boolean)
    RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    v_n integer;
BEGIN
WITH ev AS MATERIALIZED (
    SELECT o.id, o.type, o.lead_id, o.at,
           o.payload ->> 'to' AS to_stage,
           CASE WHEN jsonb_typeof(o.payload -> 'amount') = 'number'
                THEN (o.payload ->> 'amount')::numeric END AS amount,
           o.payload ->> 'channel' AS channel, o.payload ->> 'grade' AS grade,
           o.payload ->> 'created_at' AS created_at,
           o.payload ->> 'loss_reason' AS loss_reason
    FROM unnest(evs) o
    WHERE o.type IN ('lead.assigned', 'stage.changed', 'deal.won', 'deal.lost')
), leads_daily AS (
    -- Grouped and ordered under the "C" collation (the keys are ASCII names): a sort
    -- by the database's collation calls strcoll() for every comparison.
    INSERT INTO rollup_leads_daily (day, channel, grade, leads)
    SELECT (created_at::timestamptz AT TIME ZONE 'Asia/Shanghai')::date,
           channel COLLATE "C", grade COLLATE "C", count(*)
    FROM ev
    WHERE NOT funnel_only AND type = 'lead.assigned' AND channel IS NOT NULL
      AND grade IS NOT NULL AND created_at IS NOT NULL
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (day, channel, grade)
    DO UPDATE SET leads = rollup_leads_daily.leads + EXCLUDED.leads
), stage_daily AS (
    INSERT INTO rollup_stage_daily (day, stage, moves)
    SELECT (at AT TIME ZONE 'Asia/Shanghai')::date, to_stage COLLATE "C", count(*)
    FROM ev
    WHERE NOT funnel_only AND type = 'stage.changed' AND to_stage IS NOT NULL
    GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (day, stage) DO UPDATE SET moves = rollup_stage_daily.moves + EXCLUDED.moves
), outcomes AS (
    INSERT INTO rollup_outcomes_daily (day, outcome, loss_reason, deals, amount)
    SELECT (at AT TIME ZONE 'Asia/Shanghai')::date,
           CASE type WHEN 'deal.won' THEN 'won' ELSE 'lost' END COLLATE "C",
           CASE type WHEN 'deal.won' THEN '' ELSE coalesce(loss_reason, 'other') END
               COLLATE "C",
           count(*), coalesce(sum(amount), 0)
    FROM ev
    WHERE NOT funnel_only AND type IN ('deal.won', 'deal.lost')
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (day, outcome, loss_reason)
    DO UPDATE SET deals = rollup_outcomes_daily.deals + EXCLUDED.deals,
                  amount = rollup_outcomes_daily.amount + EXCLUDED.amount
), per AS (
    -- Plain aggregates only: ordered or DISTINCT aggregates would sort once per deal.
    -- The deal's last stage and last amount in the batch are the maxima of (seq,
    -- value) pairs packed to compare by seq first, so nothing joins back to ev: with
    -- the planner's small row estimates for ev (a function's array), such joins
    -- became nested loops over ev, quadratic in the batch (4 s per 5,000 events).
    SELECT lead_id,
           substr(max((lpad(id::text, 20, '0') || to_stage) COLLATE "C")
                      FILTER (WHERE to_stage IS NOT NULL), 21) AS last_stage,
           (max(ARRAY[id::numeric, amount]) FILTER (WHERE amount IS NOT NULL))[2]
               AS last_amount,
           coalesce(array_agg(to_stage) FILTER (WHERE to_stage IS NOT NULL), '{}')
               AS entered
    FROM ev
    WHERE lead_id IS NOT NULL
      AND (type = 'lead.assigned' OR (type = 'stage.changed' AND to_stage IS NOT NULL))
    GROUP BY lead_id
), cur AS (
    SELECT p.lead_id, d.lead_id IS NOT NULL AS known, d.stage AS old_stage,
           d.amount AS old_amount, coalesce(d.reached, '{}') AS old_reached,
           coalesce(p.last_stage, d.stage, 'new') AS new_stage,
           coalesce(p.last_amount, d.amount) AS new_amount,
           CASE WHEN d.reached IS NOT NULL AND p.entered <@ d.reached THEN d.reached
                WHEN d.reached IS NULL AND p.entered = '{}' THEN '{new}'::text[]
                ELSE ARRAY(SELECT DISTINCT s
                           FROM unnest(coalesce(d.reached, '{new}') || p.entered) s
                           ORDER BY 1) END AS new_reached
    FROM per p
    LEFT JOIN analytics_deals d ON d.lead_id = p.lead_id
), deals AS (
    INSERT INTO analytics_deals (lead_id, stage, amount, reached)
    SELECT lead_id, new_stage, new_amount, new_reached FROM cur
    WHERE NOT known OR old_stage IS DISTINCT FROM new_stage
       OR old_amount IS DISTINCT FROM new_amount OR old_reached <> new_reached
    ORDER BY lead_id
    ON CONFLICT (lead_id) DO UPDATE
    SET stage = EXCLUDED.stage, amount = EXCLUDED.amount, reached = EXCLUDED.reached
), delta AS (
    SELECT old_stage AS stage, -1 AS n, -coalesce(old_amount, 0) AS amount, 0 AS r
    FROM cur WHERE known
    UNION ALL
    SELECT new_stage, 1, coalesce(new_amount, 0), 0 FROM cur
    UNION ALL
    SELECT s, 0, 0, 1 FROM cur, unnest(new_reached) s WHERE NOT s = ANY (old_reached)
), funnel AS (
    INSERT INTO rollup_funnel (stage, deals_now, amount_now, deals_reached)
    SELECT stage COLLATE "C", sum(n), sum(amount), sum(r) FROM delta GROUP BY 1
    HAVING sum(n) <> 0 OR sum(amount) <> 0 OR sum(r) <> 0
    ORDER BY 1
    ON CONFLICT (stage) DO UPDATE
    SET deals_now = rollup_funnel.deals_now + EXCLUDED.deals_now,
        amount_now = rollup_funnel.amount_now + EXCLUDED.amount_now,
        deals_reached = rollup_funnel.deals_reached + EXCLUDED.deals_reached
)
SELECT count(*)::integer INTO v_n FROM ev;
RETURN v_n;
END $$;

CREATE OR REPLACE FUNCTION lf_analytics_apply(seqs bigint[], funnel_only boolean)
    RETURNS integer LANGUAGE sql AS $$
SELECT lf_analytics_apply_rows(
    ARRAY(SELECT o FROM outbox o WHERE o.id = ANY (seqs)
             AND o.type IN ('lead.assigned', 'stage.changed', 'deal.won', 'deal.lost')),
    funnel_only)
$$;
