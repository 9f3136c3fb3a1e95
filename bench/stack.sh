#!/usr/bin/env bash
# bench/stack.sh [RUNS=3] [SECONDS=10] [LEADS=20000]: intake and router throughput with
# the whole stack up (intake, router, scheduler and analytics on one PostgreSQL and one
# Redis, bench/lib.sh), against the do-nothing libmicrohttpd server measured in the
# same run (docs/benchmarks.md).
#
# Per run:
#  1. reference: wrk -t2 -c32 for SECONDS with bench/post_lead.lua against mhd_null;
#  2. intake: the same wrk against intake while the router, scheduler and analytics
#     consume what it commits; the figure is the rows added to `leads` divided by the
#     wall time of wrk (committed leads/s, not answered requests);
#  3. the router catches up with step 2 (at most LF_BENCH_WAIT s, default 60: its
#     catch-up rate is printed, not a figure);
#  4. router: the router is stopped, LEADS leads are stored at LF_BENCH_STORE_RATE/s
#     (default 5,000, build/bench/loadgen), the router starts again and the clock runs
#     until every one of them is assigned (polled every 100 ms, at most
#     LF_BENCH_DRAIN_MAX s, default 120); the figure is the leads assigned / that time.
#     The scheduler and analytics keep consuming the router's events meanwhile.
# 200 reps in 4 teams with skills and regions, capacity 1,000,000 (bench/lib.sh).
# Prints one line per figure on stdout (median, runs, spread), per-run details with
# the load average on stderr; LF_BENCH_PROFILE=1 adds pg_stat_statements' top statements;
# LF_BENCH_PERF=FILE records a perf profile (cpu-clock, call graphs) of the router's
# PostgreSQL backend during run 1's intake phase and catch-up (the phase whose CPU per
# lead bench/cpu.sh reports); LF_BENCH_PERF_APP=NAME profiles the backend of another
# application_name instead (e.g. leadflow-scheduler), and LF_BENCH_PERF_PROC=SERVICE
# also a service's own process, into FILE.proc.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
lf_bench_pkgs
. bench/lib.sh
. bench/cpu.sh
RUNS=${1:-3}; SECS=${2:-10}; LEADS=${3:-20000}
STORE_RATE=${LF_BENCH_STORE_RATE:-5000}
make -s WERROR=1 bins benches >/dev/null
trap lf_bench_down EXIT
lf_bench_up
SVCS=(intake router scheduler analytics)
lf_bench_start mhd_null "${SVCS[@]}"
sleep 1 # let the ZeroMQ subscriptions connect
unassigned() { lf_bench_q "SELECT count(*) FROM leads WHERE created_at >= '$1' AND assigned_at IS NULL"; }
# The router's progress, polled cheaply. The exact count above reads every row of
# `leads` (a sequential scan: 30 ms at 18,000 leads on a quiet machine, 94 ms per call in
# a profiled run), ten times a second, on the cores it measures. So the poll counts the
# router's lead.assigned events instead, through the outbox's primary key, above the last
# one it saw: the router is one process whose transactions commit one after another, so
# each batch's events lie above the previous batch's (ids come from a sequence taken
# inside the transaction). progress_start SINCE counts the backlog (exactly) and the
# newest lead.assigned in one snapshot; progress_left polls and sets `left`; when the
# events say the backlog is done, the exact count decides (a lead.assigned of a lead
# outside the backlog, which the benchmark does not make, would only end the cheap
# polls early). Sessions with sequential scans off (a fresh outbox has no statistics)
# and no JIT (docs/benchmarks.md: enable_seqscan = off and JIT).
progress_start() {
    IFS='|' read -r backlog apos < <(lf_bench_q "SELECT (SELECT count(*) FROM leads
        WHERE created_at >= '$1' AND assigned_at IS NULL),
        (SELECT coalesce(max(id), 0) FROM outbox WHERE type = 'lead.assigned')")
    pdone=0; psince=$1; left=$backlog
}
progress_left() {
    local n m
    IFS='|' read -r n m < <(lf_bench_q "SET jit = off; SET enable_seqscan = off;
        SELECT count(*), coalesce(max(id), $apos) FROM outbox
        WHERE id > $apos AND type = 'lead.assigned'")
    pdone=$((pdone + n)); apos=$m; left=$((backlog - pdone))
    if [ "$left" -le 0 ]; then
        left=$(unassigned "$psince"); backlog=$((pdone + left))
    fi
}
# LF_BENCH_PROFILE=1: where PostgreSQL's time went, by statement, for each measured phase
# (pg_stat_statements is reset before it): stmts_reset, then stmts TITLE.
stmts_reset() {
    [ -n "${LF_BENCH_PROFILE:-}" ] || return 0
    lf_bench_q "SELECT pg_stat_statements_reset()" >/dev/null
}
stmts() {
    [ -n "${LF_BENCH_PROFILE:-}" ] || return 0
    echo "pg_stat_statements of $1, top ${LF_BENCH_TOP:-15} by total time (ms, calls, ms/call, rows, buffers/call, WAL records/call, query):" >&2
    lf_bench_q "SELECT round(total_exec_time), calls, round((total_exec_time / calls)::numeric, 3),
        rows, round((shared_blks_hit + shared_blks_read)::numeric / calls),
        round(wal_records::numeric / calls), left(regexp_replace(query, '\s+', ' ', 'g'), 140) FROM pg_stat_statements
        ORDER BY total_exec_time DESC LIMIT ${LF_BENCH_TOP:-15}" | tr '|' ' ' >&2
}
# What PostgreSQL did besides the statements, per phase, to explain a run whose backends
# spent more CPU per lead than the others: WAL records and full-page images (the first
# change of a page after a checkpoint logs the whole page), checkpoints, autovacuum and
# autoanalyze runs of the busy tables (a vacuum of lead_search empties its GIN pending
# list, which an insert that finds the list full must otherwise empty itself). pgs_snap
# prints one line of counters, pgs_diff BEFORE AFTER N the differences.
pgs_snap() {
    lf_bench_q "SELECT w.wal_records, w.wal_fpi, w.wal_bytes,
        b.checkpoints_timed + b.checkpoints_req,
        (SELECT string_agg(relname || ':' || autovacuum_count || ':' || autoanalyze_count, ' '
                           ORDER BY relname) FROM pg_stat_user_tables
          WHERE relname IN ('leads', 'lead_search', 'lead_events', 'outbox'))
        FROM pg_stat_wal w, pg_stat_bgwriter b" | tr '|' ' '
}
pgs_diff() {
    awk -v n="$3" 'NR == 1 { for (i = 1; i <= NF; i++) a[i] = $i; next }
        { printf "WAL records %.1f, full-page images %.2f, WAL bytes %.0f per lead; checkpoints %d; autovacuum:autoanalyze",
                 ($1 - a[1]) / n, ($2 - a[2]) / n, ($3 - a[3]) / n, $4 - a[4]
          for (i = 5; i <= NF; i++) { split(a[i], x, ":"); split($i, y, ":")
              printf " %s +%d:+%d", y[1], y[2] - x[2], y[3] - x[3] } }' <(echo "$1") <(echo "$2")
}
# Rows written per lead, by table (inserted, updated of which HOT, deleted), per phase:
# the floor of what PostgreSQL must do for a lead whatever the statements look like.
# PostgreSQL's table counters reach pg_stat_user_tables when a backend flushes them (at
# most about a second late), so a phase of thousands of leads is counted to within a few.
rows_snap() {
    lf_bench_q "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del
        FROM pg_stat_user_tables WHERE schemaname = 'public' ORDER BY relname" | tr '|' ' ' >"$1"
}
rows_diff() {
    awk -v n="$3" 'NR == FNR { a[$1] = $2 " " $3 " " $4 " " $5; next }
        { split(a[$1], x, " "); i = $2 - x[1]; u = $3 - x[2]; h = $4 - x[3]; d = $5 - x[4]
          if (i + u + d < n / 100) next
          printf "%s%s ins %.2f upd %.2f (HOT %.2f) del %.2f", sep, $1, i / n, u / n, h / n, d / n
          sep = "; "; t += i + u + d }
        END { printf "; rows written per lead %.2f", t / n }' "$1" "$2"
}
# intake's group commits so far (its /metrics): the leads per batch of a phase, which
# decide much of its backends' CPU per lead (a call has a fixed cost of about 1 ms).
intake_batches() {
    curl -fs "http://127.0.0.1:$HTTP/metrics" | awk '$1 == "leadflow_intake_commit_batches_total" {print $2}'
}
rps() { wrk -t2 -c32 -d"${SECS}s" -s bench/post_lead.lua "$1" >"$2"; awk '/Requests\/sec/ {print int($2)}' "$2"; }
ref=(); got=(); drain=(); cpu=()
for i in $(seq 1 "$RUNS"); do
    load0=$(lf_bench_load)
    ref+=("$(rps "http://127.0.0.1:$NULLP" "$W/wrk-ref.$i")")
    before=$(lf_bench_q "SELECT count(*) FROM leads")
    since=$(lf_bench_q "SELECT now()")
    stmts_reset
    lf_bench_cpu_snap "$W/cpu0.$i"
    pgs0=$(pgs_snap); batches0=$(intake_batches)
    rows_snap "$W/rows0.$i"
    perfp=
    if [ -n "${LF_BENCH_PERF:-}" ] && [ "$i" -eq 1 ]; then
        bp=$(lf_bench_q "SELECT min(pid) FROM pg_stat_activity WHERE application_name = '${LF_BENCH_PERF_APP:-leadflow-router}'")
        perf record -e cpu-clock -F 499 -g -o "$LF_BENCH_PERF" -p "$bp" >/dev/null 2>&1 & perfp=$!
        if [ -n "${LF_BENCH_PERF_PROC:-}" ]; then
            perf record -e cpu-clock -F 499 -g -o "$LF_BENCH_PERF.proc" \
                -p "${LF_BENCH_PID[$LF_BENCH_PERF_PROC]}" >/dev/null 2>&1 & perfp="$perfp $!"
        fi
    fi
    t0=$(date +%s.%N)
    wrk -t2 -c32 -d"${SECS}s" -s bench/post_lead.lua "http://127.0.0.1:$HTTP" >"$W/wrk.$i"
    t1=$(date +%s.%N)
    after=$(lf_bench_q "SELECT count(*) FROM leads")
    non2xx=$(awk '/Non-2xx/ {print $NF}' "$W/wrk.$i"); non2xx=${non2xx:-0}
    got+=("$(awk -v n=$((after - before)) -v a="$t0" -v b="$t1" 'BEGIN {print int(n / (b - a))}')")
    # 3. the router catches up (not a figure: it ran beside intake's load)
    c0=$(date +%s.%N); progress_start "$since"
    end=$(($(date +%s) + ${LF_BENCH_WAIT:-60}))
    while [ "$left" -gt 0 ] && [ "$(date +%s)" -lt "$end" ]; do sleep 0.2; progress_left; done
    cbacklog=$backlog; cleft=$left
    c1=$(date +%s.%N)
    lf_bench_cpu_snap "$W/cpu1.$i"
    for p in $perfp; do kill -INT "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    split=$(lf_bench_cpu_report "$W/cpu0.$i" "$W/cpu1.$i" $((after - before)))
    cpu+=("$(sed -n 's/.*stack total \([0-9]*\),.*/\1/p' <<<"$split")")
    echo "run $i cpu, wrk phase and the catch-up ($cleft not assigned at its end): $split" >&2
    echo "run $i PostgreSQL, same phase: $(pgs_diff "$pgs0" "$(pgs_snap)" $((after - before)));" \
        "intake's commit batches $(awk -v b="$(($(intake_batches) - batches0))" -v n=$((after - before)) \
            'BEGIN {printf "%d, %.1f leads per batch", b, b ? n / b : 0}')" >&2
    rows_snap "$W/rows1.$i"
    echo "run $i rows per lead, same phase: $(rows_diff "$W/rows0.$i" "$W/rows1.$i" $((after - before)))" >&2
    stmts "run $i, wrk phase and the catch-up"
    # 4. the router drains LEADS leads stored while it was stopped
    lf_bench_stop router
    since=$(lf_bench_q "SELECT now()")
    build/bench/loadgen --port "$HTTP" --rate "$STORE_RATE" \
        --duration "$(awk -v n="$LEADS" -v r="$STORE_RATE" 'BEGIN {print n / r}')" --connections 32 \
        --key "$LF_BENCH_KEY" --phone-base $((i * 10000000)) >"$W/lg.$i" 2>&1 || true
    progress_start "$since"; stored=$backlog
    stmts_reset
    lf_bench_cpu_snap "$W/cpu2.$i"
    d0=$(date +%s.%N)
    lf_bench_start router
    dend=$(($(date +%s) + ${LF_BENCH_DRAIN_MAX:-120}))
    while [ "$left" -gt 0 ] && [ "$(date +%s)" -lt "$dend" ]; do sleep 0.1; progress_left; done
    dleft=$left
    lf_bench_cpu_snap "$W/cpu3.$i"
    # the same split for the drain: the router (a new process and backend) alone with the
    # scheduler and analytics, as bench/router_drain.sh measures it, on the same database
    echo "run $i cpu, the drain ($dleft not assigned at its end):" \
        "$(lf_bench_cpu_report "$W/cpu2.$i" "$W/cpu3.$i" $((stored - dleft)))" >&2
    stmts "run $i, the drain"
    d1=$(date +%s.%N)
    drain+=("$(awk -v n=$((stored - dleft)) -v a="$d0" -v b="$d1" 'BEGIN {print int(n / (b - a))}')")
    for s in "${SVCS[@]}"; do lf_bench_alive "$s"; done
    echo "run $i (load avg before: $load0, after: $(lf_bench_load)): reference ${ref[-1]} req/s;" \
        "intake ${got[-1]} leads committed/s ($((after - before)) leads of $(awk '/requests in/ {print $1}' "$W/wrk.$i") requests, non-2xx $non2xx);" \
        "router backlog after the intake phase $cbacklog, $cleft left after" \
        "$(awk -v a="$c0" -v b="$c1" 'BEGIN {printf "%.1f", b - a}') s;" \
        "drain: $stored leads stored with the router stopped, $dleft unassigned at the end," \
        "router ${drain[-1]} leads assigned/s" >&2
done
fig() { # name values detail
    echo "$1 $(printf '%s\n' $2 | lf_bench_median) (runs: ${2% }; $(printf '%s\n' $2 | lf_bench_spread); $3)"
}
fig stack.reference_req_per_sec "${ref[*]}" "mhd_null, wrk -t2 -c32 ${SECS}s"
fig stack.intake_committed_per_sec "${got[*]}" "whole stack, wrk -t2 -c32 ${SECS}s; target >= 20000"
fig stack.cpu_us_per_lead "${cpu[*]}" "CPU of the four services, their PostgreSQL backends, PostgreSQL's own processes and Redis per lead committed and assigned, wrk phase plus the catch-up; per process in build/bench/stack.err"
r=$(printf '%s\n' "${ref[@]}" | lf_bench_median); g=$(printf '%s\n' "${got[@]}" | lf_bench_median)
awk -v g="$g" -v r="$r" 'BEGIN {printf "stack.intake_ratio_to_reference %.3f (target >= 0.35)\n", (r > 0 ? g / r : 0)}'
fig stack.router_assigned_per_sec "${drain[*]}" "$LEADS leads, $LF_BENCH_REPS reps, whole stack; target >= 20000"
