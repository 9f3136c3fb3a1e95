#!/usr/bin/env bash
# bench/fire_sql.sh [REPS=3] [N=100000]: what firing a burst of N due timers costs the
# PostgreSQL backends, in the SQL alone: lf_fire_timers() (db/functions/41_lf_fire_timers.sql)
# called in batches of LF_BENCH_BATCH (2,000, the scheduler's LEADFLOW_TIMER_BATCH), each
# its own transaction, on a database shaped like the whole stack's after bench/latency.sh's
# phase (a) rather than bench/scheduler.sh's fresh one (docs/benchmarks.md, "Scheduler,
# fifth pass"): LF_BENCH_TIMERS (700,000) pending first-contact timers and LF_BENCH_EVENTS
# (2,000,000) events in the outbox (random event ids, as intake writes them), VACUUM
# ANALYZEd. No scheduler, no Redis. When lf_fire_timers() takes the events' ids (its
# third argument), they are passed as the scheduler passes them, drawn beforehand.
#
# A measurement: a CHECKPOINT (so that every measurement starts where the checkpoints
# are concerned as the others do: after it, the first change of each page writes the
# whole page to the WAL), then the next N pending timers (by id) are moved to be due now, as
# bench/latency.sh's part (c) moves them (LF_BENCH_MOVE=0: left where they are, as
# written once; LF_BENCH_MOVE=vacuum: moved, then VACUUM timers), then one psql session
# fires them, N / batch calls; the backend's utime + stime from /proc before and after,
# and the WAL it wrote (pg_current_wal_lsn). With LF_BENCH_SQL_B set, a second database
# "b" gets the same and then that SQL (an A/B of a change), and the measurements
# alternate between the two, so both see the same machine load. Prints per database the
# median over REPS of the CPU and WAL per timer, their spread, and the load average.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. bench/lib.sh
REPS=${1:-3}
N=${2:-100000}
BATCH=${LF_BENCH_BATCH:-2000}
TIMERS=${LF_BENCH_TIMERS:-700000}
EVENTS=${LF_BENCH_EVENTS:-2000000}
MOVE=${LF_BENCH_MOVE:-1}
[ $((REPS * N)) -le "$TIMERS" ] || { echo "REPS x N must be at most LF_BENCH_TIMERS" >&2; exit 2; }
lf_bench_pg_only
BASE=postgresql://leadflow@127.0.0.1:$PG
DBS=(a)
[ -n "${LF_BENCH_SQL_B:-}" ] && DBS=(a b)
TCK=$(getconf CLK_TCK)
for db in "${DBS[@]}"; do
    psql -qX "$BASE/leadflow" -c "CREATE DATABASE $db" >/dev/null
    psql -qX "$BASE/leadflow" -c "ALTER DATABASE $db SET jit = off" >/dev/null # as the services
    LEADFLOW_DATABASE_URL=$BASE/$db build/bin/leadflow-migrate >/dev/null 2>&1 ||
        LEADFLOW_DATABASE_URL=$BASE/$db build/bin/leadflow-migrate >&2
    lf_say "$db: writing $EVENTS events and $TIMERS timers"
    PGOPTIONS='-c synchronous_commit=off' psql -qX -v ON_ERROR_STOP=1 "$BASE/$db" >/dev/null <<SQL
INSERT INTO outbox (event_id, type, lead_id, payload)
SELECT gen_random_uuid(), (ARRAY['lead.created', 'lead.assigned', 'lead.routed'])[1 + g % 3],
       ('00000000-0000-7000-8000-' || lpad(to_hex(g / 3), 12, '0'))::uuid,
       jsonb_build_object('grade', 'B', 'owner', 'rep' || (g % 200))
  FROM generate_series(1, $EVENTS) g;
INSERT INTO timers (lead_id, kind, step, due_at)
SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(g), 12, '0'))::uuid, 'sla_first_contact', 0,
       now() + interval '2 hours' + g * interval '1 ms'
  FROM generate_series(1, $TIMERS) g;
VACUUM ANALYZE;
SQL
    if [ "$db" = b ]; then
        psql -qX -v ON_ERROR_STOP=1 "$BASE/$db" -c "$LF_BENCH_SQL_B" >/dev/null
    fi
done
# measure DB: moves the next N timers, fires them; prints "CPU_SECONDS WAL_BYTES"
measure() {
    local db=$1
    psql -qX -v ON_ERROR_STOP=1 "$BASE/$db" >/dev/null <<SQL
SET client_min_messages = warning;
DROP TABLE IF EXISTS bench_ids;
CREATE TABLE bench_ids AS SELECT id, (row_number() OVER (ORDER BY id) - 1) / $BATCH AS b,
       gen_random_uuid() AS eid
  FROM timers WHERE state = 'pending' AND due_at > now() + interval '1 hour'
 ORDER BY id LIMIT $N;
ANALYZE bench_ids;
SQL
    psql -qX "$BASE/$db" -c "CHECKPOINT" >/dev/null
    if [ "$MOVE" != 0 ]; then
        psql -qX -v ON_ERROR_STOP=1 "$BASE/$db" -c "UPDATE timers t SET due_at = now()
            FROM bench_ids b WHERE t.id = b.id" >/dev/null
        [ "$MOVE" = vacuum ] && psql -qX "$BASE/$db" -c "VACUUM timers" >/dev/null
    fi
    # The events' ids as the scheduler passes them (drawn beforehand, out of the
    # measurement), when the function takes them (41_lf_fire_timers.sql).
    local eids=""
    [ "$(psql -qtAX "$BASE/$db" -c "SELECT max(pronargs) FROM pg_proc
        WHERE proname = 'lf_fire_timers'")" = 3 ] && eids=yes
    {
        echo "SELECT pg_backend_pid() AS pid \\gset"
        echo "\\setenv LF_BPID :pid"
        echo "SELECT pg_current_wal_lsn() AS l0 \\gset"
        echo "\\! awk '{print \$14 + \$15}' /proc/\$LF_BPID/stat > $W/c0"
        echo "\\o /dev/null"
        for b in $(seq 0 $(((N - 1) / BATCH))); do
            if [ -n "$eids" ]; then
                echo "SELECT fired FROM lf_fire_timers(ARRAY(SELECT id FROM bench_ids WHERE b = $b ORDER BY id), '{}', ARRAY(SELECT eid FROM bench_ids WHERE b = $b ORDER BY id));"
            else
                echo "SELECT fired FROM lf_fire_timers(ARRAY(SELECT id FROM bench_ids WHERE b = $b ORDER BY id), '{}');"
            fi
        done
        echo "\\! awk '{print \$14 + \$15}' /proc/\$LF_BPID/stat > $W/c1"
        echo "\\o $W/wal"
        echo "SELECT pg_current_wal_lsn() - :'l0'::pg_lsn;"
        echo "\\o"
        echo "SELECT count(*) FROM timers t JOIN bench_ids b ON b.id = t.id WHERE t.state = 'pending';"
    } | psql -qtAX -v ON_ERROR_STOP=1 "$BASE/$db" >"$W/left"
    [ "$(tr -d '[:space:]' <"$W/left")" = 0 ] || { echo "$db: not every timer fired" >&2; exit 1; }
    awk -v a="$(cat "$W/c0")" -v b="$(cat "$W/c1")" -v t="$TCK" -v w="$(tr -d '[:space:]' <"$W/wal")" \
        'BEGIN {printf "%.3f %s\n", (b - a) / t, w}'
}
for r in $(seq 1 "$REPS"); do
    for db in "${DBS[@]}"; do
        m=$(measure "$db") || exit 1
        echo "$db $m" >>"$W/times"
    done
done
echo "lf_fire_timers, $N timers due at once in batches of $BATCH (move: $MOVE), backend CPU and WAL per timer (median of $REPS, min-max), load average after: $(lf_bench_load)"
for db in "${DBS[@]}"; do
    awk -v d="$db" -v n="$N" '$1 == d {print $2 * 1e6 / n, $3 / n}' "$W/times" | sort -g |
        awk -v d="$db" '{v[++k] = $1; w[k] = $2} END {
            printf "%s: %.1f us per timer (%.1f-%.1f), WAL %.0f bytes per timer\n", d,
                   v[int((k + 1) / 2)], v[1], v[k], w[int((k + 1) / 2)] }'
done
