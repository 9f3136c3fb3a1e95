-- v_loss_reasons: repeatable; first created by 0007_analytics.sql. Edit here, not in a migration.
-- v_loss_reasons: lost deals per reason over all time, with their share of the losses.
DROP VIEW IF EXISTS v_loss_reasons CASCADE;
CREATE VIEW v_loss_reasons AS
SELECT o.loss_reason, lr.label_zh, lr.label_en, sum(o.deals)::bigint AS deals,
       sum(o.amount) AS amount,
       round(sum(o.deals) / nullif(sum(sum(o.deals)) OVER (), 0), 4) AS share
FROM rollup_outcomes_daily o LEFT JOIN loss_reasons lr ON lr.id = o.loss_reason
WHERE o.outcome = 'lost'
GROUP BY o.loss_reason, lr.label_zh, lr.label_en;
COMMENT ON VIEW v_loss_reasons IS 'Lost deals per loss reason, all time, with share of losses';
