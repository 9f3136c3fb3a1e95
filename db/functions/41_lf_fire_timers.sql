-- lf_fire_timers: repeatable; first created by 0006_scheduler.sql. Edit here, not in a migration.
--
-- lf_fire_timers(ids, sla) fires a claimed batch (a few thousand timer ids) and
-- does as little as that takes, so that timers fire on time however many are due:
--   * only timers still pending fire (state guard: a timer claimed twice, from Redis
--     and from the PostgreSQL sweep, or by two schedulers, fires once); fired_at is
--     the clock time of the flip, not the transaction start;
--   * each SLA (sla_first_contact) and follow-up timer that fired gets one outbox
--     event 'timer.fired' ({"timer": id}) in the same transaction. What firing means
--     - the reminder, escalation or reassign request, its notification, timeline
--     entry and outbox event, the next step's timer - is derived from that event off
--     the firing path, by the scheduler's effects consumer (lf_timer_effects(),
--     45_lf_timer_effects.sql), exactly once like every consumer's work;
--   * the keep-alive kinds (stale, reactivate, digest: rare, a few per deal and
--     week) fire with their effects here, in lf_keepalive_fire()
--     (42_lf_keepalive.sql), only when the batch holds ids that were not SLA or
--     follow-up timers.
-- It returns the counts (reminders, escalations, reassigns: the keep-alive warnings
-- only; the effects consumer counts the rest), the keep-alive kinds' new timers as
-- "due_ms id due_ms id ..." for the caller to index in Redis, and the seqs of the
-- 'timer.fired' events (events) for the caller to hand to the effects consumer once
-- committed (what it never gets, the consumer's outbox sweep finds). p_sla is unused
-- since the effects moved out; the argument stays for the callers.
-- p_event_ids, when given, are the ids of the 'timer.fired' events, drawn by the
-- caller (the scheduler: lf_uuid4, random version-4 ids as gen_random_uuid() makes
-- them), one per id of p_ids, used in the order of the fired timers' ids; an event
-- with no id there gets gen_random_uuid(), which costs this backend several
-- microseconds a call through OpenSSL 3's generator (docs/benchmarks.md): more than
-- the rest of a timer's firing.
-- (Dropped first: CREATE OR REPLACE cannot add the OUT column events, nor an argument.)
DROP FUNCTION IF EXISTS lf_fire_timers(bigint[], jsonb);
DROP FUNCTION IF EXISTS lf_fire_timers(bigint[], jsonb, uuid[]);
CREATE FUNCTION lf_fire_timers(p_ids bigint[], p_sla jsonb,
                               p_event_ids uuid[] DEFAULT NULL,
                               OUT fired integer, OUT reminders integer,
                               OUT escalations integer, OUT reassigns integer,
                               OUT next_timers text, OUT events bigint[])
    LANGUAGE plpgsql AS $$
DECLARE
    k record;
BEGIN
    WITH f AS (
        UPDATE timers SET state = 'fired', fired_at = clock_timestamp()
         WHERE id = ANY (p_ids) AND state = 'pending'
           AND kind IN ('sla_first_contact', 'follow_up')
        RETURNING id),
    ob AS (
        INSERT INTO outbox (event_id, type, payload)
        SELECT coalesce(p_event_ids[x.k], gen_random_uuid()), 'timer.fired',
               jsonb_build_object('timer', x.id)
          FROM (SELECT f.id, (row_number() OVER (ORDER BY f.id))::integer AS k
                  FROM f) x
         ORDER BY x.id
        RETURNING id)
    SELECT count(*)::integer, coalesce(array_agg(ob.id), '{}') INTO fired, events FROM ob;
    reminders := 0;
    escalations := 0;
    reassigns := 0;
    next_timers := '';
    IF fired >= coalesce(array_length(p_ids, 1), 0) THEN
        RETURN;  -- all SLA or follow-up timers: nothing for the keep-alive kinds
    END IF;
    -- The keep-alive kinds (stale, reactivate, digest) of the same batch:
    -- 42_lf_keepalive.sql. Ids that just fired, were not pending or are of no
    -- keep-alive kind are ignored there.
    SELECT * INTO k FROM lf_keepalive_fire(p_ids);
    fired := fired + k.fired;
    reminders := k.warnings;
    next_timers := k.next_timers;
END $$;
