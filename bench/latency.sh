#!/usr/bin/env bash
# bench/latency.sh [RUNS] [RATE] [SECONDS]: intake ack latency and end-to-end latency
# (request sent → lead graded and assigned in PostgreSQL) at a constant offered rate
# (docs/benchmarks.md: 5,000 leads/s, targets p99 ≤ 20 ms and ≤ 100 ms).
#
# Starts its own PostgreSQL and Redis on free loopback ports, migrates, loads the demo
# reps with unlimited capacity, starts the four services (release build, build/bin),
# then per run: build/bench/loadgen at RATE for SECONDS with 32 connections (open
# loop: latency counts from the scheduled send time), waits until the router has
# assigned every lead of the run, and computes in SQL the p99 of
# assigned_at − extra.sent_us over the leads of that run. It also computes the same
# from the commit time of the assigning transaction (track_commit_timestamp), since
# assigned_at is now(), the *start* of the router's batch transaction.
# A lead not assigned within LF_BENCH_WAIT seconds (default 60) after the load ends
# counts with the time of the query: the figure is then a lower bound, shown as ">N".
# Prints one line per figure: median over RUNS, then the runs and the spread.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. bench/lib.sh
RUNS=${1:-3}; RATE=${2:-5000}; SECS=${3:-20}; CONNS=${LF_BENCH_CONNECTIONS:-32}
make -s WERROR=1 bins benches >/dev/null
W=$(mktemp -d /tmp/leadflow-bench.XXXXXX); chmod 755 "$W"
PG=$(lf_free_port); RP=$(lf_free_port); HTTP=$(lf_free_port); NULLP=$(lf_free_port)
Z1=$(lf_free_port); Z2=$(lf_free_port); Z3=$(lf_free_port)
pids=()
lg=
cleanup() {
    [ -n "$lg" ] && kill "$lg" 2>/dev/null || true
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -TERM "${pids[$i]}" 2>/dev/null || true; done
    wait 2>/dev/null || true
    lf_redis_stop "$W/redis" "$RP"; lf_pg_stop "$W/pg"
    [ -n "${LF_BENCH_KEEP:-}" ] && echo "kept $W" >&2 || rm -rf "$W"
}
trap cleanup EXIT
lf_pg_start "$W/pg" "$PG" >/dev/null
export LEADFLOW_DATABASE_URL=postgresql://leadflow@127.0.0.1:$PG/leadflow
psql -qtAX "$LEADFLOW_DATABASE_URL" -c "ALTER SYSTEM SET track_commit_timestamp = on" >/dev/null
[ -n "${LF_BENCH_PROFILE:-}" ] && psql -qtAX "$LEADFLOW_DATABASE_URL" \
    -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'" >/dev/null
lf_as_pg "$PG_BIN/pg_ctl" -D "$W/pg/data" -o "-p $PG" -l "$W/pg/postgres.log" -w -t 60 restart >/dev/null
lf_redis_start "$W/redis" "$RP"
lf_bench_stack_env "$HTTP" "$RP" "$Z1" "$Z2" "$Z3"
[ -n "${LF_BENCH_PROFILE:-}" ] && psql -qX "$LEADFLOW_DATABASE_URL" -c "CREATE EXTENSION pg_stat_statements" >/dev/null
build/bench/mhd_null "$NULLP" & pids+=($!)
for s in intake router scheduler analytics; do
    build/bin/leadflow-$s 2>"$W/$s.log" & pids+=($!)
done
for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$HTTP/healthz" >/dev/null 2>&1 && break; sleep 0.1
done
curl -fs "http://127.0.0.1:$HTTP/healthz" >/dev/null || { echo "intake did not start" >&2; cat "$W/intake.log" >&2; exit 1; }
sleep 1 # let the ZeroMQ subscriptions connect
q() { psql -qtAX "$LEADFLOW_DATABASE_URL" -c "$1"; }
median() { tr -d '>' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
spread() { tr -d '>' | sort -g | awk '{a[NR]=$1} END {printf "min %s max %s", a[1], a[NR]}'; }
ack=(); e2e=(); e2ec=(); rate=(); ref=()
for i in $(seq 1 "$RUNS"); do
    # the reference: the do-nothing libmicrohttpd server at the same offered rate
    build/bench/loadgen --port "$NULLP" --rate "$RATE" --duration "$SECS" \
        --connections "$CONNS" >"$W/ref.$i" || true
    ref+=("$(awk '/ack_p99_ms/ {print $2}' "$W/ref.$i")")
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    since=$(q "SELECT now()")
    build/bench/loadgen --port "$HTTP" --rate "$RATE" --duration "$SECS" \
        --connections "$CONNS" --key bench-key --phone-base $((i * 10000000)) >"$W/lg.$i" &
    lg=$!
    if [ -n "${LF_BENCH_PROFILE:-}" ] && [ "$i" -eq 1 ]; then # where the CPU goes, 5 s
        sleep 5
        { perf record -a -o "$W/perf.data" -- sleep 5 >/dev/null 2>&1 &&
            perf report -i "$W/perf.data" --sort comm,dso,sym --stdio 2>/dev/null |
            grep -E '^ +[0-9]' | head -40 >&2; } || true
        { top -b -n 1 -w 200 | head -20 >&2; } || true
    fi
    wait "$lg" || true
    n=$(q "SELECT count(*) FROM leads WHERE created_at >= '$since'")
    wait_end=$(($(date +%s) + ${LF_BENCH_WAIT:-60}))
    while :; do # the router catches up (at most LF_BENCH_WAIT seconds, default 60)
        left=$(q "SELECT count(*) FROM leads WHERE created_at >= '$since' AND assigned_at IS NULL")
        [ "$left" -eq 0 ] || [ "$(date +%s)" -ge "$wait_end" ] && break; sleep 0.2
    done
    # a lead still unassigned counts with now() as its time: the p99 is then a lower bound
    row=$(q "WITH r AS (SELECT extract(epoch FROM coalesce(assigned_at, now())) * 1e6 - (extra->>'sent_us')::bigint AS a,
                extract(epoch FROM CASE WHEN assigned_at IS NULL THEN now() ELSE pg_xact_commit_timestamp(xmin) END) * 1e6
                  - (extra->>'sent_us')::bigint AS c
              FROM leads WHERE created_at >= '$since')
             SELECT round((percentile_cont(0.99) WITHIN GROUP (ORDER BY a) / 1000)::numeric, 1),
                    round((percentile_cont(0.99) WITHIN GROUP (ORDER BY c) / 1000)::numeric, 1),
                    round((percentile_cont(0.5) WITHIN GROUP (ORDER BY c) / 1000)::numeric, 1),
                    count(*) FROM r")
    IFS='|' read -r a99 c99 c50 nstored <<<"$row"
    nassigned=$((nstored - left))
    [ "$left" -gt 0 ] && { a99=">$a99"; c99=">$c99"; }
    p99=$(awk '/ack_p99_ms/ {print $2}' "$W/lg.$i")
    ach=$(awk '/achieved_rate/ {print $2}' "$W/lg.$i")
    st=$(awk '/loadgen.status/ {$1=""; print}' "$W/lg.$i")
    ack+=("$p99"); e2e+=("$a99"); e2ec+=("$c99"); rate+=("$ach")
    echo "run $i (load avg before: $load): reference p99 ${ref[-1]} ms; intake achieved $ach/s,$st; ack p50 $(awk '/ack_p50_ms/ {print $2}' "$W/lg.$i") p99 $p99 p99.9 $(awk '/ack_p99_9_ms/ {print $2}' "$W/lg.$i") max $(awk '/ack_max_ms/ {print $2}' "$W/lg.$i") ms; stored $n, assigned $nassigned (unassigned after wait: $left); e2e p99 by assigned_at $a99 ms, by commit time p50 $c50 p99 $c99 ms; load avg after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
done
if [ -n "${LF_BENCH_PROFILE:-}" ]; then # where PostgreSQL's time went, by statement
    echo "pg_stat_statements, top 10 by total time (ms, calls, ms/call, rows, query):" >&2
    psql -qtAX "$LEADFLOW_DATABASE_URL" -F ' | ' -c "SELECT round(total_exec_time), calls,
        round((total_exec_time / calls)::numeric, 3), rows, left(regexp_replace(query, '\s+', ' ', 'g'), 110)
        FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 10" >&2
fi
echo "intake.achieved_rate $(printf '%s\n' "${rate[@]}" | median) (offered $RATE/s, runs: ${rate[*]})"
echo "intake.reference_ack_p99_ms $(printf '%s\n' "${ref[@]}" | median) (do-nothing libmicrohttpd at the same rate, runs: ${ref[*]})"
echo "intake.ack_p99_ms $(printf '%s\n' "${ack[@]}" | median) (runs: ${ack[*]}; $(printf '%s\n' "${ack[@]}" | spread); target <= 20)"
lb() { printf '%s\n' "$@" | grep -q '>' && printf '>' || true; }
echo "e2e.assigned_p99_ms $(lb "${e2e[@]}")$(printf '%s\n' "${e2e[@]}" | median) (runs: ${e2e[*]}; $(printf '%s\n' "${e2e[@]}" | spread); target <= 100)"
echo "e2e.assigned_committed_p99_ms $(lb "${e2ec[@]}")$(printf '%s\n' "${e2ec[@]}" | median) (runs: ${e2ec[*]}; $(printf '%s\n' "${e2ec[@]}" | spread); commit time of the assigning transaction)"
