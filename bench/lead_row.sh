#!/usr/bin/env bash
# bench/lead_row.sh [LEADS=300000] [REPS=15]: what writing a row of `leads` costs the
# backend, with the schema of this checkout ("new") and with the lists' trigram index
# back on `leads` instead of `lead_search` ("old", the schema before 0041), in one
# PostgreSQL, alternating, so both see the same machine load.
#
# Two databases, each migrated and filled with LEADS leads as intake leaves them (name,
# company, e-mail, phone, a raw submission of ~300 bytes, no owner yet), ANALYZEd. Then
# REPS times, alternating between the two, each in a transaction that is rolled back:
#   router: EXPLAIN ANALYZE of the router's UPDATE of 128 random leads (the columns
#           services/router/batch.c sets: grade, score, breakdown, owner, reason, queue,
#           assigned_at, updated_at, team, region, industry, pool columns);
#   intake: EXPLAIN ANALYZE of one INSERT ... ON CONFLICT DO NOTHING of 128 new leads
#           (the columns lf_intake_commit writes; on the new schema with the search rows in the
#           same statement, as it writes them), its AFTER triggers included.
# Prints the median and mean execution time (ms per 128 rows, so us per lead x 0.128)
# and the load average. GIN's pending list is flushed by whichever insert fills it, so
# the mean, not the median, carries that cost.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. bench/lib.sh
LEADS=${1:-300000}
REPS=${2:-15}
lf_bench_pg_only
BASE=postgresql://leadflow@127.0.0.1:$PG
psql -qX "$BASE/leadflow" -c "CREATE DATABASE lf_old" -c "CREATE DATABASE lf_new" >/dev/null
# The old schema: this checkout's, with lead_search and its triggers replaced by the
# index 0027 made (db/migrations/0027_list_indexes.sql).
# LF_BENCH_OLD_SQL replaces that SQL, to compare another change of the row's indexes
# (e.g. 0046: the old leads_phone/leads_email back instead of the partial ones).
OLD_SQL=${LF_BENCH_OLD_SQL:-"DROP TRIGGER leads_search_inserted ON leads; DROP TRIGGER leads_search_edited ON leads;
DROP TRIGGER leads_search_deleted ON leads; DROP TRIGGER leads_search_truncated ON leads;
DROP TABLE lead_search;
CREATE INDEX leads_search ON leads USING gin
    (lower(coalesce(name, '') || ' ' || coalesce(company, '') || ' ' ||
           coalesce(email, '') || ' ' || coalesce(phone, '')) gin_trgm_ops);"}
for db in lf_old lf_new; do
    LEADFLOW_DATABASE_URL=$BASE/$db build/bin/leadflow-migrate >/dev/null 2>&1
    [ "$db" = lf_old ] && psql -qX -v ON_ERROR_STOP=1 "$BASE/$db" -c "$OLD_SQL" >/dev/null
    lf_say "$db: writing $LEADS leads"
    t0=$(date +%s.%N)
    lf_bench_fill_leads "$BASE/$db" "$LEADS"
    t1=$(date +%s.%N)
    lf_say "$db: filled in $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}') s"
done
router_sql() {
    cat <<SQL
BEGIN;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF)
UPDATE leads l SET grade = 'B', score = 55,
       score_breakdown = '{"budget": 20, "urgency": 15, "decision_maker": 20}',
       graded_at = now(), owner = d.owner, assignment_reason = 'round_robin', queue = NULL,
       assigned_at = now(), updated_at = now(), team = d.team, region = l.region,
       industry = l.industry, pool_reason = NULL, pool_since = NULL
  FROM (SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(g), 12, '0'))::uuid AS lead,
               'rep' || (1 + g % 200) AS owner,
               (ARRAY['east','south','north','west'])[1 + g % 4] AS team
          FROM (SELECT DISTINCT (1 + floor(random() * $LEADS))::int AS g
                  FROM generate_series(1, 128)) s) d
 WHERE l.id = d.lead;
ROLLBACK;
SQL
}
# intake_sql DB: on the new schema the search rows are written in the same statement, as
# lf_intake_commit does (its leads, marked intake_open, are skipped by the trigger); on
# the old one too when LF_BENCH_OLD_SQL keeps lead_search.
intake_sql() {
    local head="" tail=""
    if [ "$1" = lf_new ] || [ -n "${LF_BENCH_OLD_SQL:-}" ]; then
        head="WITH ins AS ("
        tail=" RETURNING id, name, company, email, phone)
INSERT INTO lead_search (lead_id, doc)
SELECT id, lf_lead_search_doc(name, company, email, phone) FROM ins"
    fi
    cat <<SQL
BEGIN;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF)
$head
$(lf_bench_new_leads "SELECT gen_random_uuid() AS id, o + i AS g
  FROM (SELECT (random() * 80000000)::int AS o) r, generate_series(1, 128) i")$tail;
ROLLBACK;
SQL
}
for i in $(seq 1 "$REPS"); do
    for db in lf_old lf_new; do
        for what in router intake; do
            "${what}_sql" "$db" | psql -qX "$BASE/$db" 2>&1 |
                awk -v w="$what" -v d="$db" '/Execution Time/ {print d, w, $3}
                    /^ *Trigger / {sub(/^ */, ""); print d, w "-trigger", $0}' >>"$W/times"
        done
    done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
grep -v trigger "$W/times" | sort -k1,2 -k3g | awk '
    {k = $1 " " $2; v[k, ++n[k]] = $3; s[k] += $3}
    END {for (k in n) printf "%s: median %.2f ms, mean %.2f ms per 128 rows (%d runs), %.0f us per row (mean)\n",
                             k, v[k, int((n[k] + 1) / 2)], s[k] / n[k], n[k], 1000 * s[k] / n[k] / 128}' | sort
echo "triggers (new schema, last run):"
grep "lf_new .*-trigger" "$W/times" | tail -n 2
psql -qtAX "$BASE/lf_old" -c "SELECT 'old: leads ' || pg_size_pretty(pg_total_relation_size('leads'))"
psql -qtAX "$BASE/lf_new" -c "SELECT 'new: leads ' || pg_size_pretty(pg_total_relation_size('leads'))
    || ', lead_search ' || pg_size_pretty(pg_total_relation_size('lead_search'))"
