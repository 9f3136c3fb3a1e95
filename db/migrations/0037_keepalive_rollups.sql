-- 0037_keepalive_rollups: analytics counts recycled and reactivated deals and what
-- became of them (docs/analytics.md#recycled-and-reactivated-deals), folded exactly once
-- from the outbox like the other rollups (lf_analytics_keepalive,
-- db/functions/50_lf_analytics_keepalive.sql).
--
-- rollup_keepalive_daily: per day (Asia/Shanghai, the day it happened), kind and the
--   lead's team: deals recycled to the pool (kind 'recycled', lead.recycled) or lost
--   deals offered again as new opportunities (kind 'reactivated', deal.reactivated),
--   and closings of such deals that day: a deal won or lost after it had been recycled
--   (won later / lost again), a reactivated opportunity won or lost.
CREATE TABLE rollup_keepalive_daily (
    day        date NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('recycled', 'reactivated')),
    team       text NOT NULL DEFAULT '',
    deals      bigint NOT NULL DEFAULT 0,
    won        bigint NOT NULL DEFAULT 0,
    lost       bigint NOT NULL DEFAULT 0,
    won_amount numeric NOT NULL DEFAULT 0,
    PRIMARY KEY (day, kind, team)
);

-- Reactivated opportunities have their own funnel, apart from inbound leads (which
-- rollup_funnel counts): the same columns, and per reactivated deal the stage it is in,
-- its amount and the stages it entered. Its lead_id is text compared as text (the
-- outbox's lead id cast to text), whatever type lead ids have.
CREATE TABLE rollup_funnel_reactivated (
    stage         text PRIMARY KEY,
    deals_now     bigint NOT NULL DEFAULT 0,
    amount_now    numeric NOT NULL DEFAULT 0,
    deals_reached bigint NOT NULL DEFAULT 0
);
CREATE TABLE analytics_reactivated (
    lead_id text PRIMARY KEY,
    stage   text NOT NULL DEFAULT 'new',
    amount  numeric,
    reached text[] NOT NULL DEFAULT '{new}'
);
