-- v_first_response: repeatable; first created by 0007_analytics.sql. Edit here, not in a migration.
-- v_first_response: first-response time and SLA compliance per day (Asia/Shanghai, by
-- assignment), channel, source, grade and owner. sla_met / sla_missed count only leads
-- whose verdict is known (contacted, or past the deadline).
DROP VIEW IF EXISTS v_first_response CASCADE;
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
