-- 0052_score_breakdown_codes: a routed lead's score breakdown stored once, compactly
-- (docs/router.md, "Scorecard grading").
--
-- The router's batch path wrote each lead's breakdown (about 620 bytes of JSON) twice:
-- in leads.score_breakdown and again in the 'graded' timeline entry, parsed from text
-- both times. It now stores one integer per breakdown entry, the rule being an index
-- into the batch's dictionary of rule ids (route_explanations.rules, in the row that
-- already holds the batch's dictionary of reps): in the lead (breakdown_dict,
-- breakdown_codes, with score_breakdown left NULL) and in the 'graded' entry (keys
-- breakdown_dict and breakdown_codes instead of breakdown). lf_score_breakdown() and
-- lf_timeline_data() decode them (db/functions/60_assignment_explanations.sql) and the
-- API's lead view reads through the former, so readers see what they saw before.
-- Leads graded before, or graded again lead by lead (re-grades keep writing JSON),
-- keep score_breakdown.
--
-- Adds nullable columns only: no table is rewritten (leads included).
ALTER TABLE route_explanations ADD COLUMN rules text[]; -- rule ids; rule r is rules[r + 1]

ALTER TABLE leads ADD COLUMN breakdown_dict bigint,      -- route_explanations.id
                  ADD COLUMN breakdown_codes integer[];  -- one code per breakdown entry
