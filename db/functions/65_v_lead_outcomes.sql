-- v_lead_outcomes: repeatable; first created by 0007_analytics.sql. Edit here, not in a migration.
-- v_lead_outcomes: one row per assigned lead with the dimensions BI slices by and the
-- facts the other views aggregate. Filter on assigned_at (indexed) for big tables.
-- The first-contact deadline that applied (sla_due_at) was stored when the SLA clock was
-- set, in the business time of the lead's team (services/scheduler/clock.c): in
-- lead_first_contact since 0047, in leads.first_contact_due_at before; for leads
-- assigned before deadlines were stored at all, the assignment plus the grade's SLA of
-- today's configuration.
DROP VIEW IF EXISTS v_lead_outcomes CASCADE;
CREATE VIEW v_lead_outcomes AS
SELECT l.id AS lead_id, l.channel, coalesce(l.source, '') AS source,
       coalesce(l.grade::text, '') AS grade, coalesce(l.owner, '') AS owner,
       -- The lead's team ('' for a lead of no team), never its owner's current team:
       -- a rep who changes team takes no history along.
       coalesce(l.team, '') AS team, l.created_at, l.assigned_at,
       l.first_contact_at, l.stage, l.closed_at, l.amount, l.loss_reason,
       extract(epoch FROM l.first_contact_at - l.assigned_at)::numeric AS response_seconds,
       sla.seconds AS sla_seconds,
       coalesce(fc.due_at, l.first_contact_due_at,
                l.assigned_at + make_interval(secs => sla.seconds)) AS sla_due_at,
       CASE WHEN coalesce(fc.due_at, l.first_contact_due_at, l.assigned_at + make_interval(secs => sla.seconds)) IS NULL THEN NULL
            WHEN l.first_contact_at IS NOT NULL
                THEN l.first_contact_at <= coalesce(fc.due_at, l.first_contact_due_at,
                         l.assigned_at + make_interval(secs => sla.seconds))
            WHEN now() > coalesce(fc.due_at, l.first_contact_due_at,
                         l.assigned_at + make_interval(secs => sla.seconds)) THEN false
       END AS within_sla,
       l.reactivated_from
FROM leads l
LEFT JOIN sla_first_contact sla ON sla.grade = l.grade::text
LEFT JOIN lead_first_contact fc ON fc.lead_id = l.id
WHERE l.assigned_at IS NOT NULL;
COMMENT ON VIEW v_lead_outcomes IS
    'Assigned leads with channel/source/grade/owner/team (the lead''s team), response time '
    'and SLA verdict against the deadline stored when the clock was set (NULL while still '
    'inside the SLA); reactivated_from for reactivated opportunities';
