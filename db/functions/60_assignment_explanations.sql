-- assignment_explanations: repeatable; first created by 0003_router.sql. Edit here, not in a migration.
-- One row per candidate of every decision: who was chosen, who was skipped and why.
--   SELECT rep, skip, count(*) FROM assignment_explanations
--    WHERE at > now() - interval '1 day' AND NOT chosen GROUP BY 1, 2;
DROP VIEW IF EXISTS assignment_explanations CASCADE;
CREATE VIEW assignment_explanations AS
SELECT a.id AS assignment_id, a.lead_id, a.at, a.kind, a.rep_id AS assigned_to, a.queue,
       a.reason, c.ord AS position, c.item ->> 'rep' AS rep,
       coalesce((c.item ->> 'eligible')::boolean, false) AS eligible,
       coalesce((c.item ->> 'chosen')::boolean, false) AS chosen,
       c.item ->> 'skip' AS skip
FROM assignments a
CROSS JOIN LATERAL jsonb_array_elements(a.candidates) WITH ORDINALITY AS c(item, ord);
