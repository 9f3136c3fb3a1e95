-- v_funnel: repeatable; first created by 0007_analytics.sql. Edit here, not in a migration.
DROP VIEW IF EXISTS v_funnel CASCADE;
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
