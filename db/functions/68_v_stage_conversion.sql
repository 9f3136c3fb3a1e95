-- v_stage_conversion: repeatable; first created by 0007_analytics.sql. Edit here, not in a migration.
-- v_stage_conversion: per stage, the share of deals that entered it and went on to
-- reach the next open stage (in stage order) and the share that were won.
DROP VIEW IF EXISTS v_stage_conversion CASCADE;
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
