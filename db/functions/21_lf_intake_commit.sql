-- lf_intake_commit: repeatable; first created by 0009_call_status.sql. Edit here, not in a migration.
-- One group commit of intake (services/intake/commit.c). The batch arrives as one typed
-- array per column, position i of every array being lead i; the answer is one row per
-- lead: its position in the arrays (out_pos, from 1; NULL for a new lead, whose id is
-- the one the caller gave: out_lead), the lead it names, its status
-- ('created', 'duplicate', 'merged'; 'conflict' when it could not be decided: the client
-- gets 503 and its retry finds the answer) and, for a new event, its type, outbox id
-- (out_seq), event id and time (out_at, lf_rfc3339): the caller builds the envelope
-- lf_envelope() would build from these and the payload it knows (services/intake/
-- commit.c), so PostgreSQL formats no JSON per event.
--
-- Each pass is ONE statement over the batch (unnest): it looks every row up by index -
-- a retry of something stored (Idempotency-Key, (channel, external_id), CallSid), else
-- the newest open lead with the same phone or e-mail - and in the same statement inserts
-- the new leads (with their lists' search rows and lead.created events), merges the
-- repeat inquiries and writes their timeline entries and outbox events (the owners' notifications of merged
-- inquiries follow in a statement that runs only when there are any). The statement joins no two sets of the batch on
-- each other (PostgreSQL cannot know their sizes and would loop over one for every
-- row of the other): every lookup is an index probe per row. A row is put off to the
-- next pass (a new statement, so a new snapshot) when
--   - an earlier row still undecided shares a phone, e-mail, key, external id or CallSid
--     with it (within a pass no two rows share one: the second sees what the first did);
--   - its new lead lost a unique index (leads_intake_open_phone/_email, a key, an
--     external id) to a row of another transaction or of this statement: ON CONFLICT
--     waited for that transaction's commit, so the next pass finds its lead;
--   - the open lead it would join was closed before this statement could lock it;
--   - its inquiry lost a unique index of lead_inquiries: the next pass sees a retry.
-- The first pass runs a smaller statement that stores only new people (no retry, no
-- open lead with the phone or e-mail, no CallSid) and leaves every other row undecided
-- for the whole statement of the next pass. A batch of new people therefore costs one
-- small statement; a pass decides at least the first undecided row, or (the first)
-- leaves the rest to a pass that does, so the loop ends.
--
-- A new lead's 'created' timeline entry is not stored: it would be the lead's own
-- created_at, channel and source again, and it cost a lead_events row with two index
-- entries and a run of that table's statement trigger per batch. The API's timeline
-- shows it from the lead row for every lead intake made (leads.intake_open is set, true
-- or false: 22_lf_leads_intake_open.sql) and has no stored one (leads made before
-- 2026-12-02 keep theirs); services/intake/api_leads.c.
--
-- Locks: the leads that repeat inquiries join are locked FOR NO KEY UPDATE, in id order, and
-- re-checked open under the lock (docs/reliability.md, lock order): a stage move closing
-- one either committed first (the inquiry becomes a new lead in the next pass) or waits
-- for this commit. A known call reported again (a status callback) takes an advisory
-- lock on its CallSid, so that two reports of the same news racing add one entry.
-- The form before p_event_id (26 arguments, until 2026-12-02) is replaced by this one,
-- which a caller of that form (intake of the previous version, still running during an
-- upgrade) calls all the same: its events' ids are then drawn here.
DROP FUNCTION IF EXISTS lf_intake_commit(uuid[], text[], text[], text[], text[], text[],
    text[], text[], text[], numeric[], numeric[], text[], text[], text[], boolean[],
    text[], text[], text[], jsonb[], jsonb[], text[], jsonb[], text[], text[], jsonb[],
    text[]);
CREATE OR REPLACE FUNCTION lf_intake_commit(
    p_id uuid[], p_kind text[], p_channel text[], p_source text[], p_name text[],
    p_company text[], p_email text[], p_phone text[], p_need text[],
    p_budget_min numeric[], p_budget_max numeric[], p_currency text[],
    p_budget_raw text[], p_urgency text[], p_decision_maker boolean[], p_region text[],
    p_industry text[], p_external_id text[], p_extra jsonb[], p_raw jsonb[],
    p_idempotency_key text[], p_call jsonb[], p_phone_type text[],
    p_phone_country text[], p_flags jsonb[], p_company_key text[],
    p_event_id uuid[] DEFAULT NULL)
RETURNS TABLE (out_pos integer, out_lead text, out_status text, out_type text,
              out_seq bigint, out_event text, out_at text)
LANGUAGE plpgsql
-- PL/pgSQL keeps each statement's plan for the connection's life; a plan made while a
-- table was small (a new database, the first calls) would scan that table for every
-- lead for as long as the connection lives (seen: leads, for the OR of phone and
-- e-mail). Every lookup here is a probe by an index, so no plan may scan a table; the
-- statements are shaped (scalar subqueries, LATERAL) so that no join needs one.
SET enable_seqscan = off
-- The same plans for every batch: a statement's generic plan, made once per connection,
-- not a custom plan per call. PostgreSQL's default compares the two costs, and with a
-- batch of a few leads the custom plan of the big statement below looks cheaper, so it
-- was planned again at every call: 2.7-3.9 ms of backend CPU for a batch of one lead
-- against 0.67 ms with the generic plan, 4.0-4.8 against 1.5 ms for four (batches are
-- that small whenever intake is not busy); from about 14 leads on the default already
-- chose the generic plan. Its lookups are index probes per row whatever the batch size
-- (above), so the batch size has nothing to tell the planner (docs/benchmarks.md,
-- "Intake: where one lead's CPU goes").
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    todo     integer[];
    go       integer[];
    every    boolean;
    a_pos    integer[];
    a_lead   text[];
    a_status text[];
    a_type   text[];
    a_seq    bigint[];
    a_event  text[];
    v_at     text := lf_rfc3339(now());
    a_calls  integer[];
    a_notify jsonb;
    passes   integer := 0;
    v_events integer := 0; -- ids of p_event_id given to lead.created events so far
BEGIN
    todo := ARRAY(SELECT generate_series(1, cardinality(p_id)));
    WHILE cardinality(todo) > 0 LOOP
        passes := passes + 1;
        IF passes > cardinality(p_id) + 3 THEN
            -- Cannot happen while every pass decides a row; never loop for ever.
            RETURN QUERY SELECT t, NULL::text, 'conflict'::text, NULL::text, NULL::bigint,
                                NULL::text, NULL::text
                           FROM unnest(todo) t;
            RETURN;
        END IF;
        -- The rows of this pass: those no earlier undecided row shares a value with.
        -- A lone row shares nothing, and neither does a first pass whose values are
        -- all distinct (one aggregate, not the five sorts below).
        IF cardinality(todo) = 1 OR passes = 1 AND (
                SELECT count(DISTINCT u.phone) = count(u.phone)
                   AND count(DISTINCT u.email) = count(u.email)
                   AND count(DISTINCT u.ik) = count(u.ik)
                   AND count(DISTINCT (u.channel, u.ext)) FILTER (WHERE u.ext IS NOT NULL)
                       = count(u.ext)
                   AND count(DISTINCT u.call ->> 'call_sid') = count(u.call ->> 'call_sid')
                  FROM unnest(p_phone, p_email, p_idempotency_key, p_channel,
                              p_external_id, p_call) AS u(phone, email, ik, channel, ext,
                                                          call)) THEN
            go := todo;
        ELSE
            go := ARRAY(
                SELECT f.pos FROM (
                    SELECT u.pos,
                           (u.phone IS NULL OR row_number() OVER (
                                PARTITION BY u.phone ORDER BY u.pos) = 1)
                       AND (u.email IS NULL OR row_number() OVER (
                                PARTITION BY u.email ORDER BY u.pos) = 1)
                       AND (u.ik IS NULL OR row_number() OVER (
                                PARTITION BY u.ik ORDER BY u.pos) = 1)
                       AND (u.ext IS NULL OR row_number() OVER (
                                PARTITION BY u.channel, u.ext ORDER BY u.pos) = 1)
                       AND (u.call ->> 'call_sid' IS NULL OR row_number() OVER (
                                PARTITION BY u.call ->> 'call_sid' ORDER BY u.pos) = 1)
                           AS first
                      FROM unnest(p_phone, p_email, p_idempotency_key, p_channel,
                                  p_external_id, p_call)
                           WITH ORDINALITY AS u(phone, email, ik, channel, ext, call, pos)
                     WHERE passes = 1 OR u.pos = ANY (todo)) f
                 WHERE f.first ORDER BY f.pos);
        END IF;
        every := cardinality(go) = cardinality(p_id);

        IF passes = 1 THEN
            -- The first pass takes only what a batch of new people needs: their leads,
            -- search rows and outbox events. A row that is a retry,
            -- a repeat inquiry or a call (a CallSid) is left for the next pass, which
            -- runs the whole statement below on what is left. The whole statement's
            -- ~60 nodes (the lock, the merge's and the call's inserts, each opening
            -- its table and indexes) are set up and torn down at every call whether
            -- they get a row or not, most of a small batch's cost; the usual batch
            -- has only new people (docs/benchmarks.md, "Intake, fourth pass").
            WITH b AS (
                SELECT u.*
                  FROM unnest(p_id, p_kind, p_channel, p_source, p_name, p_company,
                              p_email, p_phone, p_need, p_budget_min, p_budget_max,
                              p_currency, p_budget_raw, p_urgency, p_decision_maker,
                              p_region, p_industry, p_external_id, p_extra, p_raw,
                              p_idempotency_key, p_call, p_phone_type, p_phone_country,
                              p_flags, p_company_key)
                       WITH ORDINALITY AS u(id, kind, channel, source, name, company,
                              email, phone, need, budget_min, budget_max, currency,
                              budget_raw, urgency, decision_maker, region, industry,
                              external_id, extra, raw, idempotency_key, call, phone_type,
                              phone_country, flags, company_key, pos)
                 WHERE (every OR u.pos = ANY (go)) AND u.call ->> 'call_sid' IS NULL
            ), nw AS MATERIALIZED (
                -- the lookups of the whole statement below (h and c), kept in step,
                -- but for the open leads intake made (intake_open): their phone and
                -- e-mail are in the unique indexes leads_intake_open_phone/_email,
                -- which the insert's ON CONFLICT checks anyway. A row of such a person
                -- loses that check and is left undecided, as a row the probes had
                -- found was; the next pass merges it. Two index probes fewer per new
                -- lead; the leads not marked (reactivations, reopened deals, leads
                -- made before 0043) have no unique index and are still probed.
                SELECT b.* FROM b
                 WHERE (b.idempotency_key IS NULL AND b.external_id IS NULL OR coalesce(
                        (SELECT l.id FROM leads l
                          WHERE l.idempotency_key = b.idempotency_key),
                        (SELECT i.lead_id FROM lead_inquiries i
                          WHERE i.idempotency_key = b.idempotency_key),
                        (SELECT l.id FROM leads l
                          WHERE l.channel = b.channel AND l.external_id = b.external_id),
                        (SELECT i.lead_id FROM lead_inquiries i
                          WHERE i.channel = b.channel
                            AND i.external_id = b.external_id)) IS NULL)
                   AND (SELECT o.id FROM (
                           (SELECT l.id FROM leads l
                             WHERE l.phone = b.phone AND l.intake_open IS NOT TRUE
                               AND l.stage NOT IN ('won', 'lost') LIMIT 1)
                           UNION ALL
                           (SELECT l.id FROM leads l
                             WHERE l.email = b.email AND l.intake_open IS NOT TRUE
                               AND l.stage NOT IN ('won', 'lost') LIMIT 1)) o
                         LIMIT 1) IS NULL
            ), ins AS (
                INSERT INTO leads (id, channel, source, name, company, email, phone, need,
                    budget_min, budget_max, currency, budget_raw, urgency, decision_maker,
                    region, industry, external_id, extra, raw, idempotency_key,
                    customer_id, phone_type, phone_country, flags, company_key,
                    intake_open)
                SELECT nw.id, nw.channel, nw.source, nw.name, nw.company, nw.email,
                    nw.phone, nw.need, nw.budget_min, nw.budget_max, nw.currency,
                    nw.budget_raw, nw.urgency, nw.decision_maker, nw.region, nw.industry,
                    nw.external_id, coalesce(nw.extra, '{}'), nw.raw, nw.idempotency_key,
                    (SELECT cu.id FROM customers cu
                      WHERE cu.key = lf_customer_key(nw.company_key, nw.email, nw.phone)),
                    nw.phone_type, nw.phone_country, coalesce(nw.flags, '[]'),
                    nw.company_key, true
                  FROM nw ORDER BY nw.phone, nw.email, nw.pos
                ON CONFLICT DO NOTHING
                RETURNING leads.id, leads.channel, leads.created_at, leads.name,
                          leads.company, leads.email, leads.phone
            ), sr AS (
                INSERT INTO lead_search (lead_id, doc)
                SELECT ins.id, lf_lead_search_doc(ins.name, ins.company, ins.email,
                                                  ins.phone)
                  FROM ins
            ), ob AS (
                INSERT INTO outbox (event_id, type, lead_id, at, payload)
                -- each new lead's event takes the next of the ids intake drew
                -- (p_event_id): gen_random_uuid() costs this backend several us a call
                -- (OpenSSL 3's generator); the ids are not tied to rows, so no join
                SELECT coalesce(p_event_id[v_events + row_number() OVER ()],
                                gen_random_uuid()),
                       'lead.created', ins.id, ins.created_at,
                       jsonb_build_object('channel', ins.channel) FROM ins
                RETURNING outbox.lead_id, outbox.id, outbox.event_id
            )
            SELECT array_agg(NULL::integer), array_agg(ob.lead_id::text),
                   array_agg('created'::text), array_agg('lead.created'::text),
                   array_agg(ob.id), array_agg(ob.event_id::text)
              INTO a_pos, a_lead, a_status, a_type, a_seq, a_event
              FROM ob;
            a_calls := NULL;
            a_notify := NULL;
        ELSE

            WITH b AS (
                SELECT u.*, u.call ->> 'call_sid' AS sid
                  FROM unnest(p_id, p_kind, p_channel, p_source, p_name, p_company, p_email,
                              p_phone, p_need, p_budget_min, p_budget_max, p_currency,
                              p_budget_raw, p_urgency, p_decision_maker, p_region, p_industry,
                              p_external_id, p_extra, p_raw, p_idempotency_key, p_call,
                              p_phone_type, p_phone_country, p_flags, p_company_key)
                       WITH ORDINALITY AS u(id, kind, channel, source, name, company, email,
                              phone, need, budget_min, budget_max, currency, budget_raw,
                              urgency, decision_maker, region, industry, external_id, extra,
                              raw, idempotency_key, call, phone_type, phone_country, flags,
                              company_key, pos)
                 WHERE every OR u.pos = ANY (go)
            ), h AS (
                -- 1. a retry of something already stored (hit)
                SELECT b.*, CASE WHEN b.idempotency_key IS NOT NULL OR b.external_id IS NOT NULL
                                      OR b.sid IS NOT NULL THEN coalesce(
                       (SELECT l.id FROM leads l WHERE l.idempotency_key = b.idempotency_key),
                       (SELECT i.lead_id FROM lead_inquiries i
                         WHERE i.idempotency_key = b.idempotency_key),
                       (SELECT l.id FROM leads l
                         WHERE l.channel = b.channel AND l.external_id = b.external_id),
                       (SELECT i.lead_id FROM lead_inquiries i
                         WHERE i.channel = b.channel AND i.external_id = b.external_id),
                       (SELECT i.lead_id FROM lead_inquiries i WHERE i.call_sid = b.sid),
                       (SELECT e.lead_id FROM lead_events e
                         WHERE e.type = 'call' AND e.data ->> 'call_sid' = b.sid)) END AS hit
                  FROM b
            ), c AS MATERIALIZED (
                -- 2. else the newest open lead with the same phone or e-mail (lead)
                -- Probes of one equality each, not one with OR: PL/pgSQL keeps a
                -- statement's plan for the connection's life, and a plan made while leads
                -- was small chose, for the OR, a scan of the whole table for every lead.
                -- A phone (an e-mail) is indexed once per lead (0046): in the unique index
                -- of the leads marked intake_open (at most one, open) or in the index of
                -- the others (intake_open IS NOT TRUE: reactivations, reopened deals, leads
                -- closed or older than 0043); the two halves together are every lead.
                SELECT h.*, CASE WHEN h.hit IS NULL THEN (
                       SELECT o.id FROM (
                           (SELECT l.id, l.created_at FROM leads l
                             WHERE l.phone = h.phone AND l.intake_open
                               AND l.stage NOT IN ('won', 'lost'))
                           UNION ALL
                           (SELECT l.id, l.created_at FROM leads l
                             WHERE l.phone = h.phone AND l.intake_open IS NOT TRUE
                               AND l.stage NOT IN ('won', 'lost')
                             ORDER BY l.created_at DESC, l.id DESC LIMIT 1)
                           UNION ALL
                           (SELECT l.id, l.created_at FROM leads l
                             WHERE l.email = h.email AND l.intake_open
                               AND l.stage NOT IN ('won', 'lost'))
                           UNION ALL
                           (SELECT l.id, l.created_at FROM leads l
                             WHERE l.email = h.email AND l.intake_open IS NOT TRUE
                               AND l.stage NOT IN ('won', 'lost')
                             ORDER BY l.created_at DESC, l.id DESC LIMIT 1)) o
                        ORDER BY o.created_at DESC, o.id DESC LIMIT 1) END AS lead
                  FROM h
            ), lk AS (
                -- the leads joined, locked in id order, still open under the lock. FOR NO
                -- KEY UPDATE, not FOR SHARE: the merge's timeline entry updates the lead
                -- (lead_events_touch), and two holders of a share lock that both upgrade
                -- deadlock; like this, merges into one lead wait for each other.
                -- One primary-key probe per lead, in id order (a join would let a plan
                -- made on a small table scan all of leads).
                SELECT x.id, x.owner
                  FROM (SELECT DISTINCT c.lead FROM c WHERE c.lead IS NOT NULL
                         ORDER BY c.lead) t,
                       LATERAL (SELECT l.id, l.owner FROM leads l
                                 WHERE l.id = t.lead AND l.stage NOT IN ('won', 'lost')
                                   FOR NO KEY UPDATE) x
            ), nw AS MATERIALIZED (
                SELECT c.* FROM c WHERE c.hit IS NULL AND c.lead IS NULL
            ), ins AS (
                -- 3. new people: one insert; a row that loses a unique index waits a pass.
                -- In phone order, so that two batches racing for the same people wait
                -- for each other in one order, not in a cycle.
                INSERT INTO leads (id, channel, source, name, company, email, phone, need,
                    budget_min, budget_max, currency, budget_raw, urgency, decision_maker,
                    region, industry, external_id, extra, raw, idempotency_key, customer_id,
                    phone_type, phone_country, flags, company_key, intake_open)
                SELECT nw.id, nw.channel, nw.source, nw.name, nw.company, nw.email, nw.phone,
                    nw.need, nw.budget_min, nw.budget_max, nw.currency, nw.budget_raw,
                    nw.urgency, nw.decision_maker, nw.region, nw.industry, nw.external_id,
                    coalesce(nw.extra, '{}'), nw.raw, nw.idempotency_key,
                    (SELECT cu.id FROM customers cu
                      WHERE cu.key = lf_customer_key(nw.company_key, nw.email, nw.phone)),
                    nw.phone_type, nw.phone_country, coalesce(nw.flags, '[]'), nw.company_key,
                    true
                  FROM nw ORDER BY nw.phone, nw.email, nw.pos
                ON CONFLICT DO NOTHING
                RETURNING leads.id, leads.channel, leads.created_at, leads.name,
                          leads.company, leads.email, leads.phone
            ), sr AS (
                -- the lists' search row of each new lead, here rather than by a trigger on
                -- leads (23_lf_lead_search.sql leaves leads marked intake_open to us): no
                -- copy of every inserted row into a transition table, no second statement
                INSERT INTO lead_search (lead_id, doc)
                SELECT ins.id, lf_lead_search_doc(ins.name, ins.company, ins.email, ins.phone)
                  FROM ins
            ), nc AS MATERIALIZED (
                SELECT nw.id, nw.sid, nw.call FROM nw WHERE nw.sid IS NOT NULL
            ), tc AS (
                INSERT INTO lead_events (lead_id, at, type, data)
                SELECT nc.id, now(), 'call',
                       jsonb_strip_nulls(jsonb_build_object('call_sid', nc.sid, 'call', nc.call))
                  FROM nc WHERE nc.id IN (SELECT ins.id FROM ins)
            ), ob AS (
                INSERT INTO outbox (event_id, type, lead_id, at, payload)
                SELECT coalesce(p_event_id[v_events + row_number() OVER ()],
                                gen_random_uuid()),
                       'lead.created', ins.id, ins.created_at,
                       jsonb_build_object('channel', ins.channel) FROM ins
                RETURNING outbox.lead_id, outbox.id, outbox.event_id
            ), mg AS MATERIALIZED (
                -- 4. repeat inquiries, merged into their open lead
                SELECT nextval('lead_inquiries_id_seq') AS iid, gen_random_uuid() AS eid,
                       CASE WHEN c.kind = 'call' THEN 'call' ELSE 'inquiry' END AS ikind,
                       lk.owner, c.*
                  FROM c JOIN lk ON lk.id = c.lead
            ), mi AS (
                INSERT INTO lead_inquiries (id, lead_id, kind, channel, external_id,
                                            idempotency_key, call_sid, raw)
                SELECT mg.iid, mg.lead, mg.ikind, mg.channel, mg.external_id,
                       mg.idempotency_key, mg.sid, mg.raw
                  FROM mg ORDER BY mg.pos
                ON CONFLICT DO NOTHING
                RETURNING lead_inquiries.id
            ), md AS MATERIALIZED (
                SELECT mg.* FROM mg WHERE mg.iid IN (SELECT mi.id FROM mi)
            ), me AS (
                INSERT INTO lead_events (lead_id, type, data)
                SELECT md.lead, md.ikind, jsonb_strip_nulls(jsonb_build_object(
                           'channel', md.channel, 'source', md.source, 'name', md.name,
                           'company', md.company, 'need', md.need, 'call_sid', md.sid,
                           'call', md.call, 'external_id', md.external_id))
                  FROM md ORDER BY md.pos
            ), mo AS (
                INSERT INTO outbox (event_id, type, lead_id, payload)
                SELECT md.eid, 'lead.merged', md.lead,
                       jsonb_strip_nulls(jsonb_build_object('kind', md.ikind,
                                                            'channel', md.channel,
                                                            'source', md.source))
                  FROM md ORDER BY md.pos
                RETURNING outbox.event_id, outbox.id
            ), x AS (
                SELECT c.pos, c.hit AS lead, 'duplicate' AS status, NULL::text AS type,
                       NULL::bigint AS seq, NULL::uuid AS event
                  FROM c WHERE c.hit IS NOT NULL
                UNION ALL
                SELECT NULL, ob.lead_id, 'created', 'lead.created', ob.id, ob.event_id FROM ob
                UNION ALL
                SELECT md.pos, md.lead, 'merged', 'lead.merged', mo.id, mo.event_id
                  FROM md JOIN mo ON mo.event_id = md.eid
            )
            SELECT array_agg(x.pos::integer), array_agg(x.lead::text), array_agg(x.status),
                   array_agg(x.type), array_agg(x.seq), array_agg(x.event::text),
                   (SELECT array_agg(c.pos::integer) FROM c
                     WHERE c.hit IS NOT NULL AND c.sid IS NOT NULL
                       AND c.call ->> 'status' IS NOT NULL),
                   -- the owners to notify of their merged inquiries, written below
                   (SELECT jsonb_agg(jsonb_build_array(md.lead, md.owner, md.ikind,
                                                       coalesce(md.source, md.channel))
                                     ORDER BY md.pos)
                      FROM md WHERE md.owner IS NOT NULL)
              INTO a_pos, a_lead, a_status, a_type, a_seq, a_event, a_calls, a_notify
              FROM x;
        END IF;

        IF a_notify IS NOT NULL THEN
            -- The owners' notifications, in a statement of their own that runs only
            -- when an inquiry was merged into an owned lead: an INSERT in the batch
            -- statement fired the fan-out trigger of notifications (a statement
            -- trigger: it fires for no rows too) at every batch, 0.12-0.19 ms a call
            -- for nothing in a batch of new people (docs/benchmarks.md).
            INSERT INTO notifications (lead_id, rep_id, kind, message)
            SELECT (t.e ->> 0)::uuid, t.e ->> 1,
                   CASE WHEN t.e ->> 2 = 'call' THEN 'lead_call' ELSE 'repeat_inquiry' END,
                   CASE WHEN t.e ->> 2 = 'call'
                        THEN format('来电: the customer of lead %s called again (%s)',
                                    t.e ->> 0, t.e ->> 3)
                        ELSE format('重复咨询: the customer of lead %s inquired again via %s',
                                    t.e ->> 0, t.e ->> 3) END
              FROM jsonb_array_elements(a_notify) WITH ORDINALITY AS t(e, n)
             ORDER BY t.n;
        END IF;

        IF a_calls IS NOT NULL THEN
            -- A call we know, reported again (Twilio's status callback, a PBX's hang-up
            -- event): a new status or duration goes on the timeline as its own entry;
            -- the same news again adds nothing. Rare: one lock per such call, in order,
            -- then a fresh snapshot that sees what a racing report stored.
            PERFORM pg_advisory_xact_lock(727003, s.h)
               FROM (SELECT DISTINCT hashtext('c:' || (p_call[t] ->> 'call_sid')) AS h
                       FROM unnest(a_calls) t ORDER BY 1) s;
            INSERT INTO lead_events (lead_id, type, data)
            SELECT d.lead, 'call_status', jsonb_strip_nulls(jsonb_build_object(
                       'call_sid', d.sid, 'status', d.call ->> 'status',
                       'duration', d.call -> 'duration', 'previous', last.status))
              FROM (SELECT a_lead[array_position(a_pos, t)]::uuid AS lead, p_call[t] AS call,
                           p_call[t] ->> 'call_sid' AS sid
                      FROM unnest(a_calls) t) d
              LEFT JOIN LATERAL (
                   SELECT coalesce(e.data ->> 'status', e.data -> 'call' ->> 'status') AS status,
                          coalesce(e.data ->> 'duration', e.data -> 'call' ->> 'duration')
                              AS duration
                     FROM lead_events e
                    WHERE e.lead_id = d.lead AND e.type IN ('call', 'call_status')
                      AND e.data ->> 'call_sid' = d.sid
                    ORDER BY e.id DESC LIMIT 1) last ON true
             WHERE last.status IS DISTINCT FROM d.call ->> 'status'
                OR (d.call ? 'duration' AND last.duration IS DISTINCT FROM d.call ->> 'duration');
        END IF;

        v_events := v_events + coalesce(cardinality(array_positions(a_type, 'lead.created')), 0);
        IF a_pos IS NOT NULL THEN
            RETURN QUERY SELECT u.*, CASE WHEN u.seq IS NOT NULL THEN v_at END
                           FROM unnest(a_pos, a_lead, a_status, a_type, a_seq, a_event)
                                AS u(pos, lead, status, type, seq, event);
        END IF;
        IF coalesce(cardinality(a_pos), 0) = cardinality(todo) THEN
            todo := '{}';
        ELSE
            -- Undecided: put off above, lost a unique index, or joined a lead closed
            -- meanwhile. A new lead's row is decided when its id is now a lead.
            todo := ARRAY(
                SELECT u.pos FROM unnest(p_id) WITH ORDINALITY AS u(id, pos)
                 WHERE u.pos = ANY (todo)
                   AND u.pos <> ALL (coalesce(array_remove(a_pos, NULL), '{}'))
                   AND (SELECT true FROM leads l WHERE l.id = u.id) IS NULL);
        END IF;
    END LOOP;
END $$;
