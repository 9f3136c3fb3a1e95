-- v_conversion: repeatable; first created by 0007_analytics.sql. Edit here, not in a migration.
-- v_conversion: per channel, source, grade and owner: leads, contacted, won, lost,
-- win rate (won / closed), conversion (won / leads), won amount and open pipeline.
DROP VIEW IF EXISTS v_conversion CASCADE;
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
