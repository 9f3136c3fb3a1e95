-- v_pipeline_value: repeatable; first created by 0007_analytics.sql. Edit here, not in a migration.
-- v_pipeline_value: open deals by stage with their amount weighted by the stage's win
-- probability; the row with stage = NULL is the total forecast.
DROP VIEW IF EXISTS v_pipeline_value CASCADE;
CREATE VIEW v_pipeline_value AS
SELECT f.stage, sum(f.deals_now)::bigint AS deals, sum(f.amount_now) AS amount,
       max(st.probability) AS probability,
       round(sum(f.amount_now * st.probability), 2) AS weighted_amount
FROM rollup_funnel f JOIN stages st ON st.id = f.stage AND st.kind = 'open'
GROUP BY ROLLUP (f.stage);
COMMENT ON VIEW v_pipeline_value IS
    'Open pipeline per stage: deals, amount, weighted_amount = amount x win probability; '
    'stage NULL = total';
