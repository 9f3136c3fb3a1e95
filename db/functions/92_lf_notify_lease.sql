-- lf_notify_lease, lf_notify_held, lf_notify_release: repeatable (notifications,
-- 0030_notify.sql, 0060_notify_dest_gap.sql).
-- A delivery worker's lease, in one short transaction of its own: up to p_dests
-- destinations that may send now (rate limit passed, no message in flight, not paused,
-- something due), each locked with SKIP LOCKED so two schedulers never take the same
-- destination, and for each the rows of one message: the batch retried as it was (its
-- id is the X-Leadflow-Delivery that receivers drop repeats by), or up to p_merge due
-- rows not yet in a batch (merged into one message). The rows turn 'sending' with a
-- lease of p_lease_s seconds, and the destination is held for exactly as long:
-- next_send_at is the rows' lease_until, so nobody else leases it while the message
-- may be in flight, and a worker that died mid-send frees it at the instant its rows
-- can be leased again. The destination's gap (p_gap_ms[type], ms) is written to
-- notify_dests.gap_ms: lf_notify_record lets the next message go that long after the
-- answer is recorded. The caller sends with no transaction open and calls
-- lf_notify_record; rows of a worker that died are leased again once their lease ran
-- out (at-least-once).
CREATE OR REPLACE FUNCTION lf_notify_lease(p_worker text, p_dests integer,
                                           p_merge integer, p_lease_s integer,
                                           p_gap_ms jsonb)
    RETURNS TABLE (dest_key text, type text, url text, secret text, to_addr text,
                   format text, batch uuid, ids bigint[], items jsonb,
                   attempts integer)
    LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    d notify_dests;
    b uuid;
    picked bigint[];
    lease_end timestamptz := now() + make_interval(secs => p_lease_s);
BEGIN
    FOR d IN
        SELECT nd.* FROM notify_dests nd
         WHERE nd.next_send_at <= now()
           AND (nd.paused_until IS NULL OR nd.paused_until <= now())
           AND EXISTS (SELECT 1 FROM notify_deliveries x
                        WHERE x.dest_key = nd.key
                          AND x.state IN ('pending', 'sending')
                          AND ((x.state = 'pending' AND x.next_at <= now())
                               OR (x.state = 'sending' AND x.lease_until < now())))
         ORDER BY nd.next_send_at
         LIMIT p_dests
         FOR UPDATE SKIP LOCKED
    LOOP
        b := NULL;
        picked := NULL;
        SELECT x.batch INTO b FROM notify_deliveries x
         WHERE x.dest_key = d.key AND x.state IN ('pending', 'sending')
           AND ((x.state = 'pending' AND x.next_at <= now())
                OR (x.state = 'sending' AND x.lease_until < now()))
         ORDER BY x.urgent DESC, x.id LIMIT 1;
        IF b IS NOT NULL THEN
            SELECT array_agg(x.id ORDER BY x.id) INTO picked FROM notify_deliveries x
             WHERE x.batch = b AND x.state IN ('pending', 'sending');
        ELSE
            b := gen_random_uuid();
            SELECT array_agg(s.id ORDER BY s.id) INTO picked
              FROM (SELECT x.id FROM notify_deliveries x
                     WHERE x.dest_key = d.key AND x.state = 'pending'
                       AND x.batch IS NULL AND x.next_at <= now()
                     ORDER BY x.urgent DESC, x.id LIMIT p_merge) s;
        END IF;
        CONTINUE WHEN picked IS NULL;
        UPDATE notify_deliveries x
           SET state = 'sending', batch = b, leased_by = p_worker,
               lease_until = lease_end,
               attempts = x.attempts + 1
         WHERE x.id = ANY (picked);
        UPDATE notify_dests nd
           SET next_send_at = lease_end,
               gap_ms = coalesce(round((p_gap_ms ->> d.type)::float8), 0)
         WHERE nd.key = d.key;
        RETURN QUERY
            SELECT d.key, d.type, d.url, d.secret, d.to_addr, d.format, b, picked,
                   (SELECT jsonb_agg(jsonb_build_object(
                        'id', n.id, 'kind', n.kind, 'to', n.rep_id,
                        'lead_id', n.lead_id, 'message', n.message,
                        'at', lf_rfc3339(n.created_at),
                        'lead', CASE WHEN l.id IS NULL THEN NULL ELSE jsonb_build_object(
                            'name', l.name, 'company', l.company, 'phone', l.phone,
                            'email', l.email, 'grade', l.grade, 'stage', l.stage,
                            'need', l.need, 'budget', l.budget_raw, 'owner', l.owner,
                            'industry', l.industry, 'region', l.region,
                            'channel', l.channel, 'source', l.source) END)
                        ORDER BY x.id)
                      FROM notify_deliveries x
                      JOIN notifications n ON n.id = x.notification_id
                      LEFT JOIN leads l ON l.id = n.lead_id
                     WHERE x.id = ANY (picked)),
                   (SELECT max(x.attempts) FROM notify_deliveries x
                     WHERE x.id = ANY (picked));
    END LOOP;
END $$;

-- When the lease of p_worker on the rows p_ids runs out (NULL: it holds none of them
-- any more): the instant lf_notify_lease held their destination until, so that
-- lf_notify_record and lf_notify_release end that hold only while it is theirs.
CREATE OR REPLACE FUNCTION lf_notify_held(p_worker text, p_ids bigint[])
    RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT max(x.lease_until) FROM notify_deliveries x
     WHERE x.id = ANY (p_ids) AND x.state = 'sending' AND x.leased_by = p_worker $$;

-- The rows of a message that a worker leased and never sent (it was asked to stop before
-- it got to them) go back to pending as they were: same batch, their try not counted.
-- Their destination is free again at once, if the hold is still this worker's lease
-- (next_send_at equal to the rows' lease_until), instead of when that lease would have
-- run out; the gap since the destination's last message had passed when it was leased.
-- Rows no longer leased by p_worker are left alone. Returns how many rows went back.
CREATE OR REPLACE FUNCTION lf_notify_release(p_worker text, p_ids bigint[], p_dest text)
    RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    n integer;
    held timestamptz; -- lease_until of the rows this worker held
BEGIN
    PERFORM 1 FROM notify_dests WHERE key = p_dest FOR UPDATE;
    held := lf_notify_held(p_worker, p_ids);
    WITH u AS (
        UPDATE notify_deliveries x
           SET state = 'pending', lease_until = NULL,
               attempts = greatest(x.attempts - 1, 0)
         WHERE x.id = ANY (p_ids) AND x.state = 'sending' AND x.leased_by = p_worker
        RETURNING 1)
    SELECT count(*) INTO n FROM u;
    UPDATE notify_dests SET next_send_at = now()
     WHERE key = p_dest AND next_send_at = held;
    RETURN n;
END $$;
