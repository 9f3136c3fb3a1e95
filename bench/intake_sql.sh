#!/usr/bin/env bash
# bench/intake_sql.sh [SIZES="0 1 4 16 64 256"] [REPS=3]: what one call of intake's batch
# function (lf_intake_commit, db/functions/21_lf_intake_commit.sql) costs its PostgreSQL
# backend in CPU, by batch size, without intake or HTTP: the part of intake's cost that
# the SQL decides (docs/benchmarks.md, "Intake: where one lead's CPU goes").
#
# One PostgreSQL (lf_bench_pg_only), database "a" migrated from this checkout and filled
# with LF_BENCH_FILL (100,000) leads through the function itself (batches of 250, like
# bench/post_lead.lua's lead: the same name and company, a new phone and e-mail each),
# ANALYZEd. With LF_BENCH_SQL_B set, a second database "b" gets the same and then that SQL
# (an A/B of a change: e.g. "ALTER FUNCTION lf_intake_commit RESET plan_cache_mode"),
# and every measurement alternates between the two, so both see the same machine load.
#
# A measurement: one psql session (synchronous_commit off: the CPU, not the WAL flush
# wait), two calls to warm the plans, then CALLS calls of a batch of N new people, each
# its own transaction; the backend's utime + stime from /proc before and after. CALLS is
# chosen so that a measurement writes about LF_BENCH_LEADS (2,000) leads (at least 20
# calls, 300 for N = 0). Prints per database and N the median over REPS measurements of
# the CPU per call and per lead, their spread, and the load average. N = 0 calls the
# function with empty arrays: the harness's own cost per call (the wrapper that builds
# the arrays, the round trip), included in every other figure. The leads are written
# by a PL/pgSQL wrapper (bench_batch) that builds the 26 arrays in the database (and
# passes 256 event ids drawn once, when the function takes them: p_event_id).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. bench/lib.sh
SIZES=${1:-0 1 4 16 64 256}
REPS=${2:-3}
FILL=${LF_BENCH_FILL:-100000}
LEADS=${LF_BENCH_LEADS:-2000}
lf_bench_pg_only
BASE=postgresql://leadflow@127.0.0.1:$PG
DBS=(a)
[ -n "${LF_BENCH_SQL_B:-}" ] && DBS=(a b)
TCK=$(getconf CLK_TCK)
for db in "${DBS[@]}"; do
    psql -qX "$BASE/leadflow" -c "CREATE DATABASE $db" >/dev/null
    # As the services' sessions (common/db.c): no JIT. With it, a statement that
    # lf_intake_commit's enable_seqscan = off costs above the JIT threshold (the
    # notification fan-out trigger's check for destinations, fired by every batch) is
    # compiled at every call: about 1 s of CPU per call, which no service pays.
    psql -qX "$BASE/leadflow" -c "ALTER DATABASE $db SET jit = off" >/dev/null
    LEADFLOW_DATABASE_URL=$BASE/$db build/bin/leadflow-migrate >/dev/null 2>&1 ||
        LEADFLOW_DATABASE_URL=$BASE/$db build/bin/leadflow-migrate >&2
    psql -qX -v ON_ERROR_STOP=1 "$BASE/$db" >/dev/null <<'SQL'
CREATE FUNCTION bench_batch(n int, base bigint) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    RETURN (SELECT count(*) FROM lf_intake_commit(
        ARRAY(SELECT gen_random_uuid() FROM generate_series(1, n)),
        array_fill('web_form'::text, ARRAY[n]), array_fill('api'::text, ARRAY[n]),
        array_fill('官网表单'::text, ARRAY[n]), array_fill('王芳'::text, ARRAY[n]),
        array_fill('上海华东医疗器械有限公司'::text, ARRAY[n]),
        ARRAY(SELECT 'wang.fang.139' || lpad(((base + g) % 100000000)::text, 8, '0')
                     || '@example.com' FROM generate_series(1, n) g),
        ARRAY(SELECT '+86139' || lpad(((base + g) % 100000000)::text, 8, '0')
                FROM generate_series(1, n) g),
        array_fill('采购一批医用监护设备，希望下周安排演示'::text, ARRAY[n]),
        array_fill(500000::numeric, ARRAY[n]), array_fill(500000::numeric, ARRAY[n]),
        array_fill('CNY'::text, ARRAY[n]), array_fill('50万'::text, ARRAY[n]),
        array_fill('high'::text, ARRAY[n]), array_fill(true, ARRAY[n]),
        array_fill('east'::text, ARRAY[n]), array_fill('medical'::text, ARRAY[n]),
        array_fill(NULL::text, ARRAY[n]), array_fill(NULL::jsonb, ARRAY[n]),
        array_fill('{"name":"王芳","company":"上海华东医疗器械有限公司","phone":"13912345678","email":"wang.fang.13912345678@example.com","budget":"50万","urgency":"高","industry":"medical","region":"east","decision_maker":"是","need":"采购一批医用监护设备，希望下周安排演示","source":"官网表单"}'::jsonb,
                   ARRAY[n]),
        array_fill(NULL::text, ARRAY[n]), array_fill(NULL::jsonb, ARRAY[n]),
        array_fill('mobile'::text, ARRAY[n]), array_fill('CN'::text, ARRAY[n]),
        array_fill('[]'::jsonb, ARRAY[n]), array_fill('上海华东医疗器械'::text, ARRAY[n])
        /*EV*/));
END $$;
SQL
    lf_say "$db: writing $FILL leads"
    for i in $(seq 1 $(((FILL + 249) / 250))); do echo "SELECT bench_batch(250, $((i * 250)));"; done |
        PGOPTIONS='-c synchronous_commit=off' psql -qtAX -v ON_ERROR_STOP=1 "$BASE/$db" >/dev/null
    psql -qX "$BASE/$db" -c "VACUUM ANALYZE" >/dev/null
    if [ "$db" = b ]; then
        psql -qX -v ON_ERROR_STOP=1 "$BASE/$db" -c "$LF_BENCH_SQL_B" >/dev/null
    fi
    # A function that takes the events' ids from its caller (p_event_id, as intake draws
    # them) gets them: 256 ids drawn once, the same for every call (the outbox has no
    # index on event ids), so that the harness draws none per call either. Measured
    # after LF_BENCH_SQL_B, which may put back a form without the argument.
    if [ "$(psql -qtAX "$BASE/$db" -c "SELECT max(pronargs) FROM pg_proc WHERE proname = 'lf_intake_commit'")" = 27 ]; then
        psql -qX -v ON_ERROR_STOP=1 "$BASE/$db" >/dev/null <<'SQL'
CREATE TABLE bench_event_ids AS SELECT array_agg(gen_random_uuid()) AS ids FROM generate_series(1, 256);
SQL
        psql -qtAX "$BASE/$db" -c "SELECT pg_get_functiondef('bench_batch'::regproc)" |
            sed -e 's|/\*EV\*/|, (SELECT e.ids[1:n] FROM bench_event_ids e)|' -e '$ s/$/;/' |
            psql -qX -v ON_ERROR_STOP=1 "$BASE/$db" >/dev/null
    fi
done
# measure DB N CALLS: prints the backend's CPU seconds for CALLS calls of bench_batch(N)
measure() {
    local db=$1 n=$2 calls=$3 i
    {
        echo "SET synchronous_commit = off;"
        echo "SELECT bench_batch($n, 100000000 + $RANDOM); SELECT bench_batch($n, 200000000 + $RANDOM);"
        echo "SELECT pg_backend_pid() AS pid \\gset"
        echo "\\setenv LF_BPID :pid"
        echo "\\! awk '{print \$14 + \$15}' /proc/\$LF_BPID/stat > $W/c0"
        for i in $(seq 1 "$calls"); do
            echo "SELECT bench_batch($n, $(((RANDOM * 32768 + RANDOM) % 99000000)));"
        done
        echo "\\! awk '{print \$14 + \$15}' /proc/\$LF_BPID/stat > $W/c1"
    } | psql -qtAX -v ON_ERROR_STOP=1 "$BASE/$db" >/dev/null
    awk -v a="$(cat "$W/c0")" -v b="$(cat "$W/c1")" -v t="$TCK" 'BEGIN {printf "%.3f\n", (b - a) / t}'
}
for r in $(seq 1 "$REPS"); do
    for n in $SIZES; do
        calls=$((n ? LEADS / n : 300)); [ "$calls" -lt 20 ] && calls=20
        for db in "${DBS[@]}"; do
            s=$(measure "$db" "$n" "$calls")
            echo "$db $n $calls $s" >>"$W/times"
        done
    done
done
echo "backend CPU per call of lf_intake_commit (median of $REPS, min-max), load average after: $(lf_bench_load)"
for db in "${DBS[@]}"; do
    for n in $SIZES; do
        awk -v d="$db" -v n="$n" '$1 == d && $2 == n {print $4 * 1000 / $3}' "$W/times" | sort -g |
            awk -v d="$db" -v n="$n" '{v[++k] = $1} END {
                m = v[int((k + 1) / 2)];
                printf "%s n=%d: %.2f ms per call (%.2f-%.2f)%s\n", d, n, m, v[1], v[k],
                       n ? sprintf(", %.0f us per lead", m * 1000 / n) : " (the harness alone)" }'
    done
done
