#!/usr/bin/env bash
# bench/lead_hot.sh [LEADS=100000] [ROUNDS=20] [FILLFACTORS="100 90"]: what the fillfactor
# of `leads` does to the updates that change no indexed column (HOT updates: no index
# entries), in one PostgreSQL, one database per fillfactor, rounds alternating.
#
# Each database is migrated, set to its fillfactor, filled with LEADS routed leads, and
# VACUUM ANALYZEd. Each round then follows 128 new leads through their first writes, each
# statement committed and timed (EXPLAIN ANALYZE), as the services do them:
#   insert:  intake's INSERT ... ON CONFLICT DO NOTHING of 128 leads;
#   route:   the router's UPDATE (owner, team, assigned_at, updated_at, ...: not HOT);
#   clock:   the scheduler's first-contact clock, UPDATE leads SET first_contact_due_at
#            (services/scheduler/clock.c: no indexed column, HOT when the page has room);
#   stale:   the keep-alive clock, UPDATE leads SET stale_gen, stale_since, stale_due_at
#            (db/functions/42_lf_keepalive.sql: no indexed column either).
# Prints per database and statement the median and mean time per 128 leads, the share of
# HOT updates (pg_stat_user_tables) and the size of leads.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. bench/lib.sh
LEADS=${1:-100000}
ROUNDS=${2:-20}
FFS=${3:-100 90}
lf_bench_pg_only
BASE=postgresql://leadflow@127.0.0.1:$PG
for ff in $FFS; do
    psql -qX "$BASE/leadflow" -c "CREATE DATABASE lf_ff$ff" >/dev/null
    LEADFLOW_DATABASE_URL=$BASE/lf_ff$ff build/bin/leadflow-migrate >/dev/null 2>&1
    psql -qX -v ON_ERROR_STOP=1 "$BASE/lf_ff$ff" -c "ALTER TABLE leads SET (fillfactor = $ff)" >/dev/null
    lf_say "fillfactor $ff: writing $LEADS leads"
    lf_bench_fill_leads "$BASE/lf_ff$ff" "$LEADS" routed
done
ids() { # the 128 leads of round $1
    echo "SELECT ('00000000-0000-7000-9000-' || lpad(to_hex($1 * 1000 + i), 12, '0'))::uuid AS id, i
            FROM generate_series(1, 128) i"
}
stmt() { # round what
    local r=$1
    case $2 in
    insert) lf_bench_new_leads "SELECT id, $r * 1000 + i AS g FROM ($(ids "$r")) r" ;;
    route) echo "UPDATE leads l SET grade = 'B', score = 55,
       score_breakdown = '{\"budget\": 20, \"urgency\": 15, \"decision_maker\": 20}',
       graded_at = now(), owner = 'rep' || (1 + x.i % 200), assignment_reason = 'round_robin',
       queue = NULL, assigned_at = now(), updated_at = now(),
       team = (ARRAY['east','south','north','west'])[1 + x.i % 4], region = 'east',
       industry = 'manufacturing', pool_reason = NULL, pool_since = NULL
  FROM ($(ids "$r")) x WHERE l.id = x.id" ;;
    clock) echo "UPDATE leads l SET first_contact_due_at = now() + interval '1 hour'
  FROM ($(ids "$r")) x WHERE l.id = x.id" ;;
    stale) echo "UPDATE leads l SET stale_gen = l.stale_gen + 1, stale_since = now(),
       stale_due_at = now() + interval '7 days'
  FROM ($(ids "$r")) x WHERE l.id = x.id" ;;
    esac
}
for r in $(seq 1 "$ROUNDS"); do
    for ff in $FFS; do
        for what in insert route clock stale; do
            psql -qX "$BASE/lf_ff$ff" -c "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) $(stmt "$r" "$what")" |
                awk -v w="$what" -v d="$ff" '/Execution Time/ {print d, w, $3}' >>"$W/times"
        done
    done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
sort -k1,1n -k2,2 -k3g "$W/times" | awk '
    {k = "fillfactor " $1 " " $2; v[k, ++n[k]] = $3; s[k] += $3}
    END {for (k in n) printf "%s: median %.2f ms, mean %.2f ms per 128 leads (%d rounds)\n",
                             k, v[k, int((n[k] + 1) / 2)], s[k] / n[k], n[k]}' | sort
sleep 1
for ff in $FFS; do
    psql -qtAX "$BASE/lf_ff$ff" -c "SELECT 'fillfactor $ff: ' || n_tup_hot_upd || ' of ' || n_tup_upd
        || ' updates HOT; leads ' || pg_size_pretty(pg_total_relation_size('leads'))
        || ' (heap ' || pg_size_pretty(pg_relation_size('leads')) || ')'
        FROM pg_stat_user_tables WHERE relname = 'leads'"
done
