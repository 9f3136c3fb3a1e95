-- 0035_keepalive: the clocks that keep open deals moving (stale-deal watch, recycling,
-- reactivation of lost deals, digests) and the deadlines as they were set
-- (docs/pipeline.md#keeping-deals-alive).
--
-- Timers gain what the new kinds need: a digest timer belongs to a team, not a lead;
-- a stale timer remembers whose clock it is (rep_id) and what its step needs (data:
-- the cool-down of a recycle, the deadline it judges). The kinds:
--   stale       step = generation * 10 + phase (0 warn the owner, 1 warn the manager,
--               2 recycle); only the lead's current generation fires (leads.stale_gen).
--   reactivate  a lost deal offered again as a new opportunity.
--   digest      a team's 漏跟进预警, one per team and due time.
ALTER TABLE timers
    ALTER COLUMN lead_id DROP NOT NULL,
    ADD COLUMN team   text,
    ADD COLUMN rep_id text,
    ADD COLUMN data   jsonb,
    ADD CONSTRAINT timers_lead_or_team CHECK (lead_id IS NOT NULL OR kind = 'digest');
CREATE UNIQUE INDEX timers_digest ON timers (team, due_at) WHERE kind = 'digest';

-- The clocks of a lead as they were set, so reports judge against the deadline that
-- applied when it was set (not against today's configuration):
--   first_contact_due_at  the first-contact SLA deadline of the current owner;
--   stale_gen             bumped whenever the stale clock restarts or stops: timers of
--                         an older generation are ignored when they come due;
--   stale_since           when the running stale clock started (NULL: none runs);
--   stale_due_at          when its owner is (or was) warned.
ALTER TABLE leads
    ADD COLUMN first_contact_due_at timestamptz,
    ADD COLUMN stale_gen            integer NOT NULL DEFAULT 0,
    ADD COLUMN stale_since          timestamptz,
    ADD COLUMN stale_due_at         timestamptz;

-- Deals taken from their owner because they went stale: the cool-down during which
-- that owner may not get the deal back, the digest's figures and the analytics of
-- what became of recycled deals.
CREATE TABLE lead_recycles (
    id             bigserial PRIMARY KEY,
    lead_id        text NOT NULL REFERENCES leads (id),
    timer_id       bigint UNIQUE REFERENCES timers (id),
    from_rep       text NOT NULL,
    team           text,
    stage          text NOT NULL,
    at             timestamptz NOT NULL DEFAULT now(),
    cooldown_until timestamptz NOT NULL
);
CREATE INDEX lead_recycles_lead ON lead_recycles (lead_id, at);
CREATE INDEX lead_recycles_at ON lead_recycles (at);

-- Every digest sent: its team, recipient, period and figures (per rep and the pool).
CREATE TABLE digests (
    id           bigserial PRIMARY KEY,
    timer_id     bigint UNIQUE REFERENCES timers (id),
    team         text NOT NULL,
    to_rep       text,
    period_start timestamptz NOT NULL,
    period_end   timestamptz NOT NULL,
    figures      jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX digests_team ON digests (team, period_end);

-- A digest is a notification of a team, about no single lead.
ALTER TABLE notifications ALTER COLUMN lead_id DROP NOT NULL;
