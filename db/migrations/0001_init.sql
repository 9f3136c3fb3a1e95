-- 0001_init: the system of record for leadflow's foundation.
-- Reps, leads with their grading and assignment, the append-only timeline, the
-- transactional outbox with per-consumer acknowledgements, timers (whose index lives
-- in Redis), notifications, and the first analytics rollup.

CREATE TABLE reps (
    id             text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9._-]{1,64}$'),
    name           text NOT NULL,
    team           text NOT NULL DEFAULT 'default',
    manager        text,
    skills         text[] NOT NULL DEFAULT '{}',
    regions        text[] NOT NULL DEFAULT '{}',
    grades         text[] NOT NULL DEFAULT '{}',
    capacity       integer NOT NULL DEFAULT 30 CHECK (capacity >= 0),
    weight         integer NOT NULL DEFAULT 1 CHECK (weight >= 1),
    active         boolean NOT NULL DEFAULT true,
    timezone       text NOT NULL DEFAULT 'Asia/Shanghai',
    work_hours     jsonb,
    out_of_office  jsonb NOT NULL DEFAULT '[]',
    ignore_shift   boolean NOT NULL DEFAULT false,
    open_count     integer NOT NULL DEFAULT 0 CHECK (open_count >= 0),
    assigned_total bigint NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE leads (
    id                text PRIMARY KEY,
    channel           text NOT NULL,
    source            text,
    name              text,
    company           text,
    email             text,
    phone             text,
    need              text,
    budget_min        numeric,
    budget_max        numeric,
    currency          text,
    budget_raw        text,
    urgency           text CHECK (urgency IN ('high', 'medium', 'low')),
    decision_maker    boolean,
    region            text,
    industry          text,
    external_id       text,
    extra             jsonb NOT NULL DEFAULT '{}',
    raw               jsonb,          -- the submission as received, for audit
    idempotency_key   text,           -- "<key id>:<Idempotency-Key header>"
    created_at        timestamptz NOT NULL DEFAULT now(),
    grade             char(1) CHECK (grade IN ('A', 'B', 'C', 'D')),
    score             integer,
    score_breakdown   jsonb,
    graded_at         timestamptz,
    owner             text REFERENCES reps (id),
    assignment_reason text,
    assigned_at       timestamptz,
    queue             text,           -- fallback queue when nobody was eligible
    stage             text NOT NULL DEFAULT 'new',
    stage_changed_at  timestamptz NOT NULL DEFAULT now(),
    first_contact_at  timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (phone IS NOT NULL OR email IS NOT NULL)
);
CREATE UNIQUE INDEX leads_idempotency ON leads (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE UNIQUE INDEX leads_external ON leads (channel, external_id)
    WHERE external_id IS NOT NULL;
CREATE INDEX leads_owner ON leads (owner) WHERE owner IS NOT NULL;
CREATE INDEX leads_phone ON leads (phone) WHERE phone IS NOT NULL;
CREATE INDEX leads_email ON leads (email) WHERE email IS NOT NULL;
CREATE INDEX leads_created ON leads (created_at);

-- The timeline: append-only. Corrections are new entries, never updates.
CREATE TABLE lead_events (
    id      bigserial PRIMARY KEY,
    lead_id text NOT NULL REFERENCES leads (id),
    at      timestamptz NOT NULL DEFAULT now(),
    type    text NOT NULL,
    actor   text,
    data    jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX lead_events_lead ON lead_events (lead_id, id);

-- Assignment decisions with every candidate and why it was chosen or skipped.
CREATE TABLE assignments (
    id          bigserial PRIMARY KEY,
    lead_id     text NOT NULL REFERENCES leads (id),
    at          timestamptz NOT NULL DEFAULT now(),
    rep_id      text REFERENCES reps (id),
    queue       text,
    reason      text NOT NULL,
    candidates  jsonb NOT NULL DEFAULT '[]',
    kind        text NOT NULL DEFAULT 'initial'  -- initial | reassign
);
CREATE INDEX assignments_lead ON assignments (lead_id);

-- Fairness ledger: rotation state per team (the per-rep counts live on reps).
CREATE TABLE routing_ledger (
    team       text PRIMARY KEY,
    state      jsonb NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Transactional outbox: written in the same transaction as the change it announces.
CREATE TABLE outbox (
    id       bigserial PRIMARY KEY,
    event_id uuid NOT NULL UNIQUE,
    type     text NOT NULL,
    lead_id  text,
    at       timestamptz NOT NULL DEFAULT now(),
    version  integer NOT NULL DEFAULT 1,
    payload  jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX outbox_type ON outbox (type, id);

CREATE TABLE consumer_acks (
    consumer text NOT NULL,
    event_id bigint NOT NULL,
    at       timestamptz NOT NULL DEFAULT now(),
    error    text,          -- set when the event could not be applied (set aside)
    PRIMARY KEY (consumer, event_id)
);

CREATE TABLE consumer_cursors (
    consumer text PRIMARY KEY,
    safe_id  bigint NOT NULL DEFAULT 0
);

-- The envelope every service puts on the wire, built in one place.
CREATE FUNCTION lf_rfc3339(t timestamptz) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') $$;

CREATE FUNCTION lf_envelope(seq bigint, event_id uuid, type text, lead_id text,
                            at timestamptz, version integer, payload jsonb) RETURNS json
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT json_build_object('v', version, 'seq', seq, 'event_id', event_id,
                                   'type', type, 'lead_id', lead_id,
                                   'at', lf_rfc3339(at), 'payload', payload) $$;

-- Timers: the truth. Redis holds only the index (a sorted set by due time).
CREATE TABLE timers (
    id       bigserial PRIMARY KEY,
    lead_id  text NOT NULL REFERENCES leads (id),
    kind     text NOT NULL,          -- sla_first_contact, ...
    step     integer NOT NULL DEFAULT 0,
    due_at   timestamptz NOT NULL,
    state    text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'fired', 'cancelled')),
    fired_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (lead_id, kind, step)
);
CREATE INDEX timers_pending ON timers (due_at) WHERE state = 'pending';

CREATE TABLE notifications (
    id           bigserial PRIMARY KEY,
    timer_id     bigint UNIQUE REFERENCES timers (id),
    lead_id      text NOT NULL REFERENCES leads (id),
    rep_id       text,
    kind         text NOT NULL,
    message      text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz,
    attempts     integer NOT NULL DEFAULT 0
);
CREATE INDEX notifications_undelivered ON notifications (id) WHERE delivered_at IS NULL;

-- Analytics: leads per day, channel and grade (day in the sales team's time zone).
CREATE TABLE rollup_leads_daily (
    day     date NOT NULL,
    channel text NOT NULL,
    grade   text NOT NULL,
    leads   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, channel, grade)
);

-- API keys: a key belongs to a channel (web_form keys may be public and are tied
-- to origins), may carry a rep identity, and may be an admin key.
CREATE TABLE api_keys (
    id              text PRIMARY KEY,
    key_hash        text NOT NULL UNIQUE,   -- hex SHA-256 of the key
    channel         text,
    rep_id          text REFERENCES reps (id),
    is_admin        boolean NOT NULL DEFAULT false,
    allowed_origins text[] NOT NULL DEFAULT '{}',
    rate_per_minute integer NOT NULL DEFAULT 600,
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz
);

-- The canonical lead as the router and scorecard read it.
CREATE FUNCTION lf_lead_canonical(l leads) RETURNS jsonb
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT jsonb_build_object(
        'id', l.id, 'channel', l.channel, 'source', l.source, 'name', l.name,
        'company', l.company, 'email', l.email, 'phone', l.phone,
        'budget', CASE WHEN l.budget_min IS NULL AND l.budget_max IS NULL THEN NULL
                  ELSE jsonb_build_object('min', l.budget_min, 'max', l.budget_max,
                                          'currency', l.currency, 'raw', l.budget_raw) END,
        'urgency', l.urgency, 'decision_maker', l.decision_maker, 'region', l.region,
        'industry', l.industry, 'need', l.need, 'external_id', l.external_id,
        'extra', l.extra, 'created_at', lf_rfc3339(l.created_at)) $$;

-- A rep as the assignment pool reads it (nulls left out: absent means "any").
CREATE FUNCTION lf_rep_json(r reps) RETURNS jsonb
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT jsonb_strip_nulls(jsonb_build_object(
        'id', r.id, 'name', r.name, 'team', r.team, 'manager', r.manager,
        'skills', to_jsonb(r.skills), 'regions', to_jsonb(r.regions),
        'grades', to_jsonb(r.grades), 'capacity', r.capacity, 'weight', r.weight,
        'active', r.active, 'timezone', r.timezone, 'work_hours', r.work_hours,
        'out_of_office', r.out_of_office, 'ignore_shift', r.ignore_shift,
        'open_count', r.open_count, 'assigned_total', r.assigned_total)) $$;
