#!/usr/bin/env bash
# bench/list_plans.sh [LEADS=1000000]: the query plans of GET /v1/leads and GET /v1/pool
# on a large table (docs/router.md, "Lists and the agenda").
#
# Starts a private PostgreSQL, migrates it, writes LEADS leads straight into the table
# (200 reps in 4 teams under 10 managers; 20 leads per second of created_at, so many
# share one; 2% in the pool; grades, channels and stages spread evenly), ANALYZEs, and
# prints EXPLAIN (ANALYZE, BUFFERS) of the statements the handlers build (selecting l.id;
# the projection does not change the plan). The figures in docs/router.md are one run.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. bench/lib.sh
LEADS=${1:-1000000}
lf_bench_pg_only
export LEADFLOW_DATABASE_URL=postgresql://leadflow@127.0.0.1:$PG/leadflow
build/bin/leadflow-migrate >/dev/null
lf_say "writing $LEADS leads"
psql -qX "$LEADFLOW_DATABASE_URL" -v n="$LEADS" <<'SQL'
SET synchronous_commit = off;
INSERT INTO reps (id, name, team, manager)
SELECT 'rep' || g, 'Rep ' || g, (ARRAY['east','south','north','west'])[1 + g % 4], 'mgr' || (g % 10)
  FROM generate_series(1, 200) g;
INSERT INTO reps (id, name, team) SELECT 'mgr' || g, 'Mgr ' || g, 'hq' FROM generate_series(0, 9) g;
ALTER TABLE leads DISABLE TRIGGER USER;
INSERT INTO leads (id, channel, phone, name, company, created_at, updated_at, grade, owner,
                   team, stage, assigned_at, pool_reason, pool_since)
SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(g), 12, '0'))::uuid,
       (ARRAY['web_form','phone','trade_show','partner','api','referral'])[1 + g % 6],
       '+86138' || lpad((g % 100000000)::text, 8, '0'), '客户' || g, 'Company ' || (g % 50000),
       timestamptz '2026-01-01' + (g / 20) * interval '1 second',
       timestamptz '2026-01-01' + (g / 20) * interval '1 second' + (g % 997) * interval '1 minute',
       (ARRAY['A','B','C','D'])[1 + g % 4],
       CASE WHEN g % 50 = 0 THEN NULL ELSE 'rep' || (1 + g % 200) END,
       (ARRAY['east','south','north','west'])[1 + g % 4],
       (ARRAY['new','contacted','qualified','proposal','won','lost'])[1 + g % 6],
       timestamptz '2026-01-01' + (g / 20) * interval '1 second',
       CASE WHEN g % 50 = 0 THEN 'no_eligible_rep' END,
       CASE WHEN g % 50 = 0 THEN timestamptz '2026-01-01' + (g / 20) * interval '1 second' END
  FROM generate_series(1, :n) g;
ALTER TABLE leads ENABLE TRIGGER USER;
-- (the triggers that write lead_search were off: filled here as 0041 fills it)
INSERT INTO lead_search (lead_id, doc)
SELECT l.id, lower((coalesce(l.name, '') || ' ' || coalesce(l.company, '') || ' ' ||
                    coalesce(l.email, '') || ' ' || coalesce(l.phone, '')) COLLATE "C")
  FROM leads l;
VACUUM ANALYZE leads;
VACUUM ANALYZE lead_search;
SQL
explain() {
    echo "=== $1"
    psql -qX "$LEADFLOW_DATABASE_URL" -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) $2" |
        grep -E 'Scan|Cond|Filter|Removed|Execution'
}
ORDER="ORDER BY l.created_at DESC, l.id DESC LIMIT 51"
explain "page 1, newest first" "SELECT l.id FROM leads l $ORDER"
explain "a page deep in the list (cursor)" "SELECT l.id FROM leads l WHERE (l.created_at, l.id) <
  (timestamptz '2026-01-15', uuid '00000000-0000-7000-8000-0000000f4240') $ORDER"
explain "owner=rep17 (a rep key)" "SELECT l.id FROM leads l WHERE l.owner = 'rep17' $ORDER"
explain "team=east" "SELECT l.id FROM leads l WHERE l.team = 'east' $ORDER"
explain "pool=true" "SELECT l.id FROM leads l WHERE l.pool_reason IS NOT NULL $ORDER"
explain "order=updated&updated_after" "SELECT l.id FROM leads l
  WHERE l.updated_at > '2026-01-10T00:00:00Z' ORDER BY l.updated_at, l.id LIMIT 501"
explain "q=客户123456" "SELECT l.id FROM leads l WHERE l.id IN (SELECT s.lead_id FROM lead_search s
  WHERE s.doc LIKE '%客户123456%') $ORDER"
explain "team=east&stage=new" "SELECT l.id FROM leads l WHERE l.team = 'east' AND l.stage = 'new' $ORDER"
explain "a manager of 20 reps" "SELECT l.id FROM leads l WHERE (l.owner = 'mgr7' OR
  l.owner IN (SELECT lf_reps_reachable('mgr7'))) $ORDER"
explain "GET /v1/pool?team=east" "SELECT l.id FROM leads l WHERE l.pool_reason IS NOT NULL
  AND l.stage NOT IN ('won', 'lost') AND l.team = 'east'
  AND lf_caller_sees_pool('admin', NULL, l.team) ORDER BY l.pool_since, l.id LIMIT 200"
explain "grade=A&channel=web_form" "SELECT l.id FROM leads l WHERE l.grade = 'A' AND l.channel = 'web_form' $ORDER"
explain "grade=A&channel=phone (no lead has both)" "SELECT l.id FROM leads l WHERE l.grade = 'A' AND l.channel = 'phone' $ORDER"
