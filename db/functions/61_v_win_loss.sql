-- v_win_loss: repeatable; first created by 0004_pipeline.sql. Edit here, not in a migration.
-- v_win_loss: closed deals per month, outcome and loss reason, with the month's win
-- rate (won / closed) on every row of the month.
DROP VIEW IF EXISTS v_win_loss CASCADE;
CREATE VIEW v_win_loss AS
SELECT m.month, m.outcome, m.loss_reason, m.deals, m.amount,
       round(coalesce(sum(m.deals) FILTER (WHERE m.outcome = 'won') OVER w, 0)
             / nullif(sum(m.deals) OVER w, 0), 4) AS win_rate
FROM (SELECT date_trunc('month', day)::date AS month, outcome, loss_reason,
             sum(deals) AS deals, sum(amount) AS amount
      FROM rollup_outcomes_daily GROUP BY 1, 2, 3) m
WINDOW w AS (PARTITION BY m.month);
COMMENT ON VIEW v_win_loss IS
    'Closed deals per month, outcome and loss reason; win_rate = won / closed in the month';
