-- 0003_router: what the router needs to cache its pool safely, to find known
-- customers fast, and to explain its decisions in SQL.

-- Every change to a rep row bumps `version`, so a router can tell with one cheap
-- aggregate (count, sum(version)) whether its cached pool still matches the table.
-- updated_at moves only when a rep's settings change, not when the router counts
-- an open lead.
ALTER TABLE reps ADD COLUMN version bigint NOT NULL DEFAULT 0;

CREATE FUNCTION lf_reps_touch() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := OLD.version + 1;
    IF (NEW.name, NEW.team, NEW.manager, NEW.skills, NEW.regions, NEW.grades,
        NEW.capacity, NEW.weight, NEW.active, NEW.timezone, NEW.work_hours,
        NEW.out_of_office, NEW.ignore_shift)
       IS DISTINCT FROM
       (OLD.name, OLD.team, OLD.manager, OLD.skills, OLD.regions, OLD.grades,
        OLD.capacity, OLD.weight, OLD.active, OLD.timezone, OLD.work_hours,
        OLD.out_of_office, OLD.ignore_shift) THEN
        NEW.updated_at := clock_timestamp();
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER reps_touch BEFORE UPDATE ON reps
    FOR EACH ROW EXECUTE FUNCTION lf_reps_touch();

-- Who wrote the fairness ledger last ("<instance>:<n>"). A router whose own token
-- is still there knows no other instance has moved the rotation since.
ALTER TABLE routing_ledger ADD COLUMN writer text;

-- Known customers: the newest assigned lead of the same company or e-mail domain.
CREATE INDEX leads_owner_company ON leads (lower(company), created_at)
    WHERE owner IS NOT NULL AND company IS NOT NULL;
CREATE INDEX leads_owner_domain ON leads (lower(split_part(email, '@', 2)), created_at)
    WHERE owner IS NOT NULL AND email IS NOT NULL;
CREATE INDEX assignments_rep ON assignments (rep_id) WHERE rep_id IS NOT NULL;

-- One row per candidate of every decision: who was chosen, who was skipped and why.
--   SELECT rep, skip, count(*) FROM assignment_explanations
--    WHERE at > now() - interval '1 day' AND NOT chosen GROUP BY 1, 2;
CREATE VIEW assignment_explanations AS
SELECT a.id AS assignment_id, a.lead_id, a.at, a.kind, a.rep_id AS assigned_to, a.queue,
       a.reason, c.ord AS position, c.item ->> 'rep' AS rep,
       coalesce((c.item ->> 'eligible')::boolean, false) AS eligible,
       coalesce((c.item ->> 'chosen')::boolean, false) AS chosen,
       c.item ->> 'skip' AS skip
FROM assignments a
CROSS JOIN LATERAL jsonb_array_elements(a.candidates) WITH ORDINALITY AS c(item, ord);
