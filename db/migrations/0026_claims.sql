-- 0026_claims: claims from the pool, counted per rep and day for the team's daily
-- claim limit (POST /v1/leads/{id}/claim). One row per successful claim; the timeline
-- has the same claim with who and why.
CREATE TABLE lead_claims (
    id      bigserial PRIMARY KEY,
    rep_id  text NOT NULL REFERENCES reps (id),
    lead_id text NOT NULL REFERENCES leads (id),
    team    text,
    at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX lead_claims_rep ON lead_claims (rep_id, at);

-- Searching leads by name, company, e-mail or phone (GET /v1/leads?q=).
CREATE EXTENSION IF NOT EXISTS pg_trgm;
