-- 0030_notify: notifications delivered where people work, losing nothing.
--
-- A notification (notifications, as before) is fanned out to every destination of
-- its rep and of the rep's team: one notify_deliveries row per (notification,
-- destination), with its state. Destinations themselves are notify_dests rows keyed
-- by what they are (type, URL, whom to mention), so the rate limit, the consecutive
-- failures and the pause belong to the destination, shared by every scheduler.
-- The fan-out trigger and the lease/record functions are in db/functions/9*_lf_notify_*.sql.

-- The destinations a rep set: [{"type", "url", "secret", "to", "format"}]. Secrets and
-- robot URLs are never shown by the API (lf_notify_public masks them).
ALTER TABLE reps ADD COLUMN notify jsonb NOT NULL DEFAULT '[]';

-- A notice about a destination (paused) concerns no lead.
ALTER TABLE notifications ALTER COLUMN lead_id DROP NOT NULL;

-- Team destinations come from config/routing.json (teams.<id>.notify); the scheduler
-- copies them here at start so the fan-out can read them, with the team's working
-- time for the next weeks from its business calendar (quiet hours). Team '' holds the
-- defaults (teams not listed); team '*' is the global LEADFLOW_WEBHOOK_URL
-- destination: it gets every notification.
CREATE TABLE notify_teams (
    team       text PRIMARY KEY,
    notify     jsonb NOT NULL DEFAULT '[]',
    manager    text,                         -- told when a team destination is paused
    open_hours tstzmultirange,               -- working time ahead; NULL: never quiet
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE notify_dests (
    key          text PRIMARY KEY,           -- md5(type|url|to): one per real destination
    type         text NOT NULL CHECK (type IN ('wecom', 'dingtalk', 'feishu', 'slack',
                                               'webhook', 'email')),
    url          text,
    secret       text,
    to_addr      text,
    format       text,
    owner_rep    text,                       -- whose it is: for the pause notice
    owner_team   text,
    next_send_at timestamptz NOT NULL DEFAULT '-infinity', -- rate limit and Retry-After
    fails        integer NOT NULL DEFAULT 0, -- consecutive failed messages
    failing_since timestamptz,               -- first failure since the last success
    paused_until timestamptz,                -- set once it kept failing too long
    last_error   text,
    last_ok_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE notify_deliveries (
    id              bigserial PRIMARY KEY,
    notification_id bigint NOT NULL REFERENCES notifications (id),
    dest_key        text NOT NULL REFERENCES notify_dests (key),
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'sending', 'sent', 'dead')),
    urgent          boolean NOT NULL DEFAULT false, -- escalations: no quiet hours
    next_at         timestamptz NOT NULL DEFAULT now(), -- not before (backoff, quiet hours)
    since           timestamptz NOT NULL DEFAULT now(), -- start of the max-age clock
    attempts        integer NOT NULL DEFAULT 0,
    batch           uuid,        -- X-Leadflow-Delivery: the rows sent as one message
    lease_until     timestamptz, -- while state = 'sending'
    leased_by       text,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    UNIQUE (notification_id, dest_key)
);
CREATE INDEX notify_deliveries_due ON notify_deliveries (dest_key, next_at)
    WHERE state IN ('pending', 'sending');
CREATE INDEX notify_deliveries_batch ON notify_deliveries (batch) WHERE batch IS NOT NULL;
CREATE INDEX notify_deliveries_state ON notify_deliveries (state, id);

-- Counters for /metrics, per destination type: rows sent, failed attempts, rows that
-- went dead, messages sent, and the delivery latency (created -> sent) histogram with
-- the buckets of lf_notify_record().
CREATE TABLE notify_stats (
    type          text PRIMARY KEY,
    sent          bigint NOT NULL DEFAULT 0,
    failed        bigint NOT NULL DEFAULT 0,
    dead          bigint NOT NULL DEFAULT 0,
    messages      bigint NOT NULL DEFAULT 0,
    latency_sum   double precision NOT NULL DEFAULT 0,
    latency_le    bigint[] NOT NULL DEFAULT '{0,0,0,0,0,0,0,0,0}'
);
INSERT INTO notify_stats (type)
    VALUES ('wecom'), ('dingtalk'), ('feishu'), ('slack'), ('webhook'), ('email');

-- notifications.delivered_at is now the first time any destination got it;
-- notifications.attempts is no longer counted (per delivery: notify_deliveries).
