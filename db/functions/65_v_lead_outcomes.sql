-- v_lead_outcomes: repeatable; first created by 0007_analytics.sql. Edit here, not in a migration.
-- v_lead_outcomes: one row per assigned lead with the dimensions BI slices by and the
-- facts the other views aggregate. Filter on assigned_at (indexed) for big tables.
DROP VIEW IF EXISTS v_lead_outcomes CASCADE;
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
