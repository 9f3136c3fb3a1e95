-- Keep-alive analytics (docs/analytics.md#recycled-and-reactivated-deals): what became of
-- recycled deals and of reactivated opportunities. Views over leads and lead_recycles
-- (both indexed on what they join on); recycles and reactivations are few next to
-- leads.
DROP VIEW IF EXISTS v_keepalive_outcomes CASCADE;
DROP VIEW IF EXISTS v_recycled_deals CASCADE;
DROP VIEW IF EXISTS v_reactivated_deals CASCADE;
DROP VIEW IF EXISTS v_keepalive_daily CASCADE;
DROP VIEW IF EXISTS v_funnel_reactivated CASCADE;

-- One row per recycle: the deal, whose it was, where it stood, and what became of it
-- since (won later, lost again, still open; owned again or still in the pool).
CREATE VIEW v_recycled_deals AS
SELECT r.id AS recycle_id, r.lead_id, coalesce(r.team, l.team, '') AS team,
       r.from_rep, r.stage AS stage_at_recycle, r.at AS recycled_at,
       date_trunc('month', r.at AT TIME ZONE 'Asia/Shanghai')::date AS month,
       l.owner AS owner_now, l.stage AS stage_now, l.closed_at, l.amount,
       CASE WHEN l.closed_at IS NULL THEN 'open'
            WHEN l.loss_reason IS NULL THEN 'won' ELSE 'lost' END AS outcome,
       l.pool_reason = 'recycled' AS still_in_pool
FROM lead_recycles r JOIN leads l ON l.id = r.lead_id;
COMMENT ON VIEW v_recycled_deals IS
    'One row per stale deal recycled to its team pool, with what became of it: outcome '
    'won (later), lost (again) or open';

-- One row per reactivated opportunity: the lost deal it came from and why it was lost,
-- and what became of the new opportunity.
CREATE VIEW v_reactivated_deals AS
SELECT n.id AS lead_id, n.reactivated_from, coalesce(n.team, '') AS team,
       o.loss_reason AS original_loss_reason, o.closed_at AS lost_at,
       coalesce(o.owner, '') AS previous_owner, n.created_at AS reactivated_at,
       date_trunc('month', n.created_at AT TIME ZONE 'Asia/Shanghai')::date AS month,
       n.owner, n.stage, n.closed_at, n.amount, n.loss_reason,
       CASE WHEN n.closed_at IS NULL THEN 'open'
            WHEN n.loss_reason IS NULL THEN 'won' ELSE 'lost' END AS outcome
FROM leads n JOIN leads o ON o.id = n.reactivated_from
WHERE n.reactivated_from IS NOT NULL;
COMMENT ON VIEW v_reactivated_deals IS
    'Reactivated opportunities (channel reactivation) with the loss they came from and '
    'their outcome: won, lost (again) or open';

-- Per month (of the recycle / reactivation), team and kind: how many, and how they
-- ended so far.
CREATE VIEW v_keepalive_outcomes AS
SELECT month, team, kind, count(*) AS deals,
       count(*) FILTER (WHERE outcome = 'won') AS won,
       count(*) FILTER (WHERE outcome = 'lost') AS lost,
       count(*) FILTER (WHERE outcome = 'open') AS open,
       coalesce(sum(amount) FILTER (WHERE outcome = 'won'), 0) AS won_amount,
       round(count(*) FILTER (WHERE outcome = 'won')::numeric
             / nullif(count(*) FILTER (WHERE outcome <> 'open'), 0), 4) AS win_rate
FROM (SELECT month, team, 'recycled'::text AS kind, outcome, amount FROM v_recycled_deals
      UNION ALL
      SELECT month, team, 'reactivated', outcome, amount FROM v_reactivated_deals) x
GROUP BY month, team, kind;
COMMENT ON VIEW v_keepalive_outcomes IS
    'Recycled and reactivated deals per month, team and kind, with won / lost (again) / '
    'open and the win rate of those closed';

-- From analytics' rollups (0037_keepalive_rollups.sql, folded exactly once from the
-- events): per day, kind and team, deals recycled / reactivated that day and closings
-- that day of deals recycled before (won later, lost again) or of reactivated
-- opportunities.
CREATE VIEW v_keepalive_daily AS
SELECT day, date_trunc('month', day)::date AS month, kind, team, deals, won, lost,
       won_amount
FROM rollup_keepalive_daily;
COMMENT ON VIEW v_keepalive_daily IS
    'Per day, kind (recycled | reactivated) and team: deals recycled or reactivated that '
    'day, and deals of that kind won or lost that day (won later, lost again)';

-- The funnel of reactivated opportunities, apart from inbound leads (v_funnel counts
-- those only): the same columns as v_funnel, conversion from their own 'new'.
CREATE VIEW v_funnel_reactivated AS
SELECT s.stage,
       coalesce(f.deals_now, 0) AS deals_now,
       coalesce(f.amount_now, 0) AS amount_now,
       coalesce(f.deals_reached, 0) AS deals_reached,
       st.stage_order, st.kind, st.label_zh, st.label_en, st.probability,
       round(coalesce(f.deals_reached, 0)::numeric
             / nullif((SELECT deals_reached FROM rollup_funnel_reactivated
                        WHERE stage = 'new'), 0), 4) AS conversion,
       round(coalesce(f.amount_now, 0) * coalesce(st.probability, 0), 2) AS weighted_amount
FROM (SELECT id AS stage FROM stages UNION SELECT stage FROM rollup_funnel_reactivated) s
LEFT JOIN rollup_funnel_reactivated f ON f.stage = s.stage
LEFT JOIN stages st ON st.id = s.stage;
COMMENT ON VIEW v_funnel_reactivated IS
    'Reactivated opportunities per stage (rollup_funnel_reactivated): now in it, ever '
    'reached it, conversion from new, weighted amount; v_funnel counts inbound deals only';
