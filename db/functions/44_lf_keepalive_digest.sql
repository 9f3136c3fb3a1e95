-- Team digests (漏跟进预警; 0035_keepalive; docs/pipeline.md#digests).

-- The figures of a team's digest for the period [p_from, p_to): per active rep of the
-- team (reps.team), in rep id order,
--   overdue_follow_ups  follow-up reminders sent to the rep in the period whose
--                       follow-up was still not done at p_to, by the escalation's rule
--                       (45_lf_keepalive_follow_up.sql): nothing on the deal's timeline
--                       after the activity that set it was an activity of a done_by
--                       type (a call, a visit...; a note does not count), an activity
--                       with a new next_action_at or a stage move. done_by is the list
--                       the follow-up's overdue timer remembers, else p_done_by (the
--                       scheduler's stale.restart_on, on the digest timer), else the
--                       default four; and the deal was still the rep's at p_to: the
--                       last change of owner on its timeline after the reminder and
--                       before p_to (assigned, queued, reassigned - a manager's move, a
--                       claim, a handover, a release to the pool - or recycled), if
--                       any, gave it back to that rep. A deal that went to someone else
--                       or to the pool is no longer this rep's follow-up to do;
--   missed_slas         first-contact reminders sent to the rep (the SLA ran out);
--   stale_warnings      stale-deal warnings to the rep as the owner;
--   (these two count what happened while the deal was the rep's - a reminder or a
--   warning goes only to the owner of the clock that ran out - so a later move does
--   not take them away;)
--   recycled            deals taken from the rep because they went stale;
--   reactivated         lost deals of the rep offered again as new opportunities;
-- and the team pool now: size, the oldest pool_since, its age in seconds, the count per
-- pool_reason. "leads" lists the deals behind the per-rep figures (for their timelines).
DROP FUNCTION IF EXISTS lf_digest_figures(text, timestamptz, timestamptz);
CREATE OR REPLACE FUNCTION lf_digest_figures(p_team text, p_from timestamptz,
                                             p_to timestamptz, p_done_by jsonb)
    RETURNS jsonb LANGUAGE sql STABLE AS $$
    WITH reps_t AS (
        SELECT r.id FROM reps r WHERE r.team = p_team AND r.active),
    fu AS (
        SELECT n.rep_id, n.lead_id FROM notifications n JOIN timers t ON t.id = n.timer_id
         CROSS JOIN LATERAL (
             SELECT coalesce(max(e.id), 0) AS id FROM lead_events e
              WHERE e.lead_id = n.lead_id AND e.type = 'activity'
                AND e.data ->> 'seq' = t.step::text) a
         CROSS JOIN LATERAL (
             SELECT coalesce((SELECT o.data -> 'done_by' FROM timers o
                               WHERE o.lead_id = t.lead_id AND o.kind = 'follow_up_overdue'
                                 AND o.step = t.step),
                             p_done_by, '["call", "visit", "email", "meeting"]') AS types) d
         WHERE n.kind = 'follow_up_reminder' AND n.created_at >= p_from
           AND n.created_at < p_to AND n.rep_id IN (SELECT id FROM reps_t)
           AND NOT EXISTS (
               SELECT 1 FROM lead_events e
                WHERE e.lead_id = n.lead_id AND e.id > a.id AND e.at < p_to
                  AND (e.type = 'stage_changed'
                       OR (e.type = 'activity'
                           AND (e.data ->> 'next_action_at' IS NOT NULL
                                OR e.data ->> 'activity' IN (
                                    SELECT jsonb_array_elements_text(d.types))))))
           AND NOT EXISTS (
               SELECT 1 FROM (
                   SELECT e.data ->> 'owner' AS owner FROM lead_events e
                    WHERE e.lead_id = n.lead_id
                      AND e.type IN ('assigned', 'queued', 'reassigned', 'recycled')
                      AND e.at >= n.created_at AND e.at < p_to
                    ORDER BY e.id DESC LIMIT 1) o
                WHERE o.owner IS DISTINCT FROM n.rep_id)),
    sla AS (
        SELECT n.rep_id, n.lead_id FROM notifications n
         WHERE n.kind = 'sla_reminder' AND n.created_at >= p_from AND n.created_at < p_to
           AND n.rep_id IN (SELECT id FROM reps_t)),
    st AS (
        SELECT n.rep_id, n.lead_id FROM notifications n JOIN timers t ON t.id = n.timer_id
         WHERE n.kind = 'stale_warning' AND t.kind = 'stale' AND t.step % 10 = 0
           AND n.created_at >= p_from AND n.created_at < p_to
           AND n.rep_id IN (SELECT id FROM reps_t)),
    rc AS (
        SELECT r.from_rep AS rep_id, r.lead_id FROM lead_recycles r
         WHERE r.at >= p_from AND r.at < p_to AND r.from_rep IN (SELECT id FROM reps_t)),
    ra AS (
        SELECT o.owner AS rep_id, n.id AS lead_id FROM leads n JOIN leads o
            ON o.id = n.reactivated_from
         WHERE n.reactivated_from IS NOT NULL AND n.created_at >= p_from
           AND n.created_at < p_to AND o.owner IN (SELECT id FROM reps_t)),
    per AS (
        SELECT r.id AS rep,
               (SELECT count(*) FROM fu WHERE fu.rep_id = r.id) AS overdue_follow_ups,
               (SELECT count(*) FROM sla WHERE sla.rep_id = r.id) AS missed_slas,
               (SELECT count(*) FROM st WHERE st.rep_id = r.id) AS stale_warnings,
               (SELECT count(*) FROM rc WHERE rc.rep_id = r.id) AS recycled,
               (SELECT count(*) FROM ra WHERE ra.rep_id = r.id) AS reactivated
          FROM reps_t r),
    pool AS (
        SELECT count(*) AS size, min(l.pool_since) AS oldest FROM leads l
         WHERE l.team = p_team AND l.pool_reason IS NOT NULL AND l.closed_at IS NULL)
    SELECT jsonb_build_object(
        'team', p_team, 'from', lf_rfc3339(p_from), 'to', lf_rfc3339(p_to),
        'reps', (SELECT coalesce(jsonb_agg(to_jsonb(per) ORDER BY per.rep), '[]') FROM per),
        'totals', (SELECT jsonb_build_object(
                       'overdue_follow_ups', coalesce(sum(overdue_follow_ups), 0),
                       'missed_slas', coalesce(sum(missed_slas), 0),
                       'stale_warnings', coalesce(sum(stale_warnings), 0),
                       'recycled', coalesce(sum(recycled), 0),
                       'reactivated', coalesce(sum(reactivated), 0)) FROM per),
        'pool', (SELECT jsonb_build_object(
                     'size', p.size, 'oldest_since', lf_rfc3339(p.oldest),
                     'oldest_age_seconds',
                     CASE WHEN p.oldest IS NULL THEN 0
                          ELSE floor(extract(epoch FROM p_to - p.oldest))::bigint END,
                     'by_reason', (SELECT coalesce(jsonb_object_agg(l2.pool_reason, l2.n), '{}')
                                     FROM (SELECT pool_reason, count(*) AS n FROM leads
                                            WHERE team = p_team AND pool_reason IS NOT NULL
                                              AND closed_at IS NULL GROUP BY 1) l2))
                   FROM pool p),
        'leads', (SELECT coalesce(jsonb_agg(DISTINCT x.lead_id), '[]') FROM (
                      SELECT lead_id FROM fu UNION SELECT lead_id FROM st
                      UNION SELECT lead_id FROM rc) x)) $$;

-- The digest as text, Chinese first, one line per rep.
CREATE OR REPLACE FUNCTION lf_digest_text(p_fig jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE AS $$
    SELECT format('漏跟进预警 follow-up digest, team %s, %s .. %s', p_fig ->> 'team',
                  p_fig ->> 'from', p_fig ->> 'to')
        || E'\n' || coalesce(string_agg(format(
               '%s: 逾期跟进 overdue follow-ups %s, 首次联系超时 missed SLAs %s, '
               '停滞预警 stale warnings %s, 回收 recycled %s, 再激活 reactivated %s',
               r ->> 'rep', r ->> 'overdue_follow_ups', r ->> 'missed_slas',
               r ->> 'stale_warnings', r ->> 'recycled', r ->> 'reactivated'), E'\n'
               ORDER BY r ->> 'rep'), '')
        || E'\n' || format('公海 pool: %s deals, oldest since %s',
                           p_fig -> 'pool' ->> 'size',
                           coalesce(p_fig -> 'pool' ->> 'oldest_since', '-'))
      FROM jsonb_array_elements(p_fig -> 'reps') r $$;

-- Fires the 'digest' timers among p_ids: one digest per team and due time (the period
-- runs from the team's previous digest, or seven days before; the timer's data carries
-- the recipient and the activity types that do a follow-up), a 'digest' notification
-- to the recipient the scheduler put on the timer (the team manager), a 'digest'
-- timeline entry on each deal behind the figures, and 'digest.sent'. Returns how many.
CREATE OR REPLACE FUNCTION lf_keepalive_fire_digest(p_ids bigint[]) RETURNS integer
    LANGUAGE plpgsql AS $$
DECLARE
    r record;
    n integer := 0;
    fig jsonb;
    pfrom timestamptz;
    did bigint;
    nid bigint;
    rcpt text;
BEGIN
    FOR r IN
        UPDATE timers SET state = 'fired', fired_at = clock_timestamp()
         WHERE id = ANY (p_ids) AND state = 'pending' AND kind = 'digest'
        RETURNING id, team, due_at, data
    LOOP
        SELECT coalesce(max(d.period_end), r.due_at - interval '7 days') INTO pfrom
          FROM digests d WHERE d.team = r.team AND d.period_end < r.due_at;
        fig := lf_digest_figures(r.team, pfrom, r.due_at, r.data -> 'done_by');
        rcpt := r.data ->> 'to';
        INSERT INTO digests (timer_id, team, to_rep, period_start, period_end, figures)
        VALUES (r.id, r.team, rcpt, pfrom, r.due_at, fig)
            ON CONFLICT (timer_id) WHERE timer_id IS NOT NULL DO NOTHING
        RETURNING id INTO did;
        CONTINUE WHEN did IS NULL;
        INSERT INTO notifications (timer_id, lead_id, rep_id, kind, message)
        VALUES (r.id, NULL, rcpt, 'digest', lf_digest_text(fig))
        RETURNING id INTO nid;
        INSERT INTO lead_events (lead_id, type, actor, data)
        SELECT x.id::uuid, 'digest', 'scheduler',
               jsonb_build_object('digest', did, 'to', rcpt, 'team', r.team,
                                  'notification', nid)
          FROM jsonb_array_elements_text(fig -> 'leads') x (id)
         WHERE EXISTS (SELECT 1 FROM leads l WHERE l.id = x.id::uuid) ORDER BY x.id;
        INSERT INTO outbox (event_id, type, lead_id, payload)
        VALUES (gen_random_uuid(), 'digest.sent', NULL,
                jsonb_build_object('digest', did, 'team', r.team, 'to', rcpt,
                                   'from', fig -> 'from', 'until', fig -> 'to',
                                   'totals', fig -> 'totals', 'pool', fig -> 'pool'));
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;
