-- lf_notify_record: repeatable (notifications, 0030_notify.sql, 0060_notify_dest_gap.sql).
-- What came of one message (the rows p_ids, leased by p_worker, to destination
-- p_dest): 'sent'; 'retry' after p_delay_ms (backoff with jitter, Retry-After
-- included), or dead once past p_max_age_s since the rows' clock started; 'dead' for a
-- permanent refusal. Rows whose lease this worker lost are left alone. Whatever the
-- outcome, the destination's next message may go its gap (notify_dests.gap_ms, written
-- by lf_notify_lease) after this call, and not before a Retry-After of p_retry_after_s
-- seconds: the rate limit counts from the moment the answer was in, not from the lease.
-- The lease held the destination until the rows' lease would run out; that hold ends
-- here only if it is still this worker's (next_send_at equal to the lease_until of rows
-- this worker still holds): a worker whose lease ran out, and whose destination another
-- worker has leased since, can push the next message later but never earlier. A
-- destination that kept failing - at least 3 messages in a row, and nothing delivered
-- for p_pause_after_s seconds - is paused for p_pause_s seconds and the manager of its
-- owner (rep's manager, or the team's) gets a destination_paused notification; a
-- receiver down for a few minutes is only retried. Counters for /metrics are kept in
-- notify_stats. Latency buckets (seconds): 1, 5, 15, 60, 300, 900, 3600, 21600, +Inf.
CREATE OR REPLACE FUNCTION lf_notify_record(p_worker text, p_ids bigint[], p_dest text,
                                            p_outcome text, p_error text,
                                            p_delay_ms bigint, p_retry_after_s integer,
                                            p_max_age_s integer, p_pause_after_s integer,
                                            p_pause_s integer)
    RETURNS TABLE (sent integer, retried integer, dead integer, paused boolean)
    LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    d notify_dests;
    n_sent integer := 0;
    n_retry integer := 0;
    n_dead integer := 0;
    did_pause boolean := false;
    lat double precision[];
    buckets double precision[] := '{1,5,15,60,300,900,3600,21600,Infinity}';
    le bigint[];
    mgr text;
    held timestamptz; -- lease_until of the rows this worker still holds
    next_send timestamptz; -- the destination's next message
BEGIN
    SELECT * INTO d FROM notify_dests WHERE key = p_dest FOR UPDATE;
    held := lf_notify_held(p_worker, p_ids);
    -- The gap and any Retry-After from now; a later hold that is not this worker's
    -- (its own ends here) stays.
    next_send := greatest(now() + make_interval(secs => coalesce(d.gap_ms, 0) / 1000.0),
                          CASE WHEN p_retry_after_s > 0
                               THEN now() + make_interval(secs => p_retry_after_s) END,
                          CASE WHEN d.next_send_at = held THEN NULL
                               ELSE d.next_send_at END);
    IF p_outcome = 'sent' THEN
        WITH u AS (
            UPDATE notify_deliveries x
               SET state = 'sent', sent_at = clock_timestamp(), lease_until = NULL,
                   last_error = NULL
             WHERE x.id = ANY (p_ids) AND x.state = 'sending' AND x.leased_by = p_worker
            RETURNING x.notification_id,
                      extract(epoch FROM clock_timestamp() - x.created_at)::float8 AS s),
        nt AS (
            UPDATE notifications n SET delivered_at = coalesce(n.delivered_at, now())
              FROM (SELECT DISTINCT notification_id FROM u) uu
             WHERE n.id = uu.notification_id)
        SELECT count(*), array_agg(u.s) INTO n_sent, lat FROM u;
        IF n_sent > 0 THEN
            SELECT array_agg((SELECT count(*) FROM unnest(lat) v WHERE v <= bk)
                             ORDER BY o) INTO le
              FROM unnest(buckets) WITH ORDINALITY AS bb(bk, o);
            UPDATE notify_stats st
               SET sent = st.sent + n_sent, messages = st.messages + 1,
                   latency_sum = st.latency_sum
                                 + (SELECT sum(v) FROM unnest(lat) v),
                   latency_le = (SELECT array_agg(a + b ORDER BY o)
                                   FROM unnest(st.latency_le, le) WITH ORDINALITY
                                        AS z(a, b, o))
             WHERE st.type = d.type;
        END IF;
        UPDATE notify_dests nd
           SET fails = 0, last_ok_at = now(), last_error = NULL, paused_until = NULL,
               failing_since = NULL, next_send_at = next_send
         WHERE nd.key = p_dest;
    ELSE
        WITH u AS (
            UPDATE notify_deliveries x
               SET state = CASE WHEN p_outcome = 'dead'
                                  OR now() + make_interval(secs => p_delay_ms / 1000.0)
                                     > x.since + make_interval(secs => p_max_age_s)
                                THEN 'dead' ELSE 'pending' END,
                   next_at = now() + make_interval(secs => p_delay_ms / 1000.0),
                   lease_until = NULL, last_error = left(p_error, 500)
             WHERE x.id = ANY (p_ids) AND x.state = 'sending' AND x.leased_by = p_worker
            RETURNING x.state)
        SELECT count(*) FILTER (WHERE u.state = 'pending'),
               count(*) FILTER (WHERE u.state = 'dead')
          INTO n_retry, n_dead FROM u;
        UPDATE notify_stats st SET failed = st.failed + n_retry + n_dead,
                                   dead = st.dead + n_dead
         WHERE st.type = d.type;
        UPDATE notify_dests nd
           SET fails = nd.fails + 1, last_error = left(p_error, 500),
               failing_since = coalesce(nd.failing_since, now()),
               next_send_at = next_send
         WHERE nd.key = p_dest
        RETURNING * INTO d;
        IF d.fails >= 3
           AND d.failing_since <= now() - make_interval(secs => p_pause_after_s)
           AND (d.paused_until IS NULL OR d.paused_until <= now()) THEN
            UPDATE notify_dests
               SET paused_until = now() + make_interval(secs => p_pause_s)
             WHERE key = p_dest;
            did_pause := true;
            SELECT coalesce((SELECT r.manager FROM reps r WHERE r.id = d.owner_rep),
                            (SELECT t.manager FROM notify_teams t
                              WHERE t.team = d.owner_team))
              INTO mgr;
            IF mgr IS NOT NULL THEN
                INSERT INTO notifications (lead_id, rep_id, kind, message)
                VALUES (NULL, mgr, 'destination_paused',
                        format('%s 的%s通知通道连续 %s 次发送失败，已暂停 %s 分钟。'
                               '最近的错误：%s',
                               coalesce(d.owner_rep, '团队 ' || d.owner_team),
                               CASE d.type WHEN 'wecom' THEN '企业微信'
                                           WHEN 'dingtalk' THEN '钉钉'
                                           WHEN 'feishu' THEN '飞书'
                                           WHEN 'slack' THEN 'Slack'
                                           WHEN 'email' THEN '邮件'
                                           ELSE 'Webhook ' END,
                               d.fails, p_pause_s / 60, left(p_error, 200)));
            END IF;
        END IF;
    END IF;
    RETURN QUERY SELECT n_sent, n_retry, n_dead, did_pause;
END $$;

-- Rows that waited past their maximum age without being sent (a paused or silent
-- destination) go dead. Returns how many.
CREATE OR REPLACE FUNCTION lf_notify_expire(p_max_age_s integer) RETURNS integer
    LANGUAGE plpgsql AS $$
DECLARE
    n integer;
BEGIN
    WITH u AS (
        UPDATE notify_deliveries x
           SET state = 'dead',
               last_error = left(coalesce(x.last_error || '; ', '')
                                 || 'not delivered within the maximum age', 500)
         WHERE x.state = 'pending'
           AND x.since < now() - make_interval(secs => p_max_age_s)
        RETURNING x.dest_key),
    c AS (
        SELECT nd.type, count(*) AS n FROM u JOIN notify_dests nd ON nd.key = u.dest_key
         GROUP BY nd.type),
    s AS (
        UPDATE notify_stats st SET dead = st.dead + c.n FROM c WHERE st.type = c.type)
    SELECT coalesce(sum(c.n), 0) INTO n FROM c;
    RETURN n;
END $$;
