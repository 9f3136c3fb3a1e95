-- lf_intake_commit: repeatable; first created by 0009_call_status.sql. Edit here, not in a migration.
CREATE OR REPLACE FUNCTION lf_intake_commit(batch jsonb)
RETURNS TABLE (out_job text, out_lead text, out_status text, out_type text, out_env text)
LANGUAGE plpgsql AS $$
DECLARE
    r        record;
    h        integer;
    locks    integer[];
    clean    jsonb;
    rest     jsonb;
    hit      uuid;
    own      text;
    sid      text;
    kind     text;
    created  timestamptz;
    last     text;
    lastdur  text;
BEGIN
    SELECT array_agg(DISTINCT hashtext(k.c) ORDER BY hashtext(k.c)) INTO locks
      FROM lf_batch_keys(batch) k;
    FOREACH h IN ARRAY coalesce(locks, '{}') LOOP
        PERFORM pg_advisory_xact_lock(727003, h);
    END LOOP;

    -- Split the batch: rows that cannot be a retry or a repeat inquiry, and the rest.
    WITH shared AS (
        SELECT DISTINCT k.pos FROM lf_batch_keys(batch) k
          JOIN (SELECT k2.c FROM lf_batch_keys(batch) k2 GROUP BY k2.c HAVING count(*) > 1) d
            ON d.c = k.c
    ), cls AS (
        SELECT t.o AS pos, t.x,
            (t.o IN (SELECT pos FROM shared)
             OR (t.x ->> 'idempotency_key' IS NOT NULL AND (
                   EXISTS (SELECT 1 FROM leads l WHERE l.idempotency_key = t.x ->> 'idempotency_key')
                OR EXISTS (SELECT 1 FROM lead_inquiries i
                            WHERE i.idempotency_key = t.x ->> 'idempotency_key')))
             OR (t.x ->> 'external_id' IS NOT NULL AND (
                   EXISTS (SELECT 1 FROM leads l WHERE l.channel = t.x ->> 'channel'
                              AND l.external_id = t.x ->> 'external_id')
                OR EXISTS (SELECT 1 FROM lead_inquiries i WHERE i.channel = t.x ->> 'channel'
                              AND i.external_id = t.x ->> 'external_id')))
             OR (t.x -> 'call' ->> 'call_sid' IS NOT NULL AND (
                   EXISTS (SELECT 1 FROM lead_inquiries i
                            WHERE i.call_sid = t.x -> 'call' ->> 'call_sid')
                OR EXISTS (SELECT 1 FROM lead_events e WHERE e.type = 'call'
                              AND e.data ->> 'call_sid' = t.x -> 'call' ->> 'call_sid')))
             OR (t.x ->> 'phone' IS NOT NULL AND EXISTS (
                   SELECT 1 FROM leads l WHERE l.phone = t.x ->> 'phone'
                      AND l.stage NOT IN ('won', 'lost')))
             OR (t.x ->> 'email' IS NOT NULL AND EXISTS (
                   SELECT 1 FROM leads l WHERE l.email = t.x ->> 'email'
                      AND l.stage NOT IN ('won', 'lost')))) AS slow
        FROM jsonb_array_elements(batch) WITH ORDINALITY AS t(x, o)
    )
    SELECT coalesce(jsonb_agg(cls.x ORDER BY cls.pos) FILTER (WHERE NOT cls.slow), '[]'),
           coalesce(jsonb_agg(cls.x ORDER BY cls.pos) FILTER (WHERE cls.slow), '[]')
      INTO clean, rest FROM cls;

    -- New people, all at once.
    RETURN QUERY
    WITH input AS (
        SELECT * FROM jsonb_to_recordset(clean) AS x(id uuid, channel text, source text,
            name text, company text, email text, phone text, need text, budget_min numeric,
            budget_max numeric, currency text, budget_raw text, urgency text,
            decision_maker boolean, region text, industry text, external_id text,
            extra jsonb, raw jsonb, idempotency_key text, call jsonb, phone_type text,
            phone_country text, flags jsonb, company_key text)
    ), ins AS (
        INSERT INTO leads (id, channel, source, name, company, email, phone, need,
            budget_min, budget_max, currency, budget_raw, urgency, decision_maker, region,
            industry, external_id, extra, raw, idempotency_key, customer_id, phone_type,
            phone_country, flags, company_key)
        SELECT i.id, i.channel, i.source, i.name, i.company, i.email, i.phone, i.need,
            i.budget_min, i.budget_max, i.currency, i.budget_raw, i.urgency,
            i.decision_maker, i.region, i.industry, i.external_id,
            coalesce(i.extra, '{}'), i.raw, i.idempotency_key,
            (SELECT c.id FROM customers c
              WHERE c.key = lf_customer_key(i.company_key, i.email, i.phone)),
            i.phone_type, i.phone_country, coalesce(i.flags, '[]'), i.company_key
          FROM input i
        ON CONFLICT DO NOTHING
        RETURNING leads.id, leads.channel, leads.source, leads.created_at
    ), tl AS (
        INSERT INTO lead_events (lead_id, at, type, data)
        SELECT ins.id, ins.created_at, 'created',
               jsonb_build_object('channel', ins.channel, 'source', ins.source) FROM ins
    ), tc AS (
        INSERT INTO lead_events (lead_id, at, type, data)
        SELECT ins.id, ins.created_at, 'call',
               jsonb_strip_nulls(jsonb_build_object('call_sid', i.call ->> 'call_sid',
                                                    'call', i.call))
          FROM ins JOIN input i ON i.id = ins.id WHERE i.call ->> 'call_sid' IS NOT NULL
    ), ob AS (
        INSERT INTO outbox (event_id, type, lead_id, at, payload)
        SELECT gen_random_uuid(), 'lead.created', ins.id, ins.created_at,
               jsonb_build_object('channel', ins.channel) FROM ins
        RETURNING outbox.lead_id,
                  lf_envelope(outbox.id, outbox.event_id, outbox.type, outbox.lead_id,
                              outbox.at, outbox.version, outbox.payload)::text AS env
    )
    SELECT ob.lead_id::text, ob.lead_id::text, 'created'::text, 'lead.created'::text, ob.env FROM ob;

    -- Every open lead a row of `rest` may be merged into is locked FOR SHARE first, in
    -- id order (the project's lock order: leads by id, then reps; docs/reliability.md).
    -- A stage move closing one of them (FOR NO KEY UPDATE) has either committed - the
    -- lead is skipped here and the merge below sees it closed - or waits until this
    -- batch commits. Without the lock, an inquiry read the lead as open while a move
    -- was closing it and landed on a won or lost deal: no new lead, no SLA.
    PERFORM 1 FROM leads l
     WHERE l.stage NOT IN ('won', 'lost')
       AND (l.phone IN (SELECT x ->> 'phone' FROM jsonb_array_elements(rest) x)
         OR l.email IN (SELECT x ->> 'email' FROM jsonb_array_elements(rest) x))
     ORDER BY l.id FOR SHARE;

    -- The others one by one, in the order they arrived.
    FOR r IN
        SELECT * FROM jsonb_to_recordset(rest) AS x(id uuid, kind text, channel text,
            source text, name text, company text, email text, phone text, need text,
            budget_min numeric, budget_max numeric, currency text, budget_raw text,
            urgency text, decision_maker boolean, region text, industry text,
            external_id text, extra jsonb, raw jsonb, idempotency_key text, call jsonb,
            phone_type text, phone_country text, flags jsonb, company_key text)
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
        IF hit IS NOT NULL AND sid IS NOT NULL AND r.call ->> 'status' IS NOT NULL THEN
            -- A call we know, reported again (Twilio's status callback, a PBX's hang-up
            -- event): a new status or duration goes on the timeline as its own entry;
            -- the same news again adds nothing.
            SELECT coalesce(e.data ->> 'status', e.data -> 'call' ->> 'status'),
                   coalesce(e.data ->> 'duration', e.data -> 'call' ->> 'duration')
              INTO last, lastdur
              FROM lead_events e
             WHERE e.lead_id = hit AND e.type IN ('call', 'call_status')
               AND e.data ->> 'call_sid' = sid
             ORDER BY e.id DESC LIMIT 1;
            IF last IS DISTINCT FROM r.call ->> 'status'
               OR (r.call ? 'duration' AND lastdur IS DISTINCT FROM r.call ->> 'duration') THEN
                INSERT INTO lead_events (lead_id, type, data)
                VALUES (hit, 'call_status', jsonb_strip_nulls(jsonb_build_object(
                    'call_sid', sid, 'status', r.call ->> 'status',
                    'duration', r.call -> 'duration', 'previous', last)));
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
         ORDER BY l.created_at DESC, l.id DESC LIMIT 1 FOR SHARE OF l;
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
            industry, external_id, extra, raw, idempotency_key, customer_id, phone_type,
            phone_country, flags, company_key)
        VALUES (r.id, r.channel, r.source, r.name, r.company, r.email, r.phone, r.need,
            r.budget_min, r.budget_max, r.currency, r.budget_raw, r.urgency,
            r.decision_maker, r.region, r.industry, r.external_id,
            coalesce(r.extra, '{}'), r.raw, r.idempotency_key,
            (SELECT c.id FROM customers c
              WHERE c.key = lf_customer_key(r.company_key, r.email, r.phone)),
            r.phone_type, r.phone_country, coalesce(r.flags, '[]'), r.company_key)
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
