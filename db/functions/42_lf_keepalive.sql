-- Keep-alive clocks (0035_keepalive.sql; docs/pipeline.md#keeping-deals-alive):
-- arming and stopping the stale clock, and firing the stale, reactivate and digest
-- timers of a claimed batch. lf_fire_timers() (41) hands every batch here too, so a
-- batch is still one statement and one transaction whatever its kinds.

-- A deal closed (p_now_open false) stops the clocks that no longer apply: its
-- first-contact SLA, its follow-ups (reminders and escalations) and its stale clock. A deal reopened stops its
-- reactivation. Called in the transaction of the stage move. Returns how many timers
-- were cancelled (their Redis entries find no pending row and are ignored).
-- p_lead was text until 0040_uuid_ids.sql (here and in lf_keepalive_arm).
DROP FUNCTION IF EXISTS lf_keepalive_on_move(text, boolean);
DROP FUNCTION IF EXISTS lf_keepalive_arm(text, timestamptz, text, timestamptz, timestamptz,
                                         timestamptz, jsonb);
CREATE OR REPLACE FUNCTION lf_keepalive_on_move(p_lead uuid, p_now_open boolean)
    RETURNS integer LANGUAGE sql AS $$
    WITH s AS (
        UPDATE leads SET stale_gen = stale_gen + 1, stale_since = NULL
         WHERE id = p_lead AND NOT p_now_open RETURNING id),
    c AS (
        UPDATE timers SET state = 'cancelled'
         WHERE lead_id = p_lead AND state = 'pending'
           AND CASE WHEN p_now_open THEN kind = 'reactivate'
                    ELSE kind IN ('sla_first_contact', 'follow_up', 'follow_up_overdue',
                                  'stale') END
        RETURNING id)
    SELECT (SELECT count(*) FROM c)::integer + 0 * (SELECT count(*) FROM s)::integer $$;

-- (Re)starts the stale clock of a lead at p_since for the owner p_owner: a new
-- generation, the pending stale timers of older ones cancelled, and the ladder's three
-- timers (warn the owner at p_due0, the manager at p_due1, recycle at p_due2; the
-- scheduler computed them in the team's business calendar). With p_due0 NULL the
-- clock only stops (a stage that is not watched, no owner). An event older than the
-- running clock (p_since before stale_since) changes nothing, and so does arming a
-- deal that is closed or owned by someone else by now. Returns the new timers as
-- "due_ms id ..." for the caller to index in Redis once committed.
CREATE OR REPLACE FUNCTION lf_keepalive_arm(p_lead uuid, p_since timestamptz,
                                            p_owner text, p_due0 timestamptz,
                                            p_due1 timestamptz, p_due2 timestamptz,
                                            p_data jsonb)
    RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    g integer;
    r text;
BEGIN
    UPDATE leads SET stale_gen = stale_gen + 1,
                     stale_since = CASE WHEN p_due0 IS NULL THEN NULL ELSE p_since END,
                     stale_due_at = coalesce(p_due0, stale_due_at)
     WHERE id = p_lead AND (stale_since IS NULL OR stale_since <= p_since)
       AND (p_due0 IS NULL OR (closed_at IS NULL AND owner = p_owner))
       -- Stopping a clock that does not run changes nothing: every lead's first
       -- assignment (stage new, not watched) would otherwise write the wide leads row
       -- again for a new generation nobody needs (what set stale_since NULL already
       -- moved the generation past every stale timer of the lead).
       AND (p_due0 IS NOT NULL OR stale_since IS NOT NULL)
    RETURNING stale_gen INTO g;
    IF g IS NULL THEN
        RETURN '';
    END IF;
    UPDATE timers SET state = 'cancelled'
     WHERE lead_id = p_lead AND kind = 'stale' AND state = 'pending';
    IF p_due0 IS NULL THEN
        RETURN '';
    END IF;
    WITH t AS (
        INSERT INTO timers (lead_id, kind, step, due_at, rep_id, data)
        VALUES (p_lead, 'stale', g * 10, p_due0, p_owner, p_data),
               (p_lead, 'stale', g * 10 + 1, p_due1, p_owner, p_data),
               (p_lead, 'stale', g * 10 + 2, p_due2, p_owner, p_data)
            ON CONFLICT DO NOTHING
        RETURNING id, due_at)
    SELECT coalesce(string_agg((extract(epoch FROM t.due_at) * 1000)::bigint || ' ' || t.id,
                               ' '), '')
      INTO r FROM t;
    RETURN r;
END $$;

-- Fires the stale timers among p_ids (lf_fire_timers fires the SLA and follow-up
-- ones). Only timers still pending fire (a timer claimed twice fires once).
--   stale: only the lead's current generation, while the deal is open and still owned
--   by the rep whose clock it is, and nothing on its timeline since the clock started
--   restarts it (an event not consumed yet: below). Phase 0 warns the owner, phase 1 the owner's manager
--   (else the team's manager the scheduler put in data, else the owner), phase 2
--   recycles (and cancels the owner's pending SLA and follow-up timers): the deal leaves its owner for its
--   team pool (pool_reason 'recycled'; the router routes it again by itself when the
--   team's pool.auto_route.recycled says so, never to a previous owner), with a
--   lead_recycles row holding the cool-down during which that owner may not get it
--   back, a 'recycled' timeline entry and 'lead.recycled'; the stage does not change.
-- Each warning or recycle is one notification (notifications.timer_id is unique), one
-- timeline entry and one outbox event.
CREATE OR REPLACE FUNCTION lf_keepalive_fire_stale(p_ids bigint[],
                                                   OUT fired integer, OUT warnings integer,
                                                   OUT recycles integer)
    LANGUAGE plpgsql AS $$
BEGIN
    WITH f AS (
        UPDATE timers SET state = 'fired', fired_at = clock_timestamp()
         WHERE id = ANY (p_ids) AND state = 'pending' AND kind IN ('stale')
        RETURNING id, lead_id, kind, step, rep_id, data),
    -- The timers of the running clock, each with the newest restart on its deal's
    -- timeline that the clock has not seen (restart_at; NULL: none). A restart the
    -- scheduler has not armed from (a backlog, a scheduler that was down while the
    -- deadline passed, an event it parked): since the clock started, the deal's
    -- timeline has a stage move, an assignment or an activity of a type that restarts
    -- the clock (data.restart_on, written by the scheduler when it armed the clock;
    -- none in timers armed before it was). (The entry that started the clock is within
    -- the millisecond of stale_since, which events carry.)
    j0 AS (
        SELECT f.id, f.lead_id, f.step % 10 AS phase, f.rep_id, f.data, l.owner, l.stage,
               coalesce(l.grade::text, '') AS grade, l.stale_since, l.stale_due_at,
               (SELECT r.manager FROM reps r WHERE r.id = l.owner) AS manager,
               l.team,  -- the lead's team (its pool), not the owner's
               (SELECT max(e.at) FROM lead_events e
                 WHERE e.lead_id = f.lead_id
                   AND e.at >= l.stale_since + interval '1 millisecond'
                   AND (e.type IN ('stage_changed', 'assigned', 'reassigned')
                        OR (e.type = 'activity'
                            AND e.data ->> 'activity' IN (
                                SELECT jsonb_array_elements_text(
                                    coalesce(f.data -> 'restart_on', '[]'))))))
                   AS restart_at
          FROM f CROSS JOIN LATERAL (
              SELECT l1.owner, l1.stage, l1.grade, l1.stale_since, l1.stale_due_at,
                     l1.stale_gen, l1.closed_at, l1.team
                FROM leads l1 WHERE l1.id = f.lead_id LIMIT 1) l
         WHERE f.kind = 'stale' AND l.closed_at IS NULL AND l.owner = f.rep_id
           AND l.stale_gen = f.step / 10),
    -- Such a timer does nothing: the owner did follow up. The event of that follow-up
    -- arms the next clock when the scheduler consumes it; in case it never does (an
    -- event parked for good would leave the deal without a clock until its next
    -- event), the timer also writes 'stale.restarted' (one per deal), from which the
    -- scheduler arms the clock at restart_at, as that event would have (arming from
    -- the same instant twice gives the same clock).
    j AS (
        SELECT * FROM j0 WHERE j0.restart_at IS NULL),
    rs AS (
        INSERT INTO outbox (event_id, type, lead_id, payload)
        SELECT gen_random_uuid(), 'stale.restarted', x.lead_id,
               jsonb_build_object('since', lf_rfc3339(x.restart_at), 'timer', x.id,
                                  'clock_since', lf_rfc3339(x.stale_since))
          FROM (SELECT DISTINCT ON (j0.lead_id) j0.* FROM j0
                 WHERE j0.restart_at IS NOT NULL ORDER BY j0.lead_id, j0.id) x
         ORDER BY x.id
        RETURNING 1),
    -- The recycle itself, under the row lock: only if the owner is still the one whose
    -- clock ran out (a claim or reassignment that got there first wins).
    rl AS (
        UPDATE leads l SET owner = NULL, pool_reason = 'recycled', pool_since = now(),
                           stale_gen = l.stale_gen + 1, stale_since = NULL,
                           updated_at = now()
          FROM j WHERE j.phase = 2 AND l.id = j.lead_id AND l.owner = j.owner
        RETURNING j.id AS timer_id, j.owner, l.id AS lead_id),
    -- The recycled timers as one jsonb object, for m to test by binary search: an IN
    -- over rl under the OR below was a subplan scanning rl for every row of j.
    rli AS (
        SELECT jsonb_object_agg(rl.timer_id::text, true) AS o FROM rl),
    -- The clocks that were the owner's stop with the recycle, in the same statement:
    -- its first-contact SLA and its follow-ups (reminders and escalations). Whoever
    -- takes the deal next sets their own.
    rcx AS (
        UPDATE timers t SET state = 'cancelled'
          FROM rl WHERE t.lead_id = rl.lead_id AND t.state = 'pending'
           AND t.kind IN ('sla_first_contact', 'follow_up', 'follow_up_overdue')
        RETURNING t.id),
    dec AS (
        UPDATE reps SET open_count = greatest(open_count - x.n, 0), updated_at = now()
          FROM (SELECT rl.owner, count(*) AS n FROM rl GROUP BY rl.owner) x
         WHERE reps.id = x.owner RETURNING reps.id),
    m AS (
        SELECT j.*,
               CASE j.phase WHEN 1 THEN coalesce(j.manager, j.data ->> 'team_manager',
                                                 j.owner)
                            ELSE j.owner END AS rep_to,
               CASE j.phase WHEN 2 THEN 'recycled' ELSE 'stale_warning' END AS nkind,
               CASE j.phase WHEN 0 THEN 'owner' WHEN 1 THEN 'manager' ELSE 'recycle' END
                   AS level,
               now() + make_interval(secs => coalesce((j.data ->> 'cooldown_s')::bigint,
                                                      2592000)) AS cooldown_until,
               CASE j.phase
                 WHEN 0 THEN format(
                   '停滞预警 stale deal: lead %s (grade %s) has had no follow-up in stage '
                   '%s since %s; please follow up now.', j.lead_id, j.grade, j.stage,
                   lf_rfc3339(j.stale_since))
                 WHEN 1 THEN format(
                   '停滞升级 stale deal: lead %s (grade %s) owned by %s has had no '
                   'follow-up in stage %s since %s, after a warning.', j.lead_id, j.grade,
                   j.owner, j.stage, lf_rfc3339(j.stale_since))
                 ELSE format(
                   '商机回收 recycled: lead %s (stage %s) had no follow-up since %s and '
                   'went back to the team pool.', j.lead_id, j.stage,
                   lf_rfc3339(j.stale_since))
               END AS message
          FROM j
         WHERE j.phase < 2 OR (SELECT rli.o FROM rli) ? j.id::text),
    n AS (
        INSERT INTO notifications (timer_id, lead_id, rep_id, kind, message)
        SELECT m.id, m.lead_id, m.rep_to, m.nkind, m.message FROM m ORDER BY m.id
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
    rc AS (
        INSERT INTO lead_recycles (lead_id, timer_id, from_rep, team, stage, cooldown_until)
        SELECT nm.lead_id, nm.id, nm.owner, nm.team, nm.stage, nm.cooldown_until
          FROM nm WHERE nm.phase = 2 ORDER BY nm.id
        RETURNING lead_id),
    ev AS (
        INSERT INTO lead_events (lead_id, type, actor, data)
        SELECT nm.lead_id, nm.nkind, 'scheduler',
               jsonb_build_object('to', nm.rep_to, 'level', nm.level, 'stage', nm.stage,
                                  'since', lf_rfc3339(nm.stale_since),
                                  'due', lf_rfc3339(nm.stale_due_at),
                                  'message', nm.message, 'notification', nm.nid)
               || CASE WHEN nm.phase = 2
                       THEN jsonb_build_object('from', nm.owner, 'team', nm.team,
                                               'pool_reason', 'recycled',
                                               'cooldown_until',
                                               lf_rfc3339(nm.cooldown_until))
                       ELSE '{}' END
          FROM nm ORDER BY nm.id),
    ob AS (
        INSERT INTO outbox (event_id, type, lead_id, payload)
        SELECT gen_random_uuid(),
               CASE nm.phase WHEN 2 THEN 'lead.recycled' ELSE 'stale.warned' END,
               nm.lead_id,
               jsonb_build_object('to', nm.rep_to, 'level', nm.level, 'stage', nm.stage,
                                  'grade', nm.grade, 'team', nm.team,
                                  'since', lf_rfc3339(nm.stale_since))
               || CASE WHEN nm.phase = 2
                       THEN jsonb_build_object('from', nm.owner, 'pool_reason', 'recycled',
                                               'cooldown_until',
                                               lf_rfc3339(nm.cooldown_until))
                       ELSE '{}' END
          FROM nm ORDER BY nm.id)
    SELECT (SELECT count(*) FROM f)::integer,
           (SELECT count(*) FROM nm WHERE nm.phase < 2)::integer,
           (SELECT count(*) FROM rc)::integer + 0 * (SELECT count(*) FROM rs)::integer
      INTO fired, warnings, recycles;
END $$;

-- The keep-alive kinds of a claimed batch: stale (above), reactivate
-- (43_lf_keepalive_reactivate.sql), digest (44_lf_keepalive_digest.sql) and
-- follow_up_overdue (45_lf_keepalive_follow_up.sql). The
-- timers those create later are set by the scheduler, so next_timers stays empty.
CREATE OR REPLACE FUNCTION lf_keepalive_fire(p_ids bigint[],
                                             OUT fired integer, OUT warnings integer,
                                             OUT recycles integer, OUT next_timers text)
    LANGUAGE plpgsql AS $$
DECLARE
    s record;
    nr integer;
    nd integer;
    nf integer;
BEGIN
    SELECT * INTO s FROM lf_keepalive_fire_stale(p_ids);
    nr := lf_keepalive_fire_reactivate(p_ids);
    nd := lf_keepalive_fire_digest(p_ids);
    nf := lf_keepalive_fire_follow_up(p_ids);  -- 45_lf_keepalive_follow_up.sql
    fired := s.fired + nr + nd + nf;  -- for the scheduler's counters
    warnings := s.warnings + nr + nd + nf;
    recycles := s.recycles;
    next_timers := '';
END $$;
