-- lf_orphans: repeatable. Every link between rows that no foreign key guards (0040
-- dropped them from the append-only and service-written tables, where each cost a
-- trigger and a lookup per row), with how many rows point at nothing. Our own code
-- writes those rows in the same transaction as what they point at, so every count must
-- be 0; the integration tests check it after their workloads (tests/support/harness.c,
-- lf_h_destroy) and so can an operator:
--   SELECT * FROM lf_orphans() WHERE orphans > 0;
-- It reads every table once (anti-joins on the primary keys): run it on a replica or
-- at a quiet hour on a big database.
CREATE OR REPLACE FUNCTION lf_orphans() RETURNS TABLE (link text, orphans bigint)
    LANGUAGE sql STABLE AS $$
    SELECT 'lead_events.lead_id -> leads', count(*) FROM lead_events x
     WHERE NOT EXISTS (SELECT 1 FROM leads l WHERE l.id = x.lead_id)
    UNION ALL
    SELECT 'assignments.lead_id -> leads', count(*) FROM assignments x
     WHERE NOT EXISTS (SELECT 1 FROM leads l WHERE l.id = x.lead_id)
    UNION ALL
    SELECT 'assignments.rep_id -> reps', count(*) FROM assignments x
     WHERE x.rep_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM reps r WHERE r.id = x.rep_id)
    UNION ALL
    SELECT 'outbox.lead_id -> leads', count(*) FROM outbox x
     WHERE x.lead_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM leads l WHERE l.id = x.lead_id)
    UNION ALL
    SELECT 'timers.lead_id -> leads', count(*) FROM timers x
     WHERE x.lead_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM leads l WHERE l.id = x.lead_id)
    UNION ALL
    SELECT 'notifications.lead_id -> leads', count(*) FROM notifications x
     WHERE x.lead_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM leads l WHERE l.id = x.lead_id)
    UNION ALL
    SELECT 'notifications.timer_id -> timers', count(*) FROM notifications x
     WHERE x.timer_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM timers t WHERE t.id = x.timer_id)
    UNION ALL
    SELECT 'notify_deliveries.notification_id -> notifications', count(*)
      FROM notify_deliveries x
     WHERE NOT EXISTS (SELECT 1 FROM notifications n WHERE n.id = x.notification_id)
    UNION ALL
    SELECT 'lead_inquiries.lead_id -> leads', count(*) FROM lead_inquiries x
     WHERE NOT EXISTS (SELECT 1 FROM leads l WHERE l.id = x.lead_id)
    UNION ALL
    SELECT 'lead_claims.lead_id -> leads', count(*) FROM lead_claims x
     WHERE NOT EXISTS (SELECT 1 FROM leads l WHERE l.id = x.lead_id)
    UNION ALL
    SELECT 'lead_claims.rep_id -> reps', count(*) FROM lead_claims x
     WHERE NOT EXISTS (SELECT 1 FROM reps r WHERE r.id = x.rep_id)
    UNION ALL
    SELECT 'lead_recycles.lead_id -> leads', count(*) FROM lead_recycles x
     WHERE NOT EXISTS (SELECT 1 FROM leads l WHERE l.id = x.lead_id)
    UNION ALL
    SELECT 'lead_recycles.timer_id -> timers', count(*) FROM lead_recycles x
     WHERE x.timer_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM timers t WHERE t.id = x.timer_id)
    UNION ALL
    SELECT 'digests.timer_id -> timers', count(*) FROM digests x
     WHERE x.timer_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM timers t WHERE t.id = x.timer_id)
    UNION ALL
    SELECT 'leads.owner -> reps', count(*) FROM leads x
     WHERE x.owner IS NOT NULL AND NOT EXISTS (SELECT 1 FROM reps r WHERE r.id = x.owner)
    UNION ALL
    SELECT 'leads.customer_id -> customers', count(*) FROM leads x
     WHERE x.customer_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM customers c WHERE c.id = x.customer_id)
    UNION ALL
    SELECT 'leads.reactivated_from -> leads', count(*) FROM leads x
     WHERE x.reactivated_from IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM leads l WHERE l.id = x.reactivated_from)
    UNION ALL
    SELECT 'leads.lost_deal -> leads', count(*) FROM leads x
     WHERE x.lost_deal IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM leads l WHERE l.id = x.lost_deal)
    UNION ALL
    SELECT 'analytics_deals.lead_id -> leads', count(*) FROM analytics_deals x
     WHERE NOT EXISTS (SELECT 1 FROM leads l WHERE l.id = x.lead_id)
    UNION ALL
    SELECT 'lead_search.lead_id -> leads', count(*) FROM lead_search x
     WHERE NOT EXISTS (SELECT 1 FROM leads l WHERE l.id = x.lead_id)
    UNION ALL
    SELECT 'lead_first_contact.lead_id -> leads', count(*) FROM lead_first_contact x
     WHERE NOT EXISTS (SELECT 1 FROM leads l WHERE l.id = x.lead_id)
    UNION ALL
    -- the lists' search text of each lead, kept by triggers (23_lf_lead_search.sql):
    -- missing or not the lead's current name, company, e-mail and phone
    SELECT 'leads.id -> lead_search (missing or stale)', count(*) FROM leads l
     WHERE NOT EXISTS (SELECT 1 FROM lead_search s WHERE s.lead_id = l.id
                          AND s.doc = lower((coalesce(l.name, '') || ' ' ||
                                             coalesce(l.company, '') || ' ' ||
                                             coalesce(l.email, '') || ' ' ||
                                             coalesce(l.phone, '')) COLLATE "C"))
$$;
