-- 0047_lead_first_contact: the first-contact SLA deadline of a lead's current owner in a
-- narrow table of its own, written by the scheduler when it sets the clock
-- (services/scheduler/clock.c), read by v_lead_outcomes (65_v_lead_outcomes.sql).
-- Until now the scheduler wrote it into leads.first_contact_due_at: a second version of
-- the wide lead row for every assignment, in the whole stack mostly a non-HOT update
-- with an entry in each of the row's indexes, the largest part of the scheduler's
-- PostgreSQL CPU per lead (docs/benchmarks.md). Here it is one small row and one
-- primary-key entry, replaced when the lead is assigned again.
-- Nothing is copied: leads.first_contact_due_at keeps the deadlines written before, and
-- the view reads it for a lead that has no row here. No foreign key (0040): written
-- only by the scheduler, under the lead's row lock; lf_orphans() checks the link.
CREATE TABLE lead_first_contact (
    lead_id uuid PRIMARY KEY,         -- leads.id
    due_at  timestamptz NOT NULL      -- the reminder's deadline (team business time)
);
COMMENT ON COLUMN leads.first_contact_due_at IS
    'No longer written since 0047 (lead_first_contact): the deadlines set before it';
