#!/usr/bin/env bash
# bench/router_drain.sh [RUNS=3] [LEADS=20000] [REPS=200]: the real router against PostgreSQL.
#
# bench_router measures the assignment code alone, in memory. This measures what a lead
# costs the running service: the prelude, the decision, the explanation rows, the
# timeline, the outbox event and the acknowledgement, all in PostgreSQL. Per run: the
# intake stores LEADS leads while the router is stopped (so each is a lead.created event
# in the outbox that nobody has acknowledged), then the router starts and the clock runs
# until every lead of the run is assigned (polled every 100 ms). The figure is LEADS / that
# time. 200 reps with all rules on, as in bench_router; the scheduler and analytics are
# not running, so the router has PostgreSQL to itself, unless LF_BENCH_STACK=1 (then they
# run too, taking the router's lead.assigned events as it drains).
# LF_BENCH_PROFILE=1 adds pg_stat_statements (top statements by total time);
# LF_BENCH_EXPLAIN=MS (with LF_BENCH_PROFILE) logs the plans of statements slower than MS ms,
# with their triggers, in the PostgreSQL log (kept with LF_BENCH_KEEP);
# LF_BENCH_SQL='...' runs SQL once before the runs (experiments: DROP INDEX ...);
# LF_BENCH_PERF=FILE records a perf profile of the router's PostgreSQL backend in run 1,
# LF_BENCH_PERF_ROUTER=FILE one of the router process;
# LF_BENCH_ROUTER_WRAP='valgrind --tool=callgrind --callgrind-out-file=FILE' runs the router
# under that command (instruction counts of the router's own work, which the load of the
# machine does not change; the wall-clock figure then means nothing);
# Per run it also prints what the drain wrote (counts the load of the machine does not
# change): WAL bytes, records and full-page images per lead (pg_current_wal_lsn and
# pg_stat_wal before and after; nothing else writes meanwhile unless LF_BENCH_STACK=1), and
# the updates of `leads` with how many were HOT (pg_stat_user_tables, as of the end of the
# drain's transactions: the statistics are flushed within a second, so they are read after
# the router stops).
# LF_BENCH_KEEP=1 leaves PostgreSQL running with the data afterwards (stop it yourself).
# Every lead comes from 127.0.0.1: the per-address limit is raised as for the other
# benchmarks (LEADFLOW_RATE_PER_ADDR <- LF_BENCH_RATE_PER_ADDR, bench/lib.sh), else intake
# answers 429 past its burst and fewer than LEADS leads are stored.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. bench/lib.sh
RUNS=${1:-3}; LEADS=${2:-20000}; REPS=${3:-200}
make -s WERROR=1 bins benches >/dev/null
W=$(mktemp -d /tmp/leadflow-bench.XXXXXX); chmod 755 "$W"
PG=$(lf_free_port); RP=$(lf_free_port); HTTP=$(lf_free_port); Z1=$(lf_free_port); Z2=$(lf_free_port)
Z3=$(lf_free_port)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -n "${LF_BENCH_KEEP:-}" ]; then # keep PostgreSQL running to look around
        lf_redis_stop "$W/redis" "$RP"; echo "kept $W, $LEADFLOW_DATABASE_URL (stop: pg_ctl -D $W/pg/data stop)" >&2; return
    fi
    lf_redis_stop "$W/redis" "$RP"; lf_pg_stop "$W/pg"; rm -rf "$W"
}
trap cleanup EXIT
lf_pg_start "$W/pg" "$PG" >/dev/null
export LEADFLOW_DATABASE_URL=postgresql://leadflow@127.0.0.1:$PG/leadflow
if [ -n "${LF_BENCH_PROFILE:-}" ]; then
    psql -qtAX "$LEADFLOW_DATABASE_URL" \
        -c "ALTER SYSTEM SET shared_preload_libraries = pg_stat_statements, auto_explain" >/dev/null
    lf_as_pg "$PG_BIN/pg_ctl" -D "$W/pg/data" -o "-p $PG" -l "$W/pg/postgres.log" -w -t 60 \
        restart >/dev/null
    # statements run by triggers and functions count too, under their own text
    psql -qtAX "$LEADFLOW_DATABASE_URL" -c "ALTER SYSTEM SET pg_stat_statements.track = 'all'" >/dev/null
    psql -qtAX "$LEADFLOW_DATABASE_URL" -c "SELECT pg_reload_conf()" >/dev/null
    if [ -n "${LF_BENCH_EXPLAIN:-}" ]; then # plans of statements over that many ms, in the log
        for kv in "log_min_duration = '${LF_BENCH_EXPLAIN}ms'" "log_analyze = on" \
                  "log_nested_statements = on" "log_buffers = on"; do
            psql -qtAX "$LEADFLOW_DATABASE_URL" -c "ALTER SYSTEM SET auto_explain.$kv" >/dev/null
        done
        psql -qtAX "$LEADFLOW_DATABASE_URL" -c "SELECT pg_reload_conf()" >/dev/null
    fi
fi
lf_redis_start "$W/redis" "$RP"
export LEADFLOW_ADMIN_KEY=bench-key LEADFLOW_ALLOW_SHORT_ADMIN_KEY=1 LEADFLOW_INTAKE_PORT=$HTTP LEADFLOW_LOG_LEVEL=warn
export LEADFLOW_CONFIG_DIR=$PWD/config LEADFLOW_REDIS_PORT=$RP LEADFLOW_REDIS_PREFIX=bench:
export LEADFLOW_INTAKE_EVENTS_BIND=tcp://127.0.0.1:$Z1 LEADFLOW_INTAKE_EVENTS=tcp://127.0.0.1:$Z1
export LEADFLOW_ROUTER_EVENTS_BIND=tcp://127.0.0.1:$Z2 LEADFLOW_ROUTER_EVENTS=tcp://127.0.0.1:$Z2
export LEADFLOW_SCHEDULER_EVENTS_BIND=tcp://127.0.0.1:$Z3 LEADFLOW_SCHEDULER_EVENTS=tcp://127.0.0.1:$Z3
export LEADFLOW_RATE_PER_ADDR=$LF_BENCH_RATE_PER_ADDR
build/bin/leadflow-migrate >/dev/null 2>&1
q() { psql -qtAX "$LEADFLOW_DATABASE_URL" -c "$1"; }
# REPS reps (200): 4 teams, skills and regions spread so that the filters do real work.
q "INSERT INTO reps (id, name, team, skills, regions, grades, capacity, weight, active)
   SELECT 'rep' || i, 'Rep ' || i, (ARRAY['east','north','south','west'])[1 + i % 4],
          ARRAY[(ARRAY['medical','manufacturing','software','education','retail'])[1 + i % 5]],
          ARRAY[(ARRAY['east','north','south','west'])[1 + (i / 5) % 4]],
          ARRAY['A','B','C','D'], 1000000, 1 + i % 3, true
     FROM generate_series(1, $REPS) i" >/dev/null
[ -n "${LF_BENCH_PROFILE:-}" ] && q "CREATE EXTENSION pg_stat_statements" >/dev/null
# LF_BENCH_SQL: SQL run once before the runs, for experiments (e.g. DROP INDEX ...).
[ -n "${LF_BENCH_SQL:-}" ] && q "$LF_BENCH_SQL" >/dev/null
build/bin/leadflow-intake 2>"$W/intake.log" & pids+=($!)
if [ -n "${LF_BENCH_STACK:-}" ]; then # the whole stack: they take the router's events as it drains
    build/bin/leadflow-scheduler 2>"$W/scheduler.log" & pids+=($!)
    build/bin/leadflow-analytics 2>"$W/analytics.log" & pids+=($!)
fi
for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$HTTP/healthz" >/dev/null 2>&1 && break; sleep 0.1
done
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
got=()
for i in $(seq 1 "$RUNS"); do
    before=$(q "SELECT count(*) FROM leads")
    build/bench/loadgen --port "$HTTP" --rate 3000 --duration $(((LEADS + 2999) / 3000)) \
        --connections 32 --key bench-key --phone-base $((i * 10000000)) >"$W/lg.$i" 2>&1 || true
    stored=$(($(q "SELECT count(*) FROM leads") - before))
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    [ -n "${LF_BENCH_PROFILE:-}" ] && q "SELECT pg_stat_statements_reset()" >/dev/null
    # Polled cheaply (a primary-key range of the outbox: the run's lead.assigned events)
    # so the poll takes no CPU from what it measures; checked exactly at the end.
    mark=$(q "SELECT coalesce(max(id), 0) FROM outbox")
    sleep 1 # intake's backends flush their WAL and table statistics within a second
    IFS='|' read -r wal0 walr0 walf0 < <(q "SELECT pg_current_wal_lsn(), wal_records, wal_fpi FROM pg_stat_wal")
    IFS='|' read -r upd0 hot0 < <(q "SELECT pg_stat_get_tuples_updated('leads'::regclass), pg_stat_get_tuples_hot_updated('leads'::regclass)")
    unassigned=$(q "SELECT count(*) FROM leads WHERE assigned_at IS NULL")
    t0=$(date +%s.%N)
    # shellcheck disable=SC2086 # the wrapper is a command line
    LEADFLOW_LOG_LEVEL=${LF_BENCH_ROUTER_LOG:-warn} ${LF_BENCH_ROUTER_WRAP:-} build/bin/leadflow-router \
        2>"$W/router.$i.log" & rp=$!
    perfp=
    if [ -n "${LF_BENCH_PERF:-}" ] && [ "$i" -eq 1 ]; then # perf profile of the router's backend
        for _ in $(seq 1 50); do
            bp=$(q "SELECT min(pid) FROM pg_stat_activity WHERE application_name = 'leadflow-router'")
            [ -n "$bp" ] && break; sleep 0.05
        done
        perf record -F 499 -g -o "$LF_BENCH_PERF" -p "$bp" >/dev/null 2>&1 & perfp=$!
    fi
    perfr=
    if [ -n "${LF_BENCH_PERF_ROUTER:-}" ] && [ "$i" -eq 1 ]; then # and of the router itself
        perf record -F 999 -g -o "$LF_BENCH_PERF_ROUTER" -p "$rp" >/dev/null 2>&1 & perfr=$!
    fi
    for _ in $(seq 1 6000); do # at most 600 s
        done_n=$(q "SELECT count(*) FROM outbox WHERE id > $mark AND type = 'lead.assigned'")
        [ "$done_n" -ge "$unassigned" ] && break
        sleep 0.1
    done
    t1=$(date +%s.%N)
    left=$(q "SELECT count(*) FROM leads WHERE assigned_at IS NULL")
    # CPU seconds of the router and of its PostgreSQL backends: on a machine shared
    # with other work the wall-clock figure shrinks, leads per CPU-second much less.
    cpu() { awk '{s += $14 + $15} END {printf "%.2f", s / '"$(getconf CLK_TCK)"'}' "$@" 2>/dev/null || echo 0; }
    bpids=$(q "SELECT string_agg(pid::text, ' ') FROM pg_stat_activity WHERE application_name = 'leadflow-router'")
    cpu_r=$(cpu /proc/"$rp"/stat); cpu_b=0
    [ -n "$bpids" ] && cpu_b=$(cpu $(for b in $bpids; do echo /proc/"$b"/stat; done))
    [ -n "$perfp" ] && { kill -INT "$perfp"; wait "$perfp" 2>/dev/null || true; }
    [ -n "$perfr" ] && { kill -INT "$perfr"; wait "$perfr" 2>/dev/null || true; }
    kill -TERM "$rp"; wait "$rp" 2>/dev/null || true
    IFS='|' read -r walb walr walf < <(q "SELECT pg_current_wal_lsn() - '$wal0'::pg_lsn, wal_records - $walr0, wal_fpi - $walf0 FROM pg_stat_wal")
    sleep 1 # the backends' table statistics reach the collector within a second
    IFS='|' read -r updn hotn < <(q "SELECT pg_stat_get_tuples_updated('leads'::regclass) - $upd0, pg_stat_get_tuples_hot_updated('leads'::regclass) - $hot0")
    rate=$(awk -v n="$stored" -v a="$t0" -v b="$t1" 'BEGIN {print int(n / (b - a))}')
    got+=("$rate")
    echo "run $i (load avg before: $load): $stored leads stored, unassigned at the end $left, router $rate leads/s" >&2
    awk -v n="$stored" -v r="$cpu_r" -v b="$cpu_b" 'BEGIN {printf "run '"$i"' cpu: router %.2f s, its PostgreSQL backend %.2f s: %d leads per CPU-second\n", r, b, (r + b > 0) ? n / (r + b) : 0}' >&2
    awk -v n="$stored" -v b="$walb" -v r="$walr" -v f="$walf" -v u="$updn" -v h="$hotn" 'BEGIN {printf "run '"$i"' wal: %d bytes, %.1f records, %.2f full-page images per lead; leads updated %d times, %d HOT\n", b / n, r / n, f / n, u, h}' >&2
    if [ -n "${LF_BENCH_PROFILE:-}" ] && [ "$i" -eq 1 ]; then
        echo "pg_stat_statements during the drain (total ms, calls, ms/call, rows, buffers/call, WAL records/call, query):" >&2
        psql -qtAX "$LEADFLOW_DATABASE_URL" -F ' | ' -c "SELECT round(total_exec_time), calls,
            round((total_exec_time / calls)::numeric, 3), rows,
            round((shared_blks_hit + shared_blks_read)::numeric / calls),
            round(wal_records::numeric / calls),
            left(regexp_replace(query, '\s+', ' ', 'g'), 100)
            FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT ${LF_BENCH_TOP:-12}" >&2
    fi
done
echo "router.pg_assigned_per_sec $(printf '%s\n' "${got[@]}" | median) (runs: ${got[*]}; $LEADS leads, $REPS reps)"
