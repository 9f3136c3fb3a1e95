#!/usr/bin/env bash
# bench/ack_row.sh [BATCHES=700] [REPS=5]: what a consumer's ack statement costs the
# backend per batch of 128 events, with consumer_acks as this checkout's migrations leave
# it ("new") and with the table's storage options reset to PostgreSQL's defaults ("old":
# the table before 0058_consumer_acks_inline.sql), in one PostgreSQL, alternating, so
# both see the same machine load.
#
# Two databases, each migrated and given an outbox of 200,000 events (ids 1..200,000)
# and the consumer's cursor row. Then REPS times, alternating between the two, BATCHES
# batches in one session, each its own transaction: the statement common/consumer.c
# runs for a batch (s_ack_batch_sql, copied here), which reads the batch's events from
# the outbox, checks them against the consumer's acks and inserts one ack row holding
# their seqs as a multirange. Two shapes of batch: "spread", every other seq (a
# consumer's events lie among other types' in the outbox: the multirange holds 128
# ranges, about 2.7 kB) and "adjacent", 128 consecutive seqs (one range). The acks are
# emptied before each measurement. The figure is the backend's utime + stime from
# /proc per batch (not wall time: the machine is shared), the median of REPS runs with
# the spread, the WAL written per batch (the last run) and the load average.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. bench/lib.sh
BATCHES=${1:-700}
REPS=${2:-5}
lf_bench_pg_only
BASE=postgresql://leadflow@127.0.0.1:$PG
TCK=$(getconf CLK_TCK)
psql -qX "$BASE/leadflow" -c "CREATE DATABASE lf_old" -c "CREATE DATABASE lf_new" >/dev/null
for db in lf_old lf_new; do
    LEADFLOW_DATABASE_URL=$BASE/$db build/bin/leadflow-migrate >/dev/null 2>&1 ||
        { LEADFLOW_DATABASE_URL=$BASE/$db build/bin/leadflow-migrate >&2; exit 1; }
    psql -qX -v ON_ERROR_STOP=1 "$BASE/$db" >/dev/null <<'SQL'
INSERT INTO outbox (event_id, type, lead_id, payload)
SELECT gen_random_uuid(), 'lead.created', gen_random_uuid(), '{}'
  FROM generate_series(1, 200000);
INSERT INTO consumer_cursors (consumer) VALUES ('bench');
VACUUM ANALYZE outbox;
SQL
done
psql -qX -v ON_ERROR_STOP=1 "$BASE/lf_old" \
    -c "ALTER TABLE consumer_acks RESET (toast_tuple_target)" >/dev/null
echo "bench/ack_row: lf_old $(psql -qtAX "$BASE/lf_old" -c "SELECT coalesce(reloptions::text, '{}') FROM pg_class WHERE relname = 'consumer_acks'"), lf_new $(psql -qtAX "$BASE/lf_new" -c "SELECT coalesce(reloptions::text, '{}') FROM pg_class WHERE relname = 'consumer_acks'")" >&2
W2=$(mktemp -d /tmp/leadflow-ackrow.XXXXXX)
trap 'rm -rf "$W2"; lf_pg_stop "$W/pg"; rm -rf "$W"' EXIT
# the statements of one measurement: STEP 2 (spread) or 1 (adjacent)
for step in 1 2; do
    {
        echo "SET jit = off;"
        echo "PREPARE ack(text, bigint[], xid8, bigint) AS
WITH mine AS MATERIALIZED (SELECT o.id, o.xid FROM unnest(\$2::bigint[]) u(id)
  JOIN outbox o ON o.id = u.id WHERE o.xid >= \$3::xid8 AND o.id > \$4::bigint),
fresh AS MATERIALIZED (SELECT m.id, m.xid FROM mine m WHERE NOT m.id <@
  (SELECT coalesce(range_agg(a.seqs), '{}'::int8multirange) FROM consumer_acks a
    WHERE a.consumer = \$1 AND a.seqs && (SELECT int8range(min(id), max(id), '[]') FROM mine))),
ins AS (INSERT INTO consumer_acks (consumer, seqs, top_xid)
  SELECT \$1, range_agg(int8range(f.id, f.id, '[]')), max(f.xid) FROM fresh f
  HAVING count(*) > 0 ON CONFLICT DO NOTHING RETURNING 1)
SELECT f.id, (SELECT count(*) FROM ins) FROM fresh f ORDER BY f.id;"
        awk -v n="$BATCHES" -v s="$step" 'BEGIN { for (j = 0; j < n; j++) {
            first = 1 + j * 128 * s; a = "";
            for (k = 0; k < 128; k++) a = a (k ? "," : "") (first + k * s);
            printf "EXECUTE ack('\''bench'\'', '\''{%s}'\'', '\''1'\'', 0);\n", a } }'
    } >"$W2/step$step.sql"
done
# measure DB STEP: the backend's CPU seconds for the BATCHES ack statements
measure() {
    local db=$1 step=$2 pid c0 c1 w0
    psql -qX "$BASE/$db" -c "TRUNCATE consumer_acks" -c "CHECKPOINT" >/dev/null
    coproc P { psql -qtAX -v ON_ERROR_STOP=1 "$BASE/$db" >/dev/null 2>"$W2/err"; }
    # the backend's pid, through a file (its output goes to /dev/null)
    echo "\\o $W2/pid" >&"${P[1]}"
    echo "SELECT pg_backend_pid();" >&"${P[1]}"
    echo "\\o" >&"${P[1]}"
    echo "\\! touch $W2/ready" >&"${P[1]}"
    rm -f "$W2/ready"
    while [ ! -f "$W2/ready" ]; do sleep 0.05; done
    pid=$(head -1 "$W2/pid" | tr -d ' ')
    c0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    w0=$(psql -qtAX "$BASE/$db" -c "SELECT pg_current_wal_insert_lsn()")
    rm -f "$W2/ready"
    cat "$W2/step$step.sql" >&"${P[1]}"
    echo "\\! touch $W2/ready" >&"${P[1]}"
    while [ ! -f "$W2/ready" ]; do sleep 0.05; done
    c1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    psql -qtAX "$BASE/$db" -c "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '$w0')" >"$W2/wal.$db.$step"
    eval "exec ${P[1]}>&-"
    wait "$P_PID" 2>/dev/null || true
    [ ! -s "$W2/err" ] || { cat "$W2/err" >&2; exit 1; }
    local rows
    rows=$(psql -qtAX "$BASE/$db" -c "SELECT count(*) FROM consumer_acks")
    [ "$rows" = "$BATCHES" ] || { echo "$db: $rows ack rows, not $BATCHES" >&2; exit 1; }
    awk -v a="$c0" -v b="$c1" -v k="$TCK" -v n="$BATCHES" 'BEGIN {printf "%.1f", (b - a) / k * 1e6 / n}'
}
lf_say "ack row: $BATCHES batches of 128 events per measurement, $REPS runs, load $(lf_bench_load)"
for step in 2 1; do
    shape=$([ "$step" = 2 ] && echo spread || echo adjacent)
    old=() new=()
    for _ in $(seq 1 "$REPS"); do
        old+=("$(measure lf_old "$step")")
        new+=("$(measure lf_new "$step")")
    done
    for v in old new; do
        eval "runs=(\"\${$v[@]}\")"
        med=$(printf '%s\n' "${runs[@]}" | lf_bench_median)
        echo "ack_row.$shape.$v.us_per_batch $med (runs: ${runs[*]}; $(printf '%s\n' "${runs[@]}" | lf_bench_spread); load $(lf_bench_load))"
    done
    for db in lf_old lf_new; do
        echo "ack_row.$shape.$db.wal_bytes_per_batch $(awk -v n="$BATCHES" '{printf "%d", $1 / n}' "$W2/wal.$db.$step") (the last run)"
        echo "ack_row.$shape.$db.row $(psql -qtAX "$BASE/$db" -c "SELECT 'bytes ' || avg(pg_column_size(seqs))::int || ', toast pages ' || pg_relation_size(reltoastrelid) / 8192 FROM consumer_acks, pg_class WHERE relname = 'consumer_acks' GROUP BY reltoastrelid")"
    done
done
