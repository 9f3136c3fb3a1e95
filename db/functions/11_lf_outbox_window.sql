-- lf_outbox_window: repeatable. Edit here, not in a migration.
-- Seq, type and lead of the next p_limit events of the types p_types after event
-- p_after, from transaction p_xid on, in seq order: the window of a batch consumer's
-- sweep (common/consumer.c) while it pages on through a backlog, p_after being the end
-- of its last window. The answer is then a walk of the primary key from p_after that
-- stops at the p_limit-th event of those types. Written as a statement of the consumer
-- with the cursor's values in it, the planner planned it with those values; on an
-- outbox whose statistics are missing or older than the backlog (a fresh database, or
-- right after an outage, before autovacuum analyzed the outbox) it guessed that few
-- events match and read every event above the cursor through a bitmap of outbox_xid or
-- the primary key, then sorted them, at every window: 16 ms per window of 128 with
-- 6,000 events behind it in bench/router_drain.sh (auto_explain), growing with the
-- backlog, against 0.1-0.3 ms for the walk. Here the parameters are planned as
-- parameters (a SQL function with SET is not inlined), and a sort or a bitmap is ruled
-- out. Only these three columns: a set-returning SQL function hands its rows over
-- detoasted, so returning the payloads too would read every payload of the window,
-- acknowledged or not. The full sweep (the scheduler's, which reads payloads) fetches
-- the rest of an event by its primary key afterwards, for the events without an ack only.
DROP FUNCTION IF EXISTS lf_outbox_window(bigint, xid8, text[], integer);
CREATE FUNCTION lf_outbox_window(p_after bigint, p_xid xid8, p_types text[], p_limit int)
    RETURNS TABLE (id bigint, type text, lead_id uuid)
    LANGUAGE sql STABLE SET enable_sort = off SET enable_bitmapscan = off
    AS $$ SELECT o.id, o.type, o.lead_id FROM outbox o
           WHERE o.id > p_after AND o.xid >= p_xid AND o.type = ANY (p_types)
           ORDER BY o.id LIMIT p_limit $$;
