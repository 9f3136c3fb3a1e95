#!/usr/bin/env bash
# bench/intake_cpu.sh [RUNS=3] [SECONDS=5]: what one lead costs intake in CPU, HTTP to
# commit (docs/benchmarks.md, "Intake: where one lead's CPU goes").
#
# Starts its own PostgreSQL and Redis (bench/lib.sh) and intake alone - or the whole
# stack with LF_BENCH_STACK=1 - then per run: wrk -t2 -c32 for SECONDS with
# bench/post_lead.lua (every request a new person; with LF_BENCH_RATE=N instead
# build/bench/loadgen offering N leads/s open loop on 32 connections, whose achieved
# rate and ack percentiles are printed too), and from /proc the CPU seconds
# (utime + stime) that intake and its PostgreSQL backends (application_name
# leadflow-intake%) spent during the run. Prints per run: leads committed, leads/s
# (wall clock, which swings with whatever else shares the cores), microseconds of CPU per
# lead in intake and in its backends, the commit batches and leads per batch (from
# intake's /metrics), and the load average.
#
# Options (off by default):
#   LF_BENCH_PROFILE=1      pg_stat_statements (track = all) of the runs, top statements
#   LF_BENCH_EXPLAIN=MS     with LF_BENCH_PROFILE: auto_explain of statements slower than
#                           MS ms (nested statements and triggers too) in the server log,
#                           printed at the end (the first 200 lines)
#   LF_BENCH_PERF=FILE      perf record -g of intake during run 1 (FILE.report: the top;
#                           LF_BENCH_PERF_CALLS="--call-graph dwarf" for callers)
#   LF_BENCH_PERF_PG=FILE   perf record -g of intake's backends during run 1
#   LF_BENCH_KEEP=1         keep the temporary folder
#   LF_BENCH_WARMUP=S       seconds of wrk before the runs (1; 0: no warm-up)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
lf_bench_pkgs
. bench/lib.sh
RUNS=${1:-3}; SECS=${2:-5}
make -s WERROR=1 bins benches >/dev/null
trap lf_bench_down EXIT
lf_bench_up
q() { lf_bench_q "$1"; }
if [ -n "${LF_BENCH_PROFILE:-}" ]; then
    q "ALTER SYSTEM SET pg_stat_statements.track = 'all'" >/dev/null
    if [ -n "${LF_BENCH_EXPLAIN:-}" ]; then
        psql -qtAX -v ON_ERROR_STOP=1 "$LEADFLOW_DATABASE_URL" -c "LOAD 'auto_explain'" \
            -c "ALTER SYSTEM SET session_preload_libraries = 'auto_explain'" \
            -c "ALTER SYSTEM SET auto_explain.log_min_duration = '${LF_BENCH_EXPLAIN}ms'" \
            -c "ALTER SYSTEM SET auto_explain.log_analyze = on" \
            -c "ALTER SYSTEM SET auto_explain.log_nested_statements = on" \
            -c "ALTER SYSTEM SET auto_explain.log_triggers = on" >/dev/null
    fi
    q "SELECT pg_reload_conf()" >/dev/null
fi
SVCS=(intake)
[ -n "${LF_BENCH_STACK:-}" ] && SVCS=(intake router scheduler analytics)
lf_bench_start "${SVCS[@]}"
sleep 1
ip=${LF_BENCH_PID[intake]}
TCK=$(getconf CLK_TCK)
cpu() { awk '{s += $14 + $15} END {printf "%.3f", s / '"$TCK"'}' "$@" 2>/dev/null || echo 0; }
threads_cpu() { cpu /proc/"$ip"/task/*/stat; }
backends() { q "SELECT string_agg(pid::text, ' ') FROM pg_stat_activity WHERE application_name LIKE 'leadflow-intake%'"; }
bcpu() { local s=0 b; for b in $1; do [ -r /proc/"$b"/stat ] && s=$(awk -v s="$s" '{printf "%.3f", s + ($14 + $15) / '"$TCK"'}' /proc/"$b"/stat); done; echo "$s"; }
metric() { curl -fs "http://127.0.0.1:$HTTP/metrics" | awk -v k="$1" '$1 == k {print $2}'; }
# Warm-up: the backends connect, plans are cached, libphonenumber loads its metadata.
# LF_BENCH_WARMUP=0: none, so the committers' first batches are the run's (PostgreSQL
# chooses a statement's cached plan from its first calls: at a low rate, small batches).
if [ "${LF_BENCH_WARMUP:-1}" != 0 ]; then
    wrk -t2 -c32 -d"${LF_BENCH_WARMUP:-1}"s -s bench/post_lead.lua "http://127.0.0.1:$HTTP" >/dev/null
fi
[ -n "${LF_BENCH_PROFILE:-}" ] && q "SELECT pg_stat_statements_reset()" >/dev/null
for i in $(seq 1 "$RUNS"); do
    load=$(lf_bench_load)
    bp=$(backends)
    n0=$(q "SELECT count(*) FROM leads"); b0=$(metric leadflow_intake_commit_batches_total)
    ci0=$(threads_cpu); cb0=$(bcpu "$bp")
    perfs=()
    if [ "$i" -eq 1 ] && [ -n "${LF_BENCH_PERF:-}" ]; then
        perf record -F 999 ${LF_BENCH_PERF_CALLS:--g} -o "$LF_BENCH_PERF" -p "$ip" >/dev/null 2>&1 & perfs+=($!)
    fi
    if [ "$i" -eq 1 ] && [ -n "${LF_BENCH_PERF_PG:-}" ]; then
        perf record -F 999 ${LF_BENCH_PERF_CALLS:--g} -o "$LF_BENCH_PERF_PG" -p "${bp// /,}" >/dev/null 2>&1 & perfs+=($!)
    fi
    t0=$(date +%s.%N)
    if [ -n "${LF_BENCH_RATE:-}" ]; then # open loop at that rate: ack latency too
        build/bench/loadgen --port "$HTTP" --rate "$LF_BENCH_RATE" --duration "$SECS" \
            --connections 32 --key "$LF_BENCH_KEY" --phone-base $((i * 10000000)) >"$W/lg.$i" 2>&1 || true
        awk '/^loadgen\.(achieved_rate|status|ack_p50_ms|ack_p99_ms|ack_max_ms)/ {printf "  %s", $0} END {print ""}' "$W/lg.$i"
    else
        wrk -t2 -c32 -d"${SECS}s" -s bench/post_lead.lua "http://127.0.0.1:$HTTP" >"$W/wrk.$i"
    fi
    t1=$(date +%s.%N)
    ci1=$(threads_cpu); cb1=$(bcpu "$bp")
    for p in "${perfs[@]}"; do kill -INT "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    n1=$(q "SELECT count(*) FROM leads"); b1=$(metric leadflow_intake_commit_batches_total)
    non2xx=$(awk '/Non-2xx/ {print $NF}' "$W/wrk.$i" 2>/dev/null || true); non2xx=${non2xx:-0}
    awk -v n=$((n1 - n0)) -v a="$t0" -v b="$t1" -v i0="$ci0" -v i1="$ci1" -v p0="$cb0" \
        -v p1="$cb1" -v bt=$((b1 - b0)) -v load="$load" -v non="$non2xx" -v run="$i" 'BEGIN {
        printf "run %d: %d leads, %d leads/s, non-2xx %d; CPU per lead: intake %.0f us, its backends %.0f us, together %.0f us; %d batches, %.1f leads per batch; load avg %s\n",
            run, n, n / (b - a), non, (i1 - i0) * 1e6 / n, (p1 - p0) * 1e6 / n,
            (i1 - i0 + p1 - p0) * 1e6 / n, bt, (bt ? n / bt : 0), load }'
done
for f in "${LF_BENCH_PERF:-}" "${LF_BENCH_PERF_PG:-}"; do
    [ -n "$f" ] && [ -f "$f" ] &&
        perf report -i "$f" --no-children --sort dso,sym --stdio 2>/dev/null | grep -v '^#' | grep '%' | head -60 >"$f.report" &&
        echo "perf top of $f in $f.report" >&2
done
if [ -n "${LF_BENCH_PROFILE:-}" ]; then
    echo "pg_stat_statements (total ms, calls, ms/call, rows, query):" >&2
    q "SELECT round(total_exec_time) || ' | ' || calls || ' | ' || round((total_exec_time / calls)::numeric, 3) || ' | ' || rows || ' | ' || left(regexp_replace(query, '\s+', ' ', 'g'), 160)
         FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT ${LF_BENCH_TOP:-15}" >&2
    [ -n "${LF_BENCH_EXPLAIN:-}" ] && grep -A 60 'duration' "$W/pg/postgres.log" | head -200 >&2 || true
fi
