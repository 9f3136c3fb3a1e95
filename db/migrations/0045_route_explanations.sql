-- 0045_route_explanations: the router's decisions explained compactly
-- (docs/router.md, "Why did this lead go there?").
--
-- The router used to store every candidate of every decision as JSON twice: in
-- assignments.candidates and in the 'assigned' timeline entry, about 5 kB per lead with
-- 200 reps. Decisions written by the router's batch path now store, per assignment, one
-- integer per candidate (assignments.cand: rep << 8 | sticky << 5 | chosen << 4 | skip
-- reason), the rep being an index into the batch's dictionary of rep ids, one row of
-- route_explanations per batch (assignments.explanation); the timeline entry names its
-- assignment. The view assignment_explanations and the API's timeline decode them
-- (db/functions/60_assignment_explanations.sql), so readers see what they saw before.
-- Older rows, reassignments and moves by people keep their JSON candidates.
--
-- Adds nullable columns only: no table is rewritten.
CREATE TABLE route_explanations (
    id   bigserial PRIMARY KEY,
    at   timestamptz NOT NULL DEFAULT now(),
    reps text[] NOT NULL -- rep ids; a candidate's rep r is reps[r + 1]
);

ALTER TABLE assignments ADD COLUMN explanation bigint, -- route_explanations.id
                        ADD COLUMN cand integer[];     -- one code per candidate, in order
