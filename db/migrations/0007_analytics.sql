-- 0007_analytics: set-based folding of events into the rollups, a funnel that reads
-- rollups instead of scanning leads and lead_events, the pipeline and SLA
-- configuration as tables, and the BI views (docs/analytics.md).
-- (Only this comment changed after the file shipped; a database that ran it records
-- the new checksum.)
-- leadflow:corrects-sha256 87dbf83ae184c95edb2c038e3f80325d3710560a2b1698589faa9b826ef65ee2

-- The pipeline's stages as configured in config/pipeline.json. leadflow-analytics
-- rewrites this table at start (lf_analytics_sync_config), so BI tools can join on it
-- for labels, order and the win probability of each stage.
CREATE TABLE stages (
    id          text PRIMARY KEY,
    label_zh    text,
    label_en    text,
    stage_order integer NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('open', 'won', 'lost')),
    probability numeric NOT NULL CHECK (probability BETWEEN 0 AND 1)
);

CREATE TABLE loss_reasons (
    id       text PRIMARY KEY,
    label_zh text,
    label_en text
);

-- First-contact SLA per grade in seconds, from config/sla.json.
CREATE TABLE sla_first_contact (
    grade   text PRIMARY KEY,
    seconds integer NOT NULL CHECK (seconds > 0)
);

-- The fold's memory of each deal: the stage it is in, the amount its last stage move
-- carried, and every stage it ever entered. Only the fold reads it; BI reads
-- rollup_funnel.
CREATE TABLE analytics_deals (
    lead_id text COLLATE "C" PRIMARY KEY,  -- byte order: cheaper key compares
    stage   text NOT NULL,
    amount  numeric,
    reached text[] NOT NULL
);

-- The funnel as counters: deals in each stage now (count, amount) and deals that ever
-- entered it. A deal counts from its lead.assigned (or its first stage move, whichever
-- the fold sees first), starting in 'new'.
CREATE TABLE rollup_funnel (
    stage         text PRIMARY KEY,
    deals_now     bigint NOT NULL DEFAULT 0,
    amount_now    numeric NOT NULL DEFAULT 0,
    deals_reached bigint NOT NULL DEFAULT 0
);

-- For the first-response views: leads by assignment time.
CREATE INDEX leads_assigned ON leads (assigned_at) WHERE assigned_at IS NOT NULL;

-- The fold of the outbox events `seqs` into every rollup: one statement that reads the
-- events once (by seq from the outbox, the system of record) and upserts each rollup
-- table with one grouped INSERT ... ON CONFLICT. Returns how many of the events were of
-- a type analytics folds. With funnel_only, only analytics_deals and rollup_funnel are
-- updated (the backfill below).
--
-- The funnel part keeps per deal the stage it is in, the amount its last stage move
-- carried and the stages it entered (analytics_deals); the deals of the batch are
-- collapsed to one row each (their last stage, last amount, the stages they entered),
-- compared with what the fold knew, and the differences are added to rollup_funnel.
CREATE FUNCTION lf_analytics_apply(seqs bigint[], funnel_only boolean) RETURNS integer
    LANGUAGE sql AS $$
WITH ev AS MATERIALIZED (
    SELECT o.id, o.type, o.lead_id, o.at,
           o.payload ->> 'to' AS to_stage,
           CASE WHEN jsonb_typeof(o.payload -> 'amount') = 'number'
                THEN (o.payload ->> 'amount')::numeric END AS amount,
           o.payload ->> 'channel' AS channel, o.payload ->> 'grade' AS grade,
           o.payload ->> 'created_at' AS created_at,
           o.payload ->> 'loss_reason' AS loss_reason
    FROM outbox o
    WHERE o.id = ANY (seqs)
      AND o.type IN ('lead.assigned', 'stage.changed', 'deal.won', 'deal.lost')
), leads_daily AS (
    INSERT INTO rollup_leads_daily (day, channel, grade, leads)
    SELECT (created_at::timestamptz AT TIME ZONE 'Asia/Shanghai')::date, channel, grade,
           count(*)
    FROM ev
    WHERE NOT funnel_only AND type = 'lead.assigned' AND channel IS NOT NULL
      AND grade IS NOT NULL AND created_at IS NOT NULL
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (day, channel, grade)
    DO UPDATE SET leads = rollup_leads_daily.leads + EXCLUDED.leads
), stage_daily AS (
    INSERT INTO rollup_stage_daily (day, stage, moves)
    SELECT (at AT TIME ZONE 'Asia/Shanghai')::date, to_stage, count(*)
    FROM ev
    WHERE NOT funnel_only AND type = 'stage.changed' AND to_stage IS NOT NULL
    GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (day, stage) DO UPDATE SET moves = rollup_stage_daily.moves + EXCLUDED.moves
), outcomes AS (
    INSERT INTO rollup_outcomes_daily (day, outcome, loss_reason, deals, amount)
    SELECT (at AT TIME ZONE 'Asia/Shanghai')::date,
           CASE type WHEN 'deal.won' THEN 'won' ELSE 'lost' END,
           CASE type WHEN 'deal.won' THEN '' ELSE coalesce(loss_reason, 'other') END,
           count(*), coalesce(sum(amount), 0)
    FROM ev
    WHERE NOT funnel_only AND type IN ('deal.won', 'deal.lost')
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (day, outcome, loss_reason)
    DO UPDATE SET deals = rollup_outcomes_daily.deals + EXCLUDED.deals,
                  amount = rollup_outcomes_daily.amount + EXCLUDED.amount
), per AS (
    -- Plain aggregates only: ordered or DISTINCT aggregates would sort once per deal.
    SELECT lead_id,
           max(id) FILTER (WHERE to_stage IS NOT NULL) AS stage_seq,
           max(id) FILTER (WHERE amount IS NOT NULL) AS amount_seq,
           coalesce(array_agg(to_stage) FILTER (WHERE to_stage IS NOT NULL), '{}')
               AS entered
    FROM ev
    WHERE lead_id IS NOT NULL
      AND (type = 'lead.assigned' OR (type = 'stage.changed' AND to_stage IS NOT NULL))
    GROUP BY lead_id
), cur AS (
    SELECT p.lead_id, d.lead_id IS NOT NULL AS known, d.stage AS old_stage,
           d.amount AS old_amount, coalesce(d.reached, '{}') AS old_reached,
           coalesce(ls.to_stage, d.stage, 'new') AS new_stage,
           coalesce(la.amount, d.amount) AS new_amount,
           CASE WHEN d.reached IS NOT NULL AND p.entered <@ d.reached THEN d.reached
                WHEN d.reached IS NULL AND p.entered = '{}' THEN '{new}'::text[]
                ELSE ARRAY(SELECT DISTINCT s
                           FROM unnest(coalesce(d.reached, '{new}') || p.entered) s
                           ORDER BY 1) END AS new_reached
    FROM per p
    LEFT JOIN ev ls ON ls.id = p.stage_seq
    LEFT JOIN ev la ON la.id = p.amount_seq
    LEFT JOIN analytics_deals d ON d.lead_id = p.lead_id COLLATE "C"
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
    SELECT stage, sum(n), sum(amount), sum(r) FROM delta GROUP BY stage
    HAVING sum(n) <> 0 OR sum(amount) <> 0 OR sum(r) <> 0
    ORDER BY stage
    ON CONFLICT (stage) DO UPDATE
    SET deals_now = rollup_funnel.deals_now + EXCLUDED.deals_now,
        amount_now = rollup_funnel.amount_now + EXCLUDED.amount_now,
        deals_reached = rollup_funnel.deals_reached + EXCLUDED.deals_reached
)
SELECT count(*)::integer FROM ev
$$;

-- What leadflow-analytics calls, inside the transaction that inserts the events' acks,
-- so a redelivered event (its ack already there) is never passed twice. Twin instances
-- take turns (advisory lock 727007): analytics_deals is read-modify-write. The commit
-- does not wait for its WAL flush (synchronous_commit off for this transaction only):
-- a crash can lose the last folds, but it loses their acks with them, so the sweep
-- folds those events again - still exactly once, and nothing else saw the lost commit.
CREATE FUNCTION lf_analytics_fold(seqs bigint[]) RETURNS integer
    LANGUAGE sql AS $$
SELECT pg_advisory_xact_lock(727007);
SELECT set_config('synchronous_commit', 'off', true);
SELECT lf_analytics_apply(seqs, false);
$$;

-- Rewrites stages, loss_reasons and sla_first_contact from the parsed configuration
-- files (config/pipeline.json, config/sla.json). Called by leadflow-analytics at start.
CREATE FUNCTION lf_analytics_sync_config(pipeline jsonb, sla jsonb) RETURNS void
    LANGUAGE sql AS $$
DELETE FROM stages WHERE id NOT IN
    (SELECT s ->> 'id' FROM jsonb_array_elements(pipeline -> 'stages') s);
INSERT INTO stages (id, label_zh, label_en, stage_order, kind, probability)
SELECT s ->> 'id', s -> 'label' ->> 'zh', s -> 'label' ->> 'en', (s ->> 'order')::int,
       s ->> 'kind', (s ->> 'probability')::numeric
FROM jsonb_array_elements(pipeline -> 'stages') s
ON CONFLICT (id) DO UPDATE SET label_zh = EXCLUDED.label_zh, label_en = EXCLUDED.label_en,
    stage_order = EXCLUDED.stage_order, kind = EXCLUDED.kind,
    probability = EXCLUDED.probability;
DELETE FROM loss_reasons WHERE id NOT IN
    (SELECT r ->> 'id' FROM jsonb_array_elements(pipeline -> 'loss_reasons') r);
INSERT INTO loss_reasons (id, label_zh, label_en)
SELECT r ->> 'id', r -> 'label' ->> 'zh', r -> 'label' ->> 'en'
FROM jsonb_array_elements(pipeline -> 'loss_reasons') r
ON CONFLICT (id) DO UPDATE SET label_zh = EXCLUDED.label_zh, label_en = EXCLUDED.label_en;
DELETE FROM sla_first_contact
WHERE grade NOT IN (SELECT jsonb_object_keys(sla -> 'first_contact_seconds'));
INSERT INTO sla_first_contact (grade, seconds)
SELECT key, value::text::int FROM jsonb_each(sla -> 'first_contact_seconds')
ON CONFLICT (grade) DO UPDATE SET seconds = EXCLUDED.seconds;
$$;

-- Defaults until leadflow-analytics syncs the files (the shipped configuration).
INSERT INTO stages (id, label_zh, label_en, stage_order, kind, probability) VALUES
    ('new', '新线索', 'New lead', 10, 'open', 0.05),
    ('contacted', '初步接触', 'Contacted', 20, 'open', 0.10),
    ('qualified', '需求确认', 'Qualified', 30, 'open', 0.25),
    ('proposal', '方案提交', 'Proposal', 40, 'open', 0.40),
    ('quote', '报价', 'Quote', 50, 'open', 0.60),
    ('negotiation', '谈判', 'Negotiation', 60, 'open', 0.80),
    ('won', '成交', 'Won', 70, 'won', 1.0),
    ('lost', '流失', 'Lost', 80, 'lost', 0.0);
INSERT INTO sla_first_contact (grade, seconds) VALUES
    ('A', 900), ('B', 3600), ('C', 14400), ('D', 86400);

-- Deals the old per-event code already folded (acknowledged by 'analytics') never
-- reached the funnel counters: fold them now. Unacknowledged ones are left to the
-- service, which folds them with everything else.
SELECT lf_analytics_apply(ARRAY(
    SELECT o.id FROM outbox o
    WHERE o.type IN ('lead.assigned', 'stage.changed')
      AND (o.id <= coalesce((SELECT safe_id FROM consumer_cursors
                             WHERE consumer = 'analytics'), 0)
           OR EXISTS (SELECT 1 FROM consumer_acks a WHERE a.consumer = 'analytics'
                      AND a.event_id = o.id AND a.error IS NULL))
    ORDER BY o.id), true);

-- v_funnel: one row per stage, from the counters (no scan of leads or lead_events).
-- deals_now / amount_now: deals sitting in the stage; deals_reached: deals that ever
-- entered it (a deal that went back and forth counts once); moves_30d: entries in the
-- last 30 Asia/Shanghai days; conversion: deals_reached / deals_reached of 'new';
-- weighted_amount: amount_now times the stage's win probability.
DROP VIEW v_funnel;
CREATE VIEW v_funnel AS
SELECT s.stage,
       coalesce(f.deals_now, 0) AS deals_now,
       coalesce(f.amount_now, 0) AS amount_now,
       coalesce(f.deals_reached, 0) AS deals_reached,
       coalesce((SELECT sum(d.moves) FROM rollup_stage_daily d
                 WHERE d.stage = s.stage
                   AND d.day > (now() AT TIME ZONE 'Asia/Shanghai')::date - 30), 0)::bigint
           AS moves_30d,
       st.stage_order, st.kind, st.label_zh, st.label_en, st.probability,
       round(coalesce(f.deals_reached, 0)::numeric
             / nullif((SELECT deals_reached FROM rollup_funnel WHERE stage = 'new'), 0), 4)
           AS conversion,
       round(coalesce(f.amount_now, 0) * coalesce(st.probability, 0), 2) AS weighted_amount
FROM (SELECT id AS stage FROM stages UNION SELECT stage FROM rollup_funnel) s
LEFT JOIN rollup_funnel f ON f.stage = s.stage
LEFT JOIN stages st ON st.id = s.stage;
COMMENT ON VIEW v_funnel IS
    'Deals per stage from rollup_funnel: now in it (count, amount), ever reached it, '
    'entries in the last 30 days, conversion from new, amount weighted by win probability';

-- v_pipeline_value: open deals by stage with their amount weighted by the stage's win
-- probability; the row with stage = NULL is the total forecast.
CREATE VIEW v_pipeline_value AS
SELECT f.stage, sum(f.deals_now)::bigint AS deals, sum(f.amount_now) AS amount,
       max(st.probability) AS probability,
       round(sum(f.amount_now * st.probability), 2) AS weighted_amount
FROM rollup_funnel f JOIN stages st ON st.id = f.stage AND st.kind = 'open'
GROUP BY ROLLUP (f.stage);
COMMENT ON VIEW v_pipeline_value IS
    'Open pipeline per stage: deals, amount, weighted_amount = amount x win probability; '
    'stage NULL = total';

-- v_loss_reasons: lost deals per reason over all time, with their share of the losses.
CREATE VIEW v_loss_reasons AS
SELECT o.loss_reason, lr.label_zh, lr.label_en, sum(o.deals)::bigint AS deals,
       sum(o.amount) AS amount,
       round(sum(o.deals) / nullif(sum(sum(o.deals)) OVER (), 0), 4) AS share
FROM rollup_outcomes_daily o LEFT JOIN loss_reasons lr ON lr.id = o.loss_reason
WHERE o.outcome = 'lost'
GROUP BY o.loss_reason, lr.label_zh, lr.label_en;
COMMENT ON VIEW v_loss_reasons IS 'Lost deals per loss reason, all time, with share of losses';

-- v_lead_outcomes: one row per assigned lead with the dimensions BI slices by and the
-- facts the other views aggregate. Filter on assigned_at (indexed) for big tables.
CREATE VIEW v_lead_outcomes AS
SELECT l.id AS lead_id, l.channel, coalesce(l.source, '') AS source,
       coalesce(l.grade::text, '') AS grade, coalesce(l.owner, '') AS owner,
       coalesce(r.team, '') AS team, l.created_at, l.assigned_at, l.first_contact_at,
       l.stage, l.closed_at, l.amount, l.loss_reason,
       extract(epoch FROM l.first_contact_at - l.assigned_at)::numeric AS response_seconds,
       sla.seconds AS sla_seconds,
       CASE WHEN sla.seconds IS NULL THEN NULL
            WHEN l.first_contact_at IS NOT NULL
                THEN l.first_contact_at <= l.assigned_at + make_interval(secs => sla.seconds)
            WHEN now() > l.assigned_at + make_interval(secs => sla.seconds) THEN false
       END AS within_sla
FROM leads l
LEFT JOIN reps r ON r.id = l.owner
LEFT JOIN sla_first_contact sla ON sla.grade = l.grade::text
WHERE l.assigned_at IS NOT NULL;
COMMENT ON VIEW v_lead_outcomes IS
    'Assigned leads with channel/source/grade/owner/team, response time and SLA verdict '
    '(NULL while still inside the SLA)';

-- v_first_response: first-response time and SLA compliance per day (Asia/Shanghai, by
-- assignment), channel, source, grade and owner. sla_met / sla_missed count only leads
-- whose verdict is known (contacted, or past the deadline).
CREATE VIEW v_first_response AS
SELECT (assigned_at AT TIME ZONE 'Asia/Shanghai')::date AS day, channel, source, grade,
       owner, team,
       count(*) AS leads,
       count(first_contact_at) AS contacted,
       round(avg(response_seconds), 1) AS avg_response_seconds,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY response_seconds) AS median_response_seconds,
       count(*) FILTER (WHERE within_sla) AS sla_met,
       count(*) FILTER (WHERE NOT within_sla) AS sla_missed,
       round(count(*) FILTER (WHERE within_sla)::numeric
             / nullif(count(within_sla), 0), 4) AS sla_compliance
FROM v_lead_outcomes
GROUP BY 1, 2, 3, 4, 5, 6;
COMMENT ON VIEW v_first_response IS
    'First-response time and SLA compliance per day, channel, source, grade, owner, team';

-- v_conversion: per channel, source, grade and owner: leads, contacted, won, lost,
-- win rate (won / closed), conversion (won / leads), won amount and open pipeline.
CREATE VIEW v_conversion AS
SELECT o.channel, o.source, o.grade, o.owner, o.team,
       count(*) AS leads,
       count(o.first_contact_at) AS contacted,
       count(*) FILTER (WHERE st.kind = 'won') AS won,
       count(*) FILTER (WHERE st.kind = 'lost') AS lost,
       round(count(*) FILTER (WHERE st.kind = 'won')::numeric
             / nullif(count(*) FILTER (WHERE st.kind IN ('won', 'lost')), 0), 4) AS win_rate,
       round(count(*) FILTER (WHERE st.kind = 'won')::numeric / count(*), 4) AS conversion,
       coalesce(sum(o.amount) FILTER (WHERE st.kind = 'won'), 0) AS won_amount,
       round(coalesce(sum(o.amount * st.probability) FILTER (WHERE st.kind = 'open'), 0), 2)
           AS weighted_pipeline
FROM v_lead_outcomes o LEFT JOIN stages st ON st.id = o.stage
GROUP BY 1, 2, 3, 4, 5;
COMMENT ON VIEW v_conversion IS
    'Leads, contacted, won, lost, win rate, conversion, won amount and weighted open '
    'pipeline per channel, source, grade, owner, team';

-- v_stage_conversion: per stage, the share of deals that entered it and went on to
-- reach the next open stage (in stage order) and the share that were won.
CREATE VIEW v_stage_conversion AS
SELECT f.stage, f.stage_order, f.deals_reached,
       lead(f.stage) OVER w AS next_stage,
       round(lead(f.deals_reached) OVER w::numeric / nullif(f.deals_reached, 0), 4)
           AS to_next,
       round((SELECT deals_reached FROM rollup_funnel WHERE stage IN
                  (SELECT id FROM stages WHERE kind = 'won') LIMIT 1)::numeric
             / nullif(f.deals_reached, 0), 4) AS to_won
FROM v_funnel f WHERE f.kind = 'open'
WINDOW w AS (ORDER BY f.stage_order);
COMMENT ON VIEW v_stage_conversion IS
    'Stage-to-next-stage and stage-to-won conversion over open stages';
