-- 0002_intake: deduplication and merging of repeat inquiries, calls from phone systems.
--
-- One function, lf_intake_commit(batch), stores a whole group-commit batch in one
-- statement (one round trip, one WAL flush). For each submission, in order:
--   1. a retry (same Idempotency-Key, same (channel, external_id), same CallSid) returns
--      the lead it created or was merged into: "duplicate";
--   2. a repeat inquiry (same normalized phone or e-mail as a lead whose stage is not
--      won/lost) is attached to that lead: a lead_inquiries row, a timeline entry
--      ('inquiry' or 'call'), a notification for the owner and an outbox 'lead.merged'
--      event: "merged";
--   3. otherwise a new lead with its 'created' timeline entry and 'lead.created' event.
--
-- Race-freedom: before looking anything up, the batch takes a transaction-scoped
-- advisory lock (key space 727003) on every phone, e-mail, idempotency key, external id
-- and CallSid it carries, in one global order (so two batches cannot deadlock). Any other
-- batch carrying one of the same values waits until this one commits, and its lookups
-- (a fresh snapshot per statement under READ COMMITTED) then see the lead this batch
-- created. Two inquiries from the same person on two connections thus make one lead and
-- one merge. "Open" is read from leads.stage at that moment, so nothing has to be
-- released when a deal is won or lost.

CREATE TABLE lead_inquiries (
    id              bigserial PRIMARY KEY,
    lead_id         text NOT NULL REFERENCES leads (id),
    at              timestamptz NOT NULL DEFAULT now(),
    kind            text NOT NULL CHECK (kind IN ('inquiry', 'call')),
    channel         text NOT NULL,
    external_id     text,
    idempotency_key text,
    call_sid        text,
    raw             jsonb
);
CREATE INDEX lead_inquiries_lead ON lead_inquiries (lead_id);
CREATE UNIQUE INDEX lead_inquiries_idempotency ON lead_inquiries (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE UNIQUE INDEX lead_inquiries_external ON lead_inquiries (channel, external_id)
    WHERE external_id IS NOT NULL;
CREATE UNIQUE INDEX lead_inquiries_call ON lead_inquiries (call_sid)
    WHERE call_sid IS NOT NULL;

-- The same CallSid is one call event, whichever way it arrived.
CREATE UNIQUE INDEX lead_events_call_sid ON lead_events ((data ->> 'call_sid'))
    WHERE type = 'call';

CREATE INDEX api_keys_active ON api_keys (id) WHERE revoked_at IS NULL;

CREATE FUNCTION lf_intake_commit(batch jsonb)
RETURNS TABLE (out_job text, out_lead text, out_status text, out_type text, out_env text)
LANGUAGE plpgsql AS $$
DECLARE
    r        record;
    k        text;
    hit      text;
    own      text;
    sid      text;
    kind     text;
    created  timestamptz;
BEGIN
    FOR k IN
        SELECT DISTINCT c FROM (
            SELECT 'p:' || (x ->> 'phone') AS c FROM jsonb_array_elements(batch) x
             WHERE x ->> 'phone' IS NOT NULL
            UNION ALL SELECT 'e:' || (x ->> 'email') FROM jsonb_array_elements(batch) x
             WHERE x ->> 'email' IS NOT NULL
            UNION ALL SELECT 'i:' || (x ->> 'idempotency_key') FROM jsonb_array_elements(batch) x
             WHERE x ->> 'idempotency_key' IS NOT NULL
            UNION ALL SELECT 'x:' || (x ->> 'channel') || ':' || (x ->> 'external_id')
              FROM jsonb_array_elements(batch) x WHERE x ->> 'external_id' IS NOT NULL
            UNION ALL SELECT 'c:' || (x -> 'call' ->> 'call_sid') FROM jsonb_array_elements(batch) x
             WHERE x -> 'call' ->> 'call_sid' IS NOT NULL
        ) a ORDER BY c
    LOOP
        PERFORM pg_advisory_xact_lock(727003, hashtext(k));
    END LOOP;

    FOR r IN
        SELECT * FROM jsonb_to_recordset(batch) AS x(id text, kind text, channel text,
            source text, name text, company text, email text, phone text, need text,
            budget_min numeric, budget_max numeric, currency text, budget_raw text,
            urgency text, decision_maker boolean, region text, industry text,
            external_id text, extra jsonb, raw jsonb, idempotency_key text, call jsonb)
    LOOP
        sid := r.call ->> 'call_sid';
        kind := CASE WHEN r.kind = 'call' THEN 'call' ELSE 'inquiry' END;
        out_job := r.id;

        -- 1. a retry of something already stored
        hit := NULL;
        IF r.idempotency_key IS NOT NULL THEN
            SELECT l.id INTO hit FROM leads l WHERE l.idempotency_key = r.idempotency_key;
            IF hit IS NULL THEN
                SELECT i.lead_id INTO hit FROM lead_inquiries i
                 WHERE i.idempotency_key = r.idempotency_key;
            END IF;
        END IF;
        IF hit IS NULL AND r.external_id IS NOT NULL THEN
            SELECT l.id INTO hit FROM leads l
             WHERE l.channel = r.channel AND l.external_id = r.external_id;
            IF hit IS NULL THEN
                SELECT i.lead_id INTO hit FROM lead_inquiries i
                 WHERE i.channel = r.channel AND i.external_id = r.external_id;
            END IF;
        END IF;
        IF hit IS NULL AND sid IS NOT NULL THEN
            SELECT i.lead_id INTO hit FROM lead_inquiries i WHERE i.call_sid = sid;
            IF hit IS NULL THEN
                SELECT e.lead_id INTO hit FROM lead_events e
                 WHERE e.type = 'call' AND e.data ->> 'call_sid' = sid;
            END IF;
        END IF;
        IF hit IS NOT NULL THEN
            out_lead := hit; out_status := 'duplicate'; out_type := NULL; out_env := NULL;
            RETURN NEXT;
            CONTINUE;
        END IF;

        -- 2. a repeat inquiry from someone with an open lead
        SELECT l.id, l.owner INTO hit, own FROM leads l
         WHERE l.stage NOT IN ('won', 'lost')
           AND ((r.phone IS NOT NULL AND l.phone = r.phone)
             OR (r.email IS NOT NULL AND l.email = r.email))
         ORDER BY l.created_at DESC, l.id DESC LIMIT 1;
        IF hit IS NOT NULL THEN
            INSERT INTO lead_inquiries (lead_id, kind, channel, external_id, idempotency_key,
                                        call_sid, raw)
            VALUES (hit, kind, r.channel, r.external_id, r.idempotency_key, sid, r.raw);
            INSERT INTO lead_events (lead_id, type, data)
            VALUES (hit, kind, jsonb_strip_nulls(jsonb_build_object(
                'channel', r.channel, 'source', r.source, 'name', r.name,
                'company', r.company, 'need', r.need, 'call_sid', sid,
                'call', r.call, 'external_id', r.external_id)));
            IF own IS NOT NULL THEN
                INSERT INTO notifications (lead_id, rep_id, kind, message)
                VALUES (hit, own, CASE WHEN kind = 'call' THEN 'lead_call' ELSE 'repeat_inquiry' END,
                        CASE WHEN kind = 'call'
                             THEN format('来电: the customer of lead %s called again (%s)', hit,
                                         coalesce(r.source, r.channel))
                             ELSE format('重复咨询: the customer of lead %s inquired again via %s',
                                         hit, coalesce(r.source, r.channel)) END);
            END IF;
            INSERT INTO outbox (event_id, type, lead_id, payload)
            VALUES (gen_random_uuid(), 'lead.merged', hit,
                    jsonb_strip_nulls(jsonb_build_object('kind', kind, 'channel', r.channel,
                                                         'source', r.source)))
            RETURNING lf_envelope(id, event_id, type, lead_id, at, version, payload)::text
                 INTO out_env;
            out_lead := hit; out_status := 'merged'; out_type := 'lead.merged';
            RETURN NEXT;
            CONTINUE;
        END IF;

        -- 3. a new lead
        INSERT INTO leads (id, channel, source, name, company, email, phone, need,
            budget_min, budget_max, currency, budget_raw, urgency, decision_maker, region,
            industry, external_id, extra, raw, idempotency_key)
        VALUES (r.id, r.channel, r.source, r.name, r.company, r.email, r.phone, r.need,
            r.budget_min, r.budget_max, r.currency, r.budget_raw, r.urgency,
            r.decision_maker, r.region, r.industry, r.external_id,
            coalesce(r.extra, '{}'), r.raw, r.idempotency_key)
        ON CONFLICT DO NOTHING
        RETURNING created_at INTO created;
        IF NOT FOUND THEN
            -- A unique value we did not lock (cannot happen while every writer uses this
            -- function): answer "try again", which then finds the lead as a duplicate.
            out_lead := NULL; out_status := 'conflict'; out_type := NULL; out_env := NULL;
            RETURN NEXT;
            CONTINUE;
        END IF;
        INSERT INTO lead_events (lead_id, at, type, data)
        VALUES (r.id, created, 'created',
                jsonb_build_object('channel', r.channel, 'source', r.source));
        IF sid IS NOT NULL THEN
            INSERT INTO lead_events (lead_id, at, type, data)
            VALUES (r.id, created, 'call',
                    jsonb_strip_nulls(jsonb_build_object('call_sid', sid, 'call', r.call)));
        END IF;
        INSERT INTO outbox (event_id, type, lead_id, at, payload)
        VALUES (gen_random_uuid(), 'lead.created', r.id, created,
                jsonb_build_object('channel', r.channel))
        RETURNING lf_envelope(id, event_id, type, lead_id, at, version, payload)::text
             INTO out_env;
        out_lead := r.id; out_status := 'created'; out_type := 'lead.created';
        RETURN NEXT;
    END LOOP;
END $$;
