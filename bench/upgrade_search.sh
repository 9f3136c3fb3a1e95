#!/usr/bin/env bash
# bench/upgrade_search.sh [LEADS=1000000]: 0041_lead_search on a big table. Makes a
# database at the schema before 0041 (0001-0040), writes LEADS leads as bench/list_plans.sh
# does, prints the plan of the lists' search (q=) with the old index on leads, times
# leadflow-migrate (0041's copy and index build, the later migrations, the function
# folder with its catch-up), then prints the new search's plans and the sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. bench/lib.sh
LEADS=${1:-1000000}
lf_bench_pg_only
export LEADFLOW_DATABASE_URL=postgresql://leadflow@127.0.0.1:$PG/leadflow
mkdir -p "$W/old/migrations" "$W/old/functions"
cp db/migrations/00[0-3]*.sql db/migrations/0040_*.sql "$W/old/migrations/"
LEADFLOW_MIGRATIONS_DIR=$W/old/migrations build/bin/leadflow-migrate >/dev/null 2>&1
lf_say "writing $LEADS leads (schema before 0041)"
psql -qX -v ON_ERROR_STOP=1 "$LEADFLOW_DATABASE_URL" -v n="$LEADS" >/dev/null <<'SQL'
SET synchronous_commit = off;
INSERT INTO reps (id, name, team, manager)
SELECT 'rep' || g, 'Rep ' || g, (ARRAY['east','south','north','west'])[1 + g % 4], 'mgr' || (g % 10)
  FROM generate_series(1, 200) g;
INSERT INTO leads (id, channel, phone, name, company, company_key, email, created_at,
                   updated_at, grade, owner, team, stage, assigned_at)
SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(g), 12, '0'))::uuid,
       (ARRAY['web_form','phone','trade_show','partner','api','referral'])[1 + g % 6],
       '+86138' || lpad((g % 100000000)::text, 8, '0'), '客户' || g, 'Company ' || (g % 50000),
       'company ' || (g % 50000),
       CASE WHEN g % 3 = 0 THEN 'buyer' || g || '@example' || (g % 977) || '.com' END,
       timestamptz '2026-01-01' + (g / 20) * interval '1 second',
       timestamptz '2026-01-01' + (g / 20) * interval '1 second',
       (ARRAY['A','B','C','D'])[1 + g % 4], 'rep' || (1 + g % 200),
       (ARRAY['east','south','north','west'])[1 + g % 4],
       (ARRAY['new','contacted','qualified','proposal','won','lost'])[1 + g % 6],
       timestamptz '2026-01-01' + (g / 20) * interval '1 second'
  FROM generate_series(1, :n) g;
VACUUM ANALYZE leads;
SQL
explain() {
    echo "=== $1"
    psql -qX "$LEADFLOW_DATABASE_URL" -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) $2" |
        grep -E 'Scan|Cond|Filter|Removed|Join|Execution'
}
ORDER="ORDER BY l.created_at DESC, l.id DESC LIMIT 51"
OLDQ="lower(coalesce(l.name, '') || ' ' || coalesce(l.company, '') || ' ' ||
  coalesce(l.email, '') || ' ' || coalesce(l.phone, ''))"
NEWQ="l.id IN (SELECT s.lead_id FROM lead_search s WHERE s.doc LIKE"
echo "--- before 0041 (trigram index leads_search on leads)"
explain "q=客户123456" "SELECT l.id FROM leads l WHERE $OLDQ LIKE '%客户123456%' $ORDER"
explain "q=company 1234 (20 leads)" "SELECT l.id FROM leads l WHERE $OLDQ LIKE '%company 1234 %' $ORDER"
explain "q=company (every lead)" "SELECT l.id FROM leads l WHERE $OLDQ LIKE '%company%' $ORDER"
explain "owner=rep17&q=客户1" "SELECT l.id FROM leads l WHERE l.owner = 'rep17' AND $OLDQ LIKE '%客户1%' $ORDER"
psql -qtAX "$LEADFLOW_DATABASE_URL" -c "SELECT 'leads ' || pg_size_pretty(pg_total_relation_size('leads'))
    || ', leads_search ' || pg_size_pretty(pg_relation_size('leads_search'))"
load0=$(cut -d' ' -f1-3 /proc/loadavg)
t0=$(date +%s.%N)
build/bin/leadflow-migrate >"$W/migrate.log" 2>&1 || { cat "$W/migrate.log"; exit 1; }
t1=$(date +%s.%N)
echo "--- leadflow-migrate: $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}') s for $LEADS leads (load average $load0 -> $(cut -d' ' -f1-3 /proc/loadavg))"
# when each step ended, in seconds from the start
awk -v t0="$t0" '/applied/ {split($2, a, "T"); split(a[2], b, ":"); s = b[1] * 3600 + b[2] * 60 + b[3];
    sub(/^INFO [^ ]* /, ""); printf "%8.1f s  %s\n", s - (t0 % 86400), $0}' "$W/migrate.log"
psql -qX "$LEADFLOW_DATABASE_URL" -c "ANALYZE lead_search" >/dev/null
echo "--- after (lead_search)"
explain "q=客户123456" "SELECT l.id FROM leads l WHERE $NEWQ '%客户123456%') $ORDER"
explain "q=company 1234 (20 leads)" "SELECT l.id FROM leads l WHERE $NEWQ '%company 1234 %') $ORDER"
explain "q=company (every lead)" "SELECT l.id FROM leads l WHERE $NEWQ '%company%') $ORDER"
explain "owner=rep17&q=客户1" "SELECT l.id FROM leads l WHERE l.owner = 'rep17' AND $NEWQ '%客户1%') $ORDER"
psql -qtAX "$LEADFLOW_DATABASE_URL" -c "SELECT 'leads ' || pg_size_pretty(pg_total_relation_size('leads'))
    || ', lead_search ' || pg_size_pretty(pg_total_relation_size('lead_search'))
    || ' (index ' || pg_size_pretty(pg_relation_size('lead_search_doc')) || ')'"
