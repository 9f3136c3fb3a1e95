-- lf_timer_effects: repeatable. Edit here, not in a migration.
--
-- What a fired SLA or follow-up timer means, derived off the firing path: the
-- scheduler's "scheduler-effects" consumer (services/scheduler/effects.c) hands it a
-- batch of 'timer.fired' outbox events (their seqs), written by lf_fire_timers()
-- (41_lf_fire_timers.sql) in the transaction that flipped each timer. The consumer's
-- acks make it run once per event, so once per fired timer, whatever crashes and
-- however many schedulers run; notifications.timer_id stays unique besides.
--   * sla_first_contact, while the lead is still new, owned and not contacted and the
--     timer belongs to the current owner's round (step = round * 10 + phase, round =
--     number of reassignments): phase 0 reminds the owner, phase 2 asks the router to
--     reassign (outbox 'lead.reassign', previous owner excluded), any other phase
--     escalates to the owner's manager (the owner when there is none);
--   * follow_up: reminds the deal's current owner with what the activity said, while
--     the deal is open;
--   * each reminder/escalation is a notification (at most one per timer), a timeline
--     entry and an outbox event; a reminder creates the escalation timer, an
--     escalation the reassign timer when the grade has a reassign_after_seconds.
-- The lead is looked at when the effects run, a few milliseconds after the flip
-- (longer behind a backlog): a lead contacted in between is not reminded. It returns
-- the counts and the new timers as "due_ms id due_ms id ..." for the caller to index
-- in Redis once committed (one ZADD). sla is config/sla.json.
-- No sequential scans: PL/pgSQL keeps the statement's plan for the connection's life,
-- and a plan made on a generic estimate read the batch's events by scanning the whole
-- outbox (6 of 32 ms per batch of 500 with 20,000 events in the bench's outbox, and
-- growing with it) and joined reps by comparing every timer with every rep (8 ms);
-- now a bitmap index scan of the outbox (0.25 ms) and a primary-key probe of reps.
-- p_event_ids, when given, are ids for the events written (at most one per timer),
-- drawn by the caller as lf_fire_timers()'s are (41_lf_fire_timers.sql); an event
-- with no id there gets gen_random_uuid().
-- (Dropped first: CREATE OR REPLACE cannot add an argument.)
DROP FUNCTION IF EXISTS lf_timer_effects(bigint[], jsonb);
DROP FUNCTION IF EXISTS lf_timer_effects(bigint[], jsonb, uuid[]);
CREATE FUNCTION lf_timer_effects(p_seqs bigint[], p_sla jsonb,
                                 p_event_ids uuid[] DEFAULT NULL,
                                 OUT reminders integer, OUT escalations integer,
                                 OUT reassigns integer, OUT next_timers text)
    LANGUAGE plpgsql SET enable_seqscan = off AS $$
BEGIN
    WITH f AS (
        SELECT t.id, t.lead_id, t.kind, t.step, t.data, t.fired_at
          FROM outbox o JOIN timers t ON t.id = (o.payload ->> 'timer')::bigint
         WHERE o.id = ANY (p_seqs) AND o.type = 'timer.fired'),
    j AS (
        SELECT f.id, f.lead_id, f.step, f.step / 10 AS round, f.step % 10 AS phase, f.data,
               f.fired_at,
               l.owner, r.manager, coalesce(l.grade, '') AS grade,
               CASE
                 WHEN f.kind = 'follow_up' THEN
                   CASE WHEN l.owner IS NOT NULL AND l.closed_at IS NULL
                        THEN 'follow_up' END
                 WHEN f.kind <> 'sla_first_contact' THEN NULL
                 WHEN (l.first_contact_at IS NULL AND l.stage = 'new'
                       AND l.owner IS NOT NULL) IS NOT TRUE THEN NULL
                 WHEN f.step / 10 <> (SELECT count(*) FROM assignments a
                                       WHERE a.lead_id = l.id AND a.kind = 'reassign')
                   THEN NULL  -- a clock of a previous owner
                 WHEN f.step % 10 = 0 THEN 'reminder'
                 WHEN f.step % 10 = 2 THEN 'reassign'
                 ELSE 'escalation'
               END AS action
          -- LIMIT 1 keeps this a primary-key lookup per fired timer, never a scan
          -- and hash of the whole leads table. The managers come from one join with
          -- reps (a primary-key probe per timer, since seq scans are off), not a
          -- subquery per timer (which the planner made a scan of reps per timer: 30 ms
          -- of 120 per 2,000).
          FROM f CROSS JOIN LATERAL (
              SELECT l1.id, l1.owner, l1.grade, l1.stage, l1.first_contact_at, l1.closed_at
                FROM leads l1 WHERE l1.id = f.lead_id LIMIT 1) l
          LEFT JOIN reps r ON r.id = l.owner),
    m AS (
        SELECT j.*,
               CASE j.action WHEN 'escalation' THEN coalesce(j.manager, j.owner)
                             ELSE j.owner END AS rep_to,
               CASE j.action WHEN 'reminder' THEN 'sla_reminder'
                             WHEN 'escalation' THEN 'sla_escalation'
                             ELSE 'follow_up_reminder' END AS nkind,
               CASE j.action
                 WHEN 'reminder' THEN format(
                   '首次联系超时提醒: grade %s lead %s has not been contacted within its '
                   'first-contact SLA; please contact the customer now.', j.grade, j.lead_id)
                 WHEN 'escalation' THEN format(
                   '升级提醒: grade %s lead %s owned by %s is still not contacted after '
                   'the reminder.', j.grade, j.lead_id, j.owner)
                 ELSE (SELECT '跟进提醒 follow-up reminder: lead ' || j.lead_id
                              || ' is due for its next action'
                              || coalesce(' after the ' || (a.d ->> 'activity'), '')
                              || coalesce(' (' || (a.d ->> 'outcome') || ')', '')
                              || coalesce(': ' || (a.d ->> 'note'), '')
                         FROM (SELECT coalesce((SELECT e.data FROM lead_events e
                                                 WHERE e.lead_id = j.lead_id
                                                   AND e.type = 'activity'
                                                   AND e.data ->> 'seq' = j.step::text
                                                 ORDER BY e.id LIMIT 1), '{}') AS d) a)
               END AS message
          FROM j WHERE j.action IN ('reminder', 'escalation', 'follow_up')),
    n AS (
        INSERT INTO notifications (timer_id, lead_id, rep_id, kind, message)
        SELECT m.id, m.lead_id, m.rep_to, m.nkind, m.message FROM m ORDER BY m.id
            ON CONFLICT (timer_id) WHERE timer_id IS NOT NULL DO NOTHING
        RETURNING id AS nid, timer_id),
    -- The rows whose notification went in, with its id. Not a join of n with m: both
    -- are estimated at one row, so the planner makes it a nested loop that reads all
    -- of m for every row of n, and a burst's batch of 500 spent 80 ms of its 207 on
    -- 250,000 comparisons. The ids go into one jsonb object by timer id instead (an
    -- InitPlan, built once), and each row of m finds its own by binary search.
    ni AS (
        SELECT jsonb_object_agg(n.timer_id::text, n.nid) AS o FROM n),
    nm AS (
        SELECT m.*, ((SELECT ni.o FROM ni) ->> m.id::text)::bigint AS nid FROM m
         WHERE (SELECT ni.o FROM ni) ? m.id::text),
    ev AS (
        INSERT INTO lead_events (lead_id, type, actor, data)
        SELECT nm.lead_id, nm.nkind, 'scheduler',
               jsonb_build_object('to', nm.rep_to, 'message', nm.message,
                                  'notification', nm.nid)
               || CASE WHEN nm.action = 'follow_up'
                       THEN jsonb_build_object('activity_seq', nm.step)
                       ELSE '{}' END
          FROM nm ORDER BY nm.id),
    ob AS (
        INSERT INTO outbox (event_id, type, lead_id, payload)
        SELECT coalesce(p_event_ids[(row_number() OVER (ORDER BY o.id))::integer],
                        gen_random_uuid()),
               o.type, o.lead_id, o.payload FROM (
            SELECT nm.id,
                   CASE nm.action WHEN 'reminder' THEN 'sla.reminded'
                                  WHEN 'escalation' THEN 'sla.escalated'
                                  ELSE 'followup.reminded' END AS type,
                   nm.lead_id,
                   CASE WHEN nm.action = 'follow_up'
                        THEN jsonb_build_object('kind', nm.nkind, 'to', nm.rep_to,
                                                'activity_seq', nm.step)
                        ELSE jsonb_build_object('kind', nm.nkind, 'to', nm.rep_to,
                                                'step', nm.phase) END AS payload
              FROM nm
            UNION ALL
            SELECT j.id, 'lead.reassign', j.lead_id,
                   jsonb_build_object('reason', 'sla_missed',
                                      'exclude', jsonb_build_array(j.owner))
              FROM j WHERE j.action = 'reassign') o
         ORDER BY o.id),
    -- The next step's deadline was computed in the team's business time when the
    -- clock was set (data: escalate_at, reassign_at; clock.c); timers set without
    -- them count from the moment the timer fired (not from now: how long the effects
    -- waited behind the firing does not move the deadline).
    nt AS (
        INSERT INTO timers (lead_id, kind, step, due_at, data)
        SELECT x.lead_id, 'sla_first_contact', x.next_step,
               coalesce(x.due, x.fired_at + make_interval(secs => x.secs)), x.data
          FROM (SELECT nm.lead_id, nm.id, nm.data, nm.fired_at,
                       (nm.data ->> CASE nm.action WHEN 'reminder' THEN 'escalate_at'
                                                   ELSE 'reassign_at' END)::timestamptz
                         AS due,
                       nm.round * 10 + CASE nm.action WHEN 'reminder' THEN 1 ELSE 2 END
                         AS next_step,
                       CASE nm.action
                         WHEN 'reminder' THEN
                           lf_sla_seconds(p_sla, 'escalate_after_seconds', nm.grade, 3600)
                         ELSE lf_sla_seconds(p_sla, 'reassign_after_seconds', nm.grade, -1)
                       END AS secs
                  FROM nm WHERE nm.action IN ('reminder', 'escalation')) x
         WHERE x.secs >= 0
         ORDER BY x.id
            ON CONFLICT DO NOTHING
        RETURNING id, due_at)
    SELECT (SELECT count(*) FROM nm WHERE nm.action IN ('reminder', 'follow_up'))::integer,
           (SELECT count(*) FROM nm WHERE nm.action = 'escalation')::integer,
           (SELECT count(*) FROM j WHERE j.action = 'reassign')::integer,
           (SELECT coalesce(string_agg((extract(epoch FROM nt.due_at) * 1000)::bigint
                                       || ' ' || nt.id, ' '), '') FROM nt)
      INTO reminders, escalations, reassigns, next_timers;
END $$;
