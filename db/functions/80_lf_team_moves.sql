-- Moves of a lead by people (issue "The sales team's day"): claims from the pool,
-- assignment by a manager, handover of a rep's open leads, and the bump of
-- leads.updated_at by the timeline entries that record a change. Repeatable: edit
-- here, not in a migration.

-- A timeline entry that records something a person did or that changed the lead
-- (activities, stage moves, claims, assignments and reassignments, merged inquiries, a
-- customer coming back...) moves the lead's updated_at, so a CRM syncing with
-- GET /v1/leads?order=updated sees the lead again. Entries the system writes on its own
-- to tell people something - the scheduler's SLA reminders and escalations, follow-up
-- reminders and overdue notices, stale-deal warnings and team digests - do not: they
-- record no action on the lead, and moving updated_at rewrote the whole lead row with
-- every index entry for each reminder (a non-HOT update, most of what a burst of
-- reminders cost). A recycle moves the lead to the pool and sets updated_at in its own
-- update. Leads written in the same transaction already carry now() and are skipped,
-- so a new lead and its first entries cost no second write; a 'created' entry is only
-- ever written with its new lead (intake's batch), and the router's 'graded', 'assigned'
-- and 'queued' entries only by the statement that sets the lead's updated_at to now()
-- itself (services/router/batch.c and route.c), so those are not even looked up (for the
-- router's batch of 128 leads, 128 primary-key probes that found nothing to do: 1.9 ms a
-- batch in bench/router_drain.sh at load 9). The ids go in as an array:
-- joined to the transition table (which has no statistics) the planner hashed it
-- against a sequential scan of leads, 26 ms per router batch of 128 leads and growing
-- with the table; = ANY is one primary-key probe per lead. PL/pgSQL keeps the plan for
-- the connection's life, so it must not depend on the statistics of the moment (a plan
-- made while leads was small scanned it, or every row of leads_updated_id, at every
-- timeline insert: 24 ms per intake batch at 3,400 leads): no sequential scan, and the
-- age test written so that no index serves it (IS TRUE).
CREATE OR REPLACE FUNCTION lf_lead_events_touch() RETURNS trigger
    LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    ids uuid[];
BEGIN
    ids := ARRAY(SELECT DISTINCT lead_id FROM new_events
                  WHERE type NOT IN ('created', 'graded', 'assigned', 'queued',
                                     'sla_reminder', 'sla_escalation',
                                     'follow_up_reminder',
                                     'follow_up_overdue', 'stale_warning', 'digest'));
    IF cardinality(ids) > 0 THEN
        UPDATE leads l SET updated_at = now()
         WHERE l.id = ANY (ids) AND (l.updated_at < now()) IS TRUE;
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS lead_events_touch ON lead_events;
CREATE TRIGGER lead_events_touch AFTER INSERT ON lead_events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION lf_lead_events_touch();

-- Moves open lead p_lead to rep p_to, or to its team's pool (p_to NULL, with
-- p_pool_reason), for p_by (a rep id, 'admin' or 'router') because of p_cause (claim,
-- assign, handover, owner_left, ...), p_reason saying why in words.
--   p_from: only if this is the current owner (handover), NULL: any;
--   p_from_pool: only if the lead waits in the pool (claim);
--   p_check_capacity: the new owner must be below capacity (claim).
-- Under the router's routing lock, so counts and the fairness ledger never race a
-- routing decision. What it writes, in the caller's transaction: the owner, pool
-- columns and counts; an assignments row (kind 'reassign', so the scheduler's
-- first-contact rounds count it); the ledger's assigned_total for the new owner, with
-- a writer token that makes routers reload it; a 'reassigned' timeline entry with who
-- and why; lead_assigned / lead_reassigned notifications; a lead.reassigned event
-- (the new owner's first-contact clock), returned as its envelope.
-- status: moved | not_found | closed | not_in_pool | not_owner | same_owner |
-- no_rep | inactive | at_capacity.
-- p_lead was text until 0040_uuid_ids.sql (here and in lf_claim_lead).
DROP FUNCTION IF EXISTS lf_move_lead(text, text, text, text, text, text, text, boolean, boolean);
DROP FUNCTION IF EXISTS lf_claim_lead(text, text, timestamptz, integer, bigint);
CREATE OR REPLACE FUNCTION lf_move_lead(p_lead uuid, p_to text, p_by text, p_cause text,
                                        p_reason text, p_pool_reason text,
                                        p_from text, p_from_pool boolean,
                                        p_check_capacity boolean,
                                        OUT status text, OUT envelope text)
    LANGUAGE plpgsql AS $$
DECLARE
    l leads%ROWTYPE;
    r reps%ROWTYPE;
    why text;
    v_payload jsonb;
BEGIN
    PERFORM pg_advisory_xact_lock(727002);
    -- Lock order: the routing lock, the lead, then reps rows (docs/reliability.md).
    SELECT * INTO l FROM leads WHERE id = p_lead FOR NO KEY UPDATE;
    IF NOT FOUND THEN status := 'not_found'; RETURN; END IF;
    IF l.stage IN ('won', 'lost') THEN status := 'closed'; RETURN; END IF;
    IF p_from_pool AND (l.owner IS NOT NULL OR l.pool_reason IS NULL) THEN
        status := 'not_in_pool'; RETURN;
    END IF;
    IF p_from IS NOT NULL AND l.owner IS DISTINCT FROM p_from THEN
        status := 'not_owner'; RETURN;
    END IF;
    IF l.owner IS NOT DISTINCT FROM p_to THEN status := 'same_owner'; RETURN; END IF;
    IF p_to IS NOT NULL THEN
        SELECT * INTO r FROM reps WHERE id = p_to FOR NO KEY UPDATE;
        IF NOT FOUND THEN status := 'no_rep'; RETURN; END IF;
        IF NOT r.active THEN status := 'inactive'; RETURN; END IF;
        IF p_check_capacity AND (r.capacity = 0 OR r.open_count >= r.capacity) THEN
            status := 'at_capacity'; RETURN;
        END IF;
    END IF;
    why := CASE p_cause
        WHEN 'claim' THEN format('%s claimed it from the pool', p_to)
        WHEN 'assign' THEN format('assigned to %s by %s', p_to, p_by)
        WHEN 'handover' THEN format('handed over from %s to %s by %s', l.owner,
                                    coalesce(p_to, 'the pool'), p_by)
        ELSE format('moved to %s (%s) by %s', coalesce(p_to, 'the pool'), p_cause, p_by)
        END || coalesce(': ' || nullif(p_reason, ''), '');
    UPDATE leads SET owner = p_to, assigned_at = now(), updated_at = now(),
           assignment_reason = why,
           queue = CASE WHEN p_to IS NULL THEN coalesce(l.queue, 'pool') END,
           pool_reason = CASE WHEN p_to IS NULL
                              THEN coalesce(p_pool_reason, 'released') END,
           pool_since = CASE WHEN p_to IS NULL THEN now() END
     WHERE id = p_lead;
    IF l.owner IS NOT NULL THEN
        UPDATE reps SET open_count = greatest(open_count - 1, 0) WHERE id = l.owner;
    END IF;
    IF p_to IS NOT NULL THEN
        UPDATE reps SET open_count = open_count + 1, assigned_total = assigned_total + 1
         WHERE id = p_to;
        -- The fairness ledger counts manual moves too. A writer token of our own makes
        -- every router reload the ledger (and the reps) before its next decision.
        INSERT INTO routing_ledger (team, state, updated_at, writer)
        VALUES ('*', jsonb_build_object('reps', jsonb_build_object(p_to,
                jsonb_build_object('assigned_total', r.assigned_total + 1))), now(),
                'move:' || txid_current())
        ON CONFLICT (team) DO UPDATE SET
            state = jsonb_set(routing_ledger.state, '{reps}',
                coalesce(routing_ledger.state -> 'reps', '{}') || jsonb_build_object(p_to,
                    coalesce(routing_ledger.state -> 'reps' -> p_to, '{}') ||
                    jsonb_build_object('assigned_total', coalesce(
                        (routing_ledger.state -> 'reps' -> p_to ->> 'assigned_total')::bigint,
                        r.assigned_total) + 1))),
            writer = EXCLUDED.writer, updated_at = now();
    END IF;
    INSERT INTO assignments (lead_id, rep_id, queue, reason, candidates, kind)
    VALUES (p_lead, p_to, CASE WHEN p_to IS NULL THEN 'pool' END, why, '[]', 'reassign');
    INSERT INTO lead_events (lead_id, type, actor, data)
    VALUES (p_lead, 'reassigned', p_by, jsonb_build_object(
        'from', l.owner, 'owner', p_to, 'cause', p_cause, 'by', p_by,
        'reason', why, 'note', nullif(p_reason, ''), 'team', l.team,
        'pool_reason', CASE WHEN p_to IS NULL THEN coalesce(p_pool_reason, 'released') END,
        'stage', l.stage));
    INSERT INTO notifications (lead_id, rep_id, kind, message)
    SELECT p_lead, x.rep, x.kind, x.msg FROM (VALUES
        (p_to, 'lead_assigned', format('线索转交 lead %s (grade %s, %s) is now yours: %s',
                                       p_lead, coalesce(l.grade, '-'), l.stage, why)),
        (l.owner, 'lead_reassigned', format('线索转出 lead %s is no longer yours: %s',
                                            p_lead, why))) x(rep, kind, msg)
     WHERE x.rep IS NOT NULL;
    v_payload := jsonb_build_object('from', l.owner, 'owner', p_to, 'cause', p_cause,
        'by', p_by, 'reason', why, 'grade', l.grade, 'team', l.team,
        'pool_reason', CASE WHEN p_to IS NULL THEN coalesce(p_pool_reason, 'released') END);
    INSERT INTO outbox (event_id, type, lead_id, payload)
    VALUES (gen_random_uuid(), 'lead.reassigned', p_lead, v_payload)
    RETURNING lf_envelope(id, event_id, type, lead_id, at, version, payload)::text
         INTO envelope;
    status := 'moved';
END $$;

-- A claim from the pool by rep p_rep: the daily claim limit (claims since
-- p_day_start, the start of the day in the team's time zone; 0 = no limit) and the
-- cool-down (a rep who lost this lead within p_cooldown_secs may not take it back)
-- come before lf_move_lead's own checks (in the pool, active, below capacity).
-- status: lf_move_lead's, or daily_limit | cooldown.
CREATE OR REPLACE FUNCTION lf_claim_lead(p_lead uuid, p_rep text, p_day_start timestamptz,
                                         p_daily_limit integer, p_cooldown_secs bigint,
                                         OUT status text, OUT envelope text)
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(727002);
    IF p_daily_limit > 0 AND (SELECT count(*) FROM lead_claims c
                               WHERE c.rep_id = p_rep AND c.at >= p_day_start)
                              >= p_daily_limit THEN
        status := 'daily_limit'; RETURN;
    END IF;
    IF p_cooldown_secs > 0 AND EXISTS (
        SELECT 1 FROM lead_events e
         WHERE e.lead_id = p_lead AND e.type IN ('reassigned', 'recycled')
           AND e.data ->> 'from' = p_rep
           AND e.at > now() - make_interval(secs => p_cooldown_secs)) THEN
        status := 'cooldown'; RETURN;
    END IF;
    -- A deal recycled from this rep because it went stale: the keep-alive cool-down
    -- (config/keepalive.json stale.cooldown, recorded in lead_recycles) holds too.
    IF EXISTS (SELECT 1 FROM lead_recycles r
                WHERE r.lead_id = p_lead AND r.from_rep = p_rep
                  AND r.cooldown_until > now()) THEN
        status := 'cooldown'; RETURN;
    END IF;
    SELECT m.status, m.envelope INTO status, envelope
      FROM lf_move_lead(p_lead, p_rep, p_rep, 'claim', NULL, NULL, NULL, true, true) m;
    IF status = 'moved' THEN
        INSERT INTO lead_claims (rep_id, lead_id, team)
        SELECT p_rep, p_lead, l.team FROM leads l WHERE l.id = p_lead;
    END IF;
END $$;

-- Hands rep p_rep's open leads (all, or those in p_stages) to p_to, or, with p_to
-- NULL, asks the router to route each again by the rules (a lead.reassign event
-- excluding p_rep; nobody eligible: the pool, pool_reason owner_left). Oldest first.
-- Returns one envelope per lead moved or sent to the router.
CREATE OR REPLACE FUNCTION lf_handover(p_rep text, p_to text, p_stages text[], p_by text,
                                       p_reason text) RETURNS SETOF text
    LANGUAGE plpgsql AS $$
DECLARE
    lid uuid;
    m record;
    env text;
BEGIN
    PERFORM pg_advisory_xact_lock(727002);
    -- Every lead to hand over is locked first, in id order, before lf_move_lead touches
    -- any reps row (leads, then reps: docs/reliability.md). Locking them one by one in
    -- the loop held the reps rows of the first moves while waiting for the next lead,
    -- whose stage move may wait for those reps rows: a deadlock.
    PERFORM 1 FROM leads
      WHERE owner = p_rep AND stage NOT IN ('won', 'lost')
        AND (p_stages IS NULL OR stage = ANY (p_stages))
      ORDER BY id FOR NO KEY UPDATE;
    FOR lid IN SELECT id FROM leads
                WHERE owner = p_rep AND stage NOT IN ('won', 'lost')
                  AND (p_stages IS NULL OR stage = ANY (p_stages))
                ORDER BY created_at, id LOOP
        IF p_to IS NOT NULL THEN
            SELECT * INTO m FROM lf_move_lead(lid, p_to, p_by, 'handover', p_reason, NULL,
                                              p_rep, false, false);
            IF m.status = 'moved' THEN RETURN NEXT m.envelope; END IF;
        ELSE
            INSERT INTO outbox (event_id, type, lead_id, payload)
            VALUES (gen_random_uuid(), 'lead.reassign', lid, jsonb_build_object(
                'reason', 'handover', 'by', p_by, 'exclude', jsonb_build_array(p_rep),
                'pool_reason', 'owner_left', 'note', nullif(p_reason, '')))
            RETURNING lf_envelope(id, event_id, type, lead_id, at, version, payload)::text
                 INTO env;
            RETURN NEXT env;
        END IF;
    END LOOP;
END $$;

-- Whether a caller (scope and rep as for lf_caller_sees) reads the pool leads of team
-- `lead_team` and may claim from it: the admin every pool; a rep the pool of its own
-- team; a manager the pools of its own team and of the teams of the reps it reaches.
-- Pool leads of no team (routing.json without a default team) are everyone's.
CREATE OR REPLACE FUNCTION lf_caller_sees_pool(scope text, caller text, lead_team text)
    RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT scope = 'admin' OR (scope IN ('rep', 'manager') AND caller IS NOT NULL AND
        (lead_team IS NULL OR lead_team IN (
            SELECT r.team FROM reps r
             WHERE r.id = caller OR (scope = 'manager' AND
                                     r.id IN (SELECT lf_reps_reachable(caller)))))) $$;
