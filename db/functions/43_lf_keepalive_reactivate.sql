-- Reactivation of lost deals (再激活) and the link of a new inquiry to the customer's
-- lost deal (0035/0036_keepalive; docs/pipeline.md#keeping-deals-alive).

-- Fires the 'reactivate' timers among p_ids: a deal lost for a reason that comes back
-- (config/keepalive.json reactivation.after) becomes a NEW opportunity after the delay:
-- a new lead in the lost deal's team pool (pool_reason 'reactivated') with
-- reactivated_from = the lost deal, the same customer and contact, channel
-- 'reactivation', the original source, and the loss story on its timeline. The lost
-- deal stays lost (its timeline says what became of it). Only while the deal is still
-- lost from the same loss (closed_at as when the timer was set): a deal reopened by
-- hand, won, or whose customer came back with a new inquiry is not offered again.
-- Returns how many opportunities were created.
CREATE OR REPLACE FUNCTION lf_keepalive_fire_reactivate(p_ids bigint[]) RETURNS integer
    LANGUAGE plpgsql AS $$
DECLARE
    n integer;
BEGIN
    WITH f AS (
        UPDATE timers SET state = 'fired', fired_at = clock_timestamp()
         WHERE id = ANY (p_ids) AND state = 'pending' AND kind = 'reactivate'
        RETURNING id, lead_id, data),
    j AS (
        SELECT f.id AS timer_id, l.*, gen_random_uuid() AS new_id,
               (SELECT r.manager FROM reps r WHERE r.id = l.owner) AS manager,
               (SELECT e.data ->> 'from' FROM lead_events e
                 WHERE e.lead_id = l.id AND e.type = 'stage_changed'
                   AND e.data ->> 'to' = l.stage ORDER BY e.id DESC LIMIT 1) AS lost_from,
               (SELECT coalesce(jsonb_agg(jsonb_build_object(
                           'at', lf_rfc3339(e.at), 'type', e.type, 'actor', e.actor,
                           'from', e.data -> 'from', 'to', e.data -> 'to',
                           'reason', e.data -> 'reason', 'activity', e.data -> 'activity',
                           'outcome', e.data -> 'outcome', 'note', e.data -> 'note',
                           'loss_reason', e.data -> 'loss_reason') ORDER BY e.id), '[]')
                  FROM lead_events e WHERE e.lead_id = l.id
                   AND e.type IN ('stage_changed', 'activity')) AS story
          FROM f JOIN leads l ON l.id = f.lead_id
         WHERE l.closed_at IS NOT NULL AND l.loss_reason IS NOT NULL
           AND l.closed_at = (f.data ->> 'closed_at')::timestamptz),
    nl AS (
        INSERT INTO leads (id, channel, source, name, company, email, phone, need,
                           budget_min, budget_max, currency, budget_raw, urgency,
                           decision_maker, region, industry, extra, grade, score,
                           score_breakdown, breakdown_dict, breakdown_codes,
                           graded_at, stage, customer_id, team,
                           region_raw, industry_raw, phone_type, phone_country, flags,
                           company_key, pool_reason, pool_since, reactivated_from,
                           assigned_at, assignment_reason)
        SELECT j.new_id, 'reactivation', j.source, j.name, j.company, j.email, j.phone,
               j.need, j.budget_min, j.budget_max, j.currency, j.budget_raw, j.urgency,
               j.decision_maker, j.region, j.industry, j.extra, j.grade, j.score,
               j.score_breakdown, j.breakdown_dict, j.breakdown_codes,
               j.graded_at, 'new', j.customer_id, j.team,
               j.region_raw, j.industry_raw, j.phone_type, j.phone_country, j.flags,
               j.company_key, 'reactivated', now(), j.id, now(),
               format('reactivated from lost deal %s (%s) into the team pool', j.id,
                      j.loss_reason)
          FROM j ORDER BY j.timer_id
        RETURNING id),
    nt AS (
        INSERT INTO notifications (timer_id, lead_id, rep_id, kind, message)
        SELECT j.timer_id, j.new_id, coalesce(j.manager, j.owner), 'reactivated',
               format('再激活 reactivated: the deal lost %s for %s (lead %s) is back as new '
                      'opportunity %s in the %s pool.',
                      to_char(j.closed_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD'),
                      j.loss_reason, j.id, j.new_id, coalesce(j.team, 'default'))
          FROM j ORDER BY j.timer_id  -- every row of j is a lead of nl (no conflict clause)
            ON CONFLICT (timer_id) WHERE timer_id IS NOT NULL DO NOTHING
        RETURNING id, lead_id),
    -- The notifications by new lead, as one jsonb object that ev reads by binary
    -- search: a subquery over nt per row of j read all of nt every time (each CTE is
    -- estimated at one row; 45_lf_timer_effects.sql).
    nti AS (
        SELECT jsonb_object_agg(nt.lead_id::text, nt.id) AS o FROM nt),
    ev AS (
        INSERT INTO lead_events (lead_id, type, actor, data)
        SELECT x.lead_id, 'reactivated', 'scheduler', x.data FROM (
            SELECT j.timer_id, 1 AS k, j.new_id AS lead_id,
                   jsonb_build_object('reactivated_from', j.id, 'loss_reason', j.loss_reason,
                                      'lost_at', lf_rfc3339(j.closed_at),
                                      'lost_in_stage', j.lost_from,
                                      'previous_owner', j.owner, 'amount', j.amount,
                                      'team', j.team, 'pool_reason', 'reactivated',
                                      'notification',
                                      (SELECT nti.o FROM nti) -> j.new_id::text,
                                      'story', j.story) AS data
              FROM j
            UNION ALL
            SELECT j.timer_id, 2, j.id,
                   jsonb_build_object('as', j.new_id, 'team', j.team)
              FROM j) x
         ORDER BY x.timer_id, x.k),
    ob AS (
        INSERT INTO outbox (event_id, type, lead_id, payload)
        SELECT gen_random_uuid(), 'deal.reactivated', j.new_id,
               jsonb_build_object('reactivated_from', j.id, 'loss_reason', j.loss_reason,
                                  'team', j.team, 'channel', 'reactivation',
                                  'source', j.source, 'grade', j.grade,
                                  'pool_reason', 'reactivated')
          FROM j ORDER BY j.timer_id)
    SELECT count(*)::integer INTO n FROM nl;
    RETURN n;
END $$;

-- A new lead (lead.created) whose customer had a deal lost: the lead is linked to the
-- last such deal (leads.lost_deal), both timelines say so, and the lost deal's pending
-- reactivation is cancelled: the customer came back by themselves. The same customer:
-- the same company key, else the same phone, else the same e-mail. Returns the lost
-- deal's id, or NULL.
-- p_lead was text until 0040_uuid_ids.sql.
DROP FUNCTION IF EXISTS lf_keepalive_link_lost(text);
CREATE OR REPLACE FUNCTION lf_keepalive_link_lost(p_lead uuid) RETURNS text
    LANGUAGE plpgsql AS $$
DECLARE
    lost uuid;
BEGIN
    -- Three indexed lookups (company key, phone, e-mail), the latest loss wins.
    SELECT x.id INTO lost FROM leads n CROSS JOIN LATERAL (
        (SELECT o.id, o.closed_at FROM leads o
          WHERE n.company_key IS NOT NULL AND o.company_key = n.company_key
            AND o.loss_reason IS NOT NULL AND o.closed_at IS NOT NULL AND o.id <> n.id
          ORDER BY o.closed_at DESC LIMIT 1)
        UNION ALL
        (SELECT o.id, o.closed_at FROM leads o
          WHERE n.phone IS NOT NULL AND o.phone = n.phone
            AND o.loss_reason IS NOT NULL AND o.closed_at IS NOT NULL AND o.id <> n.id
          ORDER BY o.closed_at DESC LIMIT 1)
        UNION ALL
        (SELECT o.id, o.closed_at FROM leads o
          WHERE n.email IS NOT NULL AND o.email = n.email
            AND o.loss_reason IS NOT NULL AND o.closed_at IS NOT NULL AND o.id <> n.id
          ORDER BY o.closed_at DESC LIMIT 1)) x
     WHERE n.id = p_lead AND n.lost_deal IS NULL AND n.channel <> 'reactivation'
     ORDER BY x.closed_at DESC LIMIT 1;
    IF lost IS NULL THEN
        RETURN NULL;
    END IF;
    UPDATE leads SET lost_deal = lost WHERE id = p_lead;
    UPDATE timers SET state = 'cancelled'
     WHERE lead_id = lost AND kind = 'reactivate' AND state = 'pending';
    INSERT INTO lead_events (lead_id, type, actor, data) VALUES
        (p_lead, 'linked_lost_deal', 'scheduler', jsonb_build_object('lost_deal', lost)),
        (lost, 'customer_returned', 'scheduler', jsonb_build_object('new_lead', p_lead));
    RETURN lost;
END $$;

-- The same for a batch of newly routed leads (the scheduler's lead.assigned events, in
-- event order): returns (lead, lost) for each lead that was linked. Most new leads have no
-- lost deal to match, so the batch first finds its candidates with one statement - a
-- lead with a lost deal of the same company key, phone or e-mail, each a probe of a
-- partial index of lost deals only (leads_lost_company, leads_lost_phone,
-- leads_lost_email: 0036, 0048), nearly empty - and calls lf_keepalive_link_lost()
-- only for those, one by one as before. With no lost deal at all it reads nothing else.
-- Before: lf_keepalive_link_lost() per lead, a PL/pgSQL call and three probes of the
-- full phone and e-mail indexes each (13.6-61 ms per batch of ~90 in a whole-stack
-- run, docs/benchmarks.md).
CREATE OR REPLACE FUNCTION lf_keepalive_link_lost_batch(p_leads uuid[])
    RETURNS TABLE (lead uuid, lost uuid) LANGUAGE plpgsql AS $$
DECLARE
    c record;
BEGIN
    -- Any lost deal at all: the first entry of leads_lost_company (ORDER BY its key,
    -- LIMIT 1), whatever the statistics say. As NOT EXISTS, the plan kept from the
    -- first calls on a small table without statistics scanned all of leads at every
    -- batch (5.5 s of a 10-second whole-stack run).
    PERFORM 1 FROM leads o WHERE o.loss_reason IS NOT NULL AND o.closed_at IS NOT NULL
      ORDER BY o.company_key, o.closed_at LIMIT 1;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    FOR c IN
        SELECT u.id FROM unnest(p_leads) WITH ORDINALITY u(id, n)
          JOIN leads n ON n.id = u.id
         WHERE n.lost_deal IS NULL AND n.channel <> 'reactivation'
           AND (EXISTS (SELECT 1 FROM leads o
                         WHERE o.company_key = n.company_key AND o.loss_reason IS NOT NULL
                           AND o.closed_at IS NOT NULL AND o.id <> n.id)
                OR EXISTS (SELECT 1 FROM leads o
                            WHERE o.phone = n.phone AND o.loss_reason IS NOT NULL
                              AND o.closed_at IS NOT NULL AND o.id <> n.id)
                OR EXISTS (SELECT 1 FROM leads o
                            WHERE o.email = n.email AND o.loss_reason IS NOT NULL
                              AND o.closed_at IS NOT NULL AND o.id <> n.id))
         ORDER BY u.n
    LOOP
        lead := c.id;
        lost := lf_keepalive_link_lost(c.id);
        IF lost IS NOT NULL THEN
            RETURN NEXT;
        END IF;
    END LOOP;
END $$;
