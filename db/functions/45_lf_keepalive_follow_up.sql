-- Follow-ups that stay overdue (docs/pipeline.md#keeping-deals-alive): the second step
-- of the follow-up clock. The first, the reminder to the owner at the activity's
-- next_action_at, fires in lf_fire_timers() (41). The scheduler set both timers when the
-- activity was logged (services/scheduler/follow_up.c): 'follow_up_overdue' is due
-- follow_up.escalate_after after next_action_at, in the lead's team business calendar,
-- step = the activity's seq, rep_id = the owner then, data = {done_by: the activity
-- types that count as doing the follow-up, team_manager}.
--
-- Fires the 'follow_up_overdue' timers among p_ids (only those still pending: a timer
-- claimed twice fires once) while the deal is open, still owned by the rep whose
-- follow-up it was, and the follow-up was not done: nothing on the deal's timeline after
-- the activity that set it was an activity of a done_by type (a call, a visit...; a
-- note does not count), an activity that set a new next_action_at (rescheduled: that
-- one has its own clock) or a stage move. Each escalation is a 'follow_up_overdue'
-- notification to the owner's manager (else the team's manager, else the owner;
-- notifications.timer_id is unique), a 'follow_up_overdue' timeline entry and a
-- 'followup.escalated' event. Returns how many were escalated.
CREATE OR REPLACE FUNCTION lf_keepalive_fire_follow_up(p_ids bigint[]) RETURNS integer
    LANGUAGE sql AS $$
    WITH f AS (
        UPDATE timers SET state = 'fired', fired_at = clock_timestamp()
         WHERE id = ANY (p_ids) AND state = 'pending' AND kind = 'follow_up_overdue'
        RETURNING id, lead_id, step, rep_id, due_at, data),
    j AS (
        SELECT f.id, f.lead_id, f.step, f.rep_id, f.due_at, l.stage, l.team,
               coalesce(l.grade::text, '') AS grade, a.id AS act_id, a.data AS act,
               coalesce((SELECT r.manager FROM reps r WHERE r.id = f.rep_id),
                        f.data ->> 'team_manager', f.rep_id) AS rep_to
          FROM f
          CROSS JOIN LATERAL (
              SELECT l1.owner, l1.grade, l1.stage, l1.team, l1.closed_at
                FROM leads l1 WHERE l1.id = f.lead_id LIMIT 1) l
          CROSS JOIN LATERAL (
              SELECT coalesce(max(e.id), 0) AS id,
                     coalesce((array_agg(e.data ORDER BY e.id))[1], '{}') AS data
                FROM lead_events e
               WHERE e.lead_id = f.lead_id AND e.type = 'activity'
                 AND e.data ->> 'seq' = f.step::text) a
         WHERE l.closed_at IS NULL AND l.owner = f.rep_id
           AND NOT EXISTS (
               SELECT 1 FROM lead_events e
                WHERE e.lead_id = f.lead_id AND e.id > a.id
                  AND (e.type = 'stage_changed'
                       OR (e.type = 'activity'
                           AND (e.data ->> 'next_action_at' IS NOT NULL
                                OR e.data ->> 'activity' IN (
                                    SELECT jsonb_array_elements_text(
                                        coalesce(f.data -> 'done_by', '[]')))))))),
    m AS (
        SELECT j.*,
               format('跟进逾期 overdue follow-up: lead %s (grade %s, stage %s) owned by %s '
                      'was due for its next action at %s%s%s; nothing was done since.',
                      j.lead_id, j.grade, j.stage, j.rep_id,
                      coalesce(j.act ->> 'next_action_at', '?'),
                      coalesce(' after the ' || (j.act ->> 'activity'), ''),
                      coalesce(' (' || (j.act ->> 'note') || ')', '')) AS message
          FROM j),
    n AS (
        INSERT INTO notifications (timer_id, lead_id, rep_id, kind, message)
        SELECT m.id, m.lead_id, m.rep_to, 'follow_up_overdue', m.message FROM m
         ORDER BY m.id
            ON CONFLICT (timer_id) WHERE timer_id IS NOT NULL DO NOTHING
        RETURNING id AS nid, timer_id),
    -- The rows whose notification went in, with its id: looked up in one jsonb object
    -- by timer id, not joined (a join of two CTEs, each estimated at one row, is a
    -- nested loop reading all of m for every row of n; 45_lf_timer_effects.sql).
    ni AS (
        SELECT jsonb_object_agg(n.timer_id::text, n.nid) AS o FROM n),
    nm AS (
        SELECT m.*, ((SELECT ni.o FROM ni) ->> m.id::text)::bigint AS nid FROM m
         WHERE (SELECT ni.o FROM ni) ? m.id::text),
    ev AS (
        INSERT INTO lead_events (lead_id, type, actor, data)
        SELECT nm.lead_id, 'follow_up_overdue', 'scheduler',
               jsonb_build_object('to', nm.rep_to, 'owner', nm.rep_id,
                                  'activity_seq', nm.step,
                                  'next_action_at', nm.act ->> 'next_action_at',
                                  'due', lf_rfc3339(nm.due_at), 'message', nm.message,
                                  'notification', nm.nid)
          FROM nm ORDER BY nm.id),
    ob AS (
        INSERT INTO outbox (event_id, type, lead_id, payload)
        SELECT gen_random_uuid(), 'followup.escalated', nm.lead_id,
               jsonb_build_object('kind', 'follow_up_overdue', 'to', nm.rep_to,
                                  'owner', nm.rep_id, 'activity_seq', nm.step,
                                  'team', nm.team, 'grade', nm.grade,
                                  'due', lf_rfc3339(nm.due_at))
          FROM nm ORDER BY nm.id)
    SELECT count(*)::integer FROM nm $$;
