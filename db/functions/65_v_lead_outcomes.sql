-- v_lead_outcomes: repeatable; first created by 0007_analytics.sql. Edit here, not in a migration.
-- v_lead_outcomes: one row per assigned lead with the dimensions BI slices by and the
-- facts the other views aggregate. Filter on assigned_at (indexed) for big tables.
--
-- The first-contact deadline that applied (sla_due_at), stored when the SLA clock was
-- set, in the business time of the lead's team (services/scheduler/clock.c):
--   * leads.first_contact_due_at where the scheduler wrote it there: only when the
--     current round's reminder timer already existed when the clock was set (a lead
--     routed again after a recycle), and on every later clock of such a lead - and at
--     every clock of every lead before 2026-12-02, so those rows keep their answer;
--   * else the due_at of the lead's latest round reminder timer (sla_first_contact,
--     step 10 * round, the last one inserted); a clock set before deadlines were stored
--     (0035) left a timer without data, which is not taken;
--   * else, for leads assigned before deadlines were stored, the assignment plus the
--     grade's SLA of today's configuration.
-- The timer is read only when the lead carries no deadline (a one-time filter), by the
-- timers' unique (lead_id, kind, step) index. Before, the scheduler updated the lead row
-- at every clock: a second version of the wide row, mostly non-HOT in the whole stack.
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
       coalesce(l.first_contact_due_at, ft.due_at,
                l.assigned_at + make_interval(secs => sla.seconds)) AS sla_due_at,
       CASE WHEN l.first_contact_at IS NOT NULL
                THEN l.first_contact_at <= coalesce(l.first_contact_due_at, ft.due_at,
                         l.assigned_at + make_interval(secs => sla.seconds))
            WHEN now() > coalesce(l.first_contact_due_at, ft.due_at,
                         l.assigned_at + make_interval(secs => sla.seconds)) THEN false
       END AS within_sla,
       l.reactivated_from
FROM leads l
LEFT JOIN sla_first_contact sla ON sla.grade = l.grade::text
LEFT JOIN LATERAL (
    SELECT t.due_at FROM timers t
     WHERE l.first_contact_due_at IS NULL AND t.lead_id = l.id
       AND t.kind = 'sla_first_contact' AND t.step % 10 = 0 AND t.data IS NOT NULL
     ORDER BY t.id DESC LIMIT 1) ft ON true
WHERE l.assigned_at IS NOT NULL;
COMMENT ON VIEW v_lead_outcomes IS
    'Assigned leads with channel/source/grade/owner/team (the lead''s team), response time '
    'and SLA verdict against the deadline stored when the clock was set (NULL while still '
    'inside the SLA); reactivated_from for reactivated opportunities';
