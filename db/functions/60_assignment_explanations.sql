-- assignment_explanations: repeatable; first created by 0003_router.sql. Edit here, not in a migration.
-- One row per candidate of every decision: who was chosen, who was skipped and why.
--   SELECT rep, skip, count(*) FROM assignment_explanations
--    WHERE at > now() - interval '1 day' AND NOT chosen GROUP BY 1, 2;
-- A decision's candidates are either JSON (assignments.candidates: older rows,
-- reassignments, moves by people) or codes (assignments.cand, written by the router's
-- batch path, 0045_route_explanations.sql): rep << 8 | sticky << 5 | chosen << 4 | skip,
-- rep indexing the batch's dictionary route_explanations.reps, skip indexing the
-- reasons below (0 = eligible; the order of services/router/assign.c).
DROP VIEW IF EXISTS assignment_explanations CASCADE;

CREATE OR REPLACE FUNCTION lf_skip_name(code integer) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT (ARRAY['excluded', 'inactive', 'paused', 'out_of_office', 'off_shift',
                        'grade', 'skill', 'region', 'at_capacity'])[code & 15] $$;

CREATE VIEW assignment_explanations AS
SELECT a.id AS assignment_id, a.lead_id, a.at, a.kind, a.rep_id AS assigned_to, a.queue,
       a.reason, c.ord AS position, c.item ->> 'rep' AS rep,
       coalesce((c.item ->> 'eligible')::boolean, false) AS eligible,
       coalesce((c.item ->> 'chosen')::boolean, false) AS chosen,
       c.item ->> 'skip' AS skip
FROM assignments a
CROSS JOIN LATERAL jsonb_array_elements(a.candidates) WITH ORDINALITY AS c(item, ord)
UNION ALL
SELECT a.id, a.lead_id, a.at, a.kind, a.rep_id, a.queue, a.reason, c.ord,
       e.reps[(c.code >> 8) + 1], c.code & 15 = 0, c.code & 16 <> 0, lf_skip_name(c.code)
FROM assignments a
JOIN route_explanations e ON e.id = a.explanation
CROSS JOIN LATERAL unnest(a.cand) WITH ORDINALITY AS c(code, ord);

-- The candidates of one assignment as the timeline shows them:
-- [{"rep", "eligible", "skip", "chosen"[, "sticky"]}], in the order considered.
CREATE OR REPLACE FUNCTION lf_assignment_candidates(p_assignment bigint) RETURNS jsonb
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT coalesce((SELECT a.candidates FROM assignments a
                      WHERE a.id = p_assignment AND a.cand IS NULL),
                    (SELECT coalesce(jsonb_agg(jsonb_build_object('rep',
                                e.reps[(c.code >> 8) + 1], 'eligible', c.code & 15 = 0,
                                'skip', lf_skip_name(c.code), 'chosen', c.code & 16 <> 0)
                              || CASE WHEN c.code & 32 <> 0 THEN '{"sticky": true}'::jsonb
                                      ELSE '{}'::jsonb END ORDER BY c.ord), '[]')
                       FROM assignments a JOIN route_explanations e ON e.id = a.explanation
                      CROSS JOIN LATERAL unnest(a.cand) WITH ORDINALITY AS c(code, ord)
                      WHERE a.id = p_assignment),
                    '[]')
$$;

-- A score breakdown written by the router's batch path (0052_score_breakdown_codes.sql)
-- as readers see it: [{"rule", "points"}], in the scorecard's order. A code is
-- points * 4096 + rule (0 <= rule < 4096, points may be negative), rule indexing the
-- batch's dictionary route_explanations.rules (services/router/batch.c). NULL when
-- p_dict is NULL.
CREATE OR REPLACE FUNCTION lf_score_breakdown(p_dict bigint, p_codes integer[])
    RETURNS jsonb
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT CASE WHEN p_dict IS NOT NULL THEN
           coalesce((SELECT jsonb_agg(jsonb_build_object('rule',
                                 e.rules[(c.code & 4095) + 1],
                                 'points', (c.code - (c.code & 4095)) / 4096)
                                 ORDER BY c.ord)
                       FROM route_explanations e
                      CROSS JOIN LATERAL unnest(p_codes) WITH ORDINALITY AS c(code, ord)
                      WHERE e.id = p_dict), '[]') END
$$;

-- A timeline entry's data as readers see it: an entry written by the router's batch
-- path names its assignment ("assignment": id) instead of copying the candidates, and
-- its 'graded' entry carries the breakdown as codes (breakdown_dict, breakdown_codes);
-- both are put back here.
CREATE OR REPLACE FUNCTION lf_timeline_data(p_data jsonb) RETURNS jsonb
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN p_data ? 'assignment' AND NOT p_data ? 'candidates'
                      THEN (p_data - 'assignment') || jsonb_build_object('candidates',
                           lf_assignment_candidates((p_data ->> 'assignment')::bigint))
                      WHEN p_data ? 'breakdown_codes' AND NOT p_data ? 'breakdown'
                      THEN (p_data - 'breakdown_dict' - 'breakdown_codes')
                           || jsonb_build_object('breakdown', lf_score_breakdown(
                                  (p_data ->> 'breakdown_dict')::bigint,
                                  (p_data ->> 'breakdown_codes')::integer[]))
                      ELSE p_data END $$;

-- The timeline entries one lead_events row stands for, in order, as (k, type, data):
-- itself, or, for a decision of the router's batch path (an 'assigned' or 'queued' row
-- whose data carries the grade under "graded"), the 'graded' entry first, then the
-- decision without that key: what the lead-by-lead path writes as two rows. The data
-- is as stored; readers pass it through lf_timeline_data().
CREATE OR REPLACE FUNCTION lf_timeline_entries(p_type text, p_data jsonb,
                                               OUT k integer, OUT type text,
                                               OUT data jsonb)
    RETURNS SETOF record
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT 1, 'graded', p_data -> 'graded'
           WHERE p_type IN ('assigned', 'queued') AND p_data ? 'graded'
          UNION ALL
          SELECT 2, p_type, CASE WHEN p_type IN ('assigned', 'queued')
                                 THEN p_data - 'graded' ELSE p_data END $$;
