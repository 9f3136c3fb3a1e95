#!/usr/bin/env bash
# bench/all.sh: `make bench`. Builds the release binaries, runs every benchmark of
# docs/benchmarks.md one after another (each starts its own PostgreSQL and Redis on
# free loopback ports and stops them), and rewrites the results between the two marker
# lines of docs/benchmarks.md: date, commit, machine, one row per target (median,
# runs, spread, same-run reference, ratio, target, met?), the load average before and
# after each benchmark, and the figure lines as the benchmarks printed them.
#
# Environment:
#   BENCH_QUICK=1   one short run of each, to smoke-test the harness in a few minutes;
#                   the table then goes to build/bench/results.md, not into the doc
#                   (its figures are not results)
#   BENCH_ONLY="stack latency"  run only these (stack latency memory router scheduler
#                   analytics backpressure); the others' rows say "not run". `scheduler`
#                   (bench/scheduler.sh, the scheduler alone: about 5 minutes) runs only
#                   when named; latency.sh measures the scheduler with the whole stack up
#   BENCH_DOC=FILE  where the table goes (default docs/benchmarks.md, or
#                   build/bench/results.md with BENCH_QUICK=1)
# Every benchmark's stdout and stderr are kept in build/bench/NAME.out and NAME.err.
# Each benchmark has a time limit (timeout); a full run takes about 20-25 minutes on
# the 2-core machine of docs/benchmarks.md, a quick one about 5.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. bench/lib.sh
QUICK=${BENCH_QUICK:-0}; [ "$QUICK" = 0 ] && QUICK=
OUT=build/bench
DOC=${BENCH_DOC:-$([ -n "$QUICK" ] && echo "$OUT/results.md" || echo docs/benchmarks.md)}
BENCH_ONLY=${BENCH_ONLY:-}; ONLY=" ${BENCH_ONLY//,/ } "
mkdir -p "$OUT"
rm -f "$OUT"/*.out "$OUT"/*.err "$OUT"/router.[0-9]* # nothing of an earlier run in this table
lf_need_pkgs $LF_BUILD_PKGS $LF_RUN_PKGS && lf_bench_pkgs || exit 1
lf_say "building the release binaries"
make -s -j"$(nproc)" WERROR=1 bins benches >/dev/null || { lf_say "build failed"; exit 1; }

# name | limit in seconds | full command | quick command
if [ -z "$QUICK" ]; then
    RUNS=3 SCHED_N=100000 FUNNEL_LEADS=1000000 ROUTER_LEADS=1000000
    BENCHES=(
        "stack|420|LF_BENCH_WAIT=20 LF_BENCH_DRAIN_MAX=60 bash bench/stack.sh 3 10 20000"
        "latency|900|LF_BENCH_WAIT=20 bash bench/latency.sh 3 5000 60"
        "memory|240|bash bench/memory.sh 3 5000 15"
        "router|120|bench_router 3 $ROUTER_LEADS"
        "scheduler|480|LF_BENCH_BULLMQ_N=$SCHED_N bash bench/scheduler.sh 3 $SCHED_N"
        "analytics|480|bash bench/analytics.sh 3 200000 $FUNNEL_LEADS"
        "backpressure|300|bash bench/backpressure.sh 20"
    )
else
    RUNS=1 SCHED_N=10000 FUNNEL_LEADS=20000 ROUTER_LEADS=100000
    BENCHES=(
        "stack|300|LF_BENCH_WAIT=15 LF_BENCH_DRAIN_MAX=30 bash bench/stack.sh 1 3 3000"
        "latency|300|LF_BENCH_WAIT=15 LF_BENCH_TIMER_SECS=2 LF_BENCH_BURST_N=$SCHED_N bash bench/latency.sh 1 5000 5"
        "memory|120|bash bench/memory.sh 1 5000 3"
        "router|60|bench_router 1 $ROUTER_LEADS"
        "scheduler|300|LF_BENCH_BULLMQ_N=$SCHED_N bash bench/scheduler.sh 1 $SCHED_N"
        "analytics|300|bash bench/analytics.sh 1 20000 $FUNNEL_LEADS"
        "backpressure|120|bash bench/backpressure.sh 5"
    )
fi

# The router's decision code alone, in memory: RUNS runs of build/bench/bench_router
# (a function, exported to the benchmark's shell).
bench_router() {
    local runs=$1 n=$2 v=() i
    for i in $(seq 1 "$runs"); do
        build/bench/bench_router "$n" >"$OUT/router.$i" || return 1
        v+=("$(awk '$1 == "router.grade_assign_per_sec" {print $2}' "$OUT/router.$i")")
        echo "run $i: $(tr '\n' ' ' <"$OUT/router.$i")" >&2
    done
    echo "router.grade_assign_per_sec $(printf '%s\n' "${v[@]}" | lf_bench_median) (runs: ${v[*]}; $(printf '%s\n' "${v[@]}" | lf_bench_spread); $n leads, 200 reps, in memory; target >= 50000)"
}
export OUT
export -f bench_router lf_bench_median lf_bench_spread

declare -A RC LOAD0 LOAD1 SECS CMD
t_start=$(date -u +%s)
for b in "${BENCHES[@]}"; do
    IFS='|' read -r name limit cmd <<<"$b"
    [ "$ONLY" != "  " ] && [[ "$ONLY" != *" $name "* ]] && continue
    # the scheduler alone duplicates latency.sh's whole-stack burst: only when named
    [ "$name" = scheduler ] && [[ "$ONLY" != *" scheduler "* ]] && continue
    CMD[$name]=$cmd
    if [ "$name" = backpressure ] && [ ! -f bench/backpressure.sh ]; then
        RC[$name]=absent; continue
    fi
    lf_say "$name: $cmd (at most ${limit}s)"
    LOAD0[$name]=$(lf_bench_load); t0=$(date +%s)
    timeout --kill-after=30 "$limit" bash -c "$cmd" >"$OUT/$name.out" 2>"$OUT/$name.err"
    RC[$name]=$?
    SECS[$name]=$(($(date +%s) - t0)); LOAD1[$name]=$(lf_bench_load)
    [ "${RC[$name]}" -eq 0 ] || { lf_say "$name failed (exit ${RC[$name]}), the end of its stderr:"; tail -5 "$OUT/$name.err" >&2; }
    cat "$OUT/$name.out"
done
t_end=$(date -u +%s)

# --- the table ---------------------------------------------------------------------
# fig KEY: the line a benchmark printed for KEY (first field), from every .out file.
fig() { cat "$OUT"/*.out 2>/dev/null | awk -v k="$1" '$1 == k {print; exit}'; }
val() { fig "$1" | awk '{print $2}'; }
runs() { fig "$1" | sed -n 's/.*runs: \([^;)]*\).*/\1/p'; }
num() { # a number with thousands separators (a leading '>' kept)
    awk -v x="$1" 'BEGIN {
        p = ""; if (substr(x, 1, 1) == ">") { p = "> "; x = substr(x, 2) }
        if (x !~ /^-?[0-9.]+$/) { print x; exit }
        if (x + 0 >= 100 || x == int(x)) x = sprintf("%.0f", x); else if (x + 0 >= 10) x = sprintf("%.1f", x); else x = sprintf("%.2f", x)
        n = split(x, parts, "."); i = parts[1]; o = ""
        while (length(i) > 3) { o = "," substr(i, length(i) - 2) o; i = substr(i, 1, length(i) - 3) }
        print p i o (n > 1 ? "." parts[2] : "") }'
}
# meets VALUE OP TARGET: yes or **no** (a lower bound ">N" meets no "<=" target)
meets() {
    awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
        lb = (substr(v, 1, 1) == ">"); if (lb) v = substr(v, 2)
        ok = (op == ">=") ? (v + 0 >= t + 0) : (!lb && v + 0 <= t + 0)
        print ok ? "yes" : "**no**" }'
}
# row LABEL KEY TARGET_OP TARGET REF_KEY REF_LABEL RATIO_OP RATIO_TARGET BENCH
row() {
    local label=$1 key=$2 op=$3 t=$4 rkey=$5 rlabel=$6 rop=$7 rt=$8 bench=$9
    local v r rs ratio met="—" tgt="—" spread n ref="—"
    if [ -z "${CMD[$bench]:-}" ]; then echo "| $label | | not run | | | | | |"; return; fi
    if [ "${RC[$bench]}" = absent ]; then echo "| $label | | not measured: bench/$bench.sh does not exist yet | | | | | |"; return; fi
    v=$(val "$key")
    if [ -z "$v" ]; then echo "| $label | | not measured: \`$key\` missing (exit ${RC[$bench]}, build/bench/$bench.err) | | | | | |"; return; fi
    if ! [[ "$v" =~ ^\>?[0-9.]+$ ]]; then echo "| $label | | not measured: no run had data (build/bench/$bench.err) | | | | | |"; return; fi
    rs=$(runs "$key"); n=$(wc -w <<<"$rs")
    [ "$n" -eq 0 ] && n=$(fig "$key" | grep -o '[0-9]* queries' | head -1) # the funnel: one run of N queries
    spread=$(printf '%s\n' $rs | tr -d '>' | awk '$1 ~ /^[0-9.]+$/' | sort -g | awk '{a[++n]=$1} END {if (n > 1) print a[1] "|" a[n]}')
    [ -n "$spread" ] && spread="$(num "${spread%|*}") – $(num "${spread#*|}")"
    [ -n "$op" ] && { tgt="$op $(num "$t")"; met=$(meets "$v" "$op" "$t"); }
    if [ -n "$rkey" ]; then
        r=$(val "$rkey")
        if [ -n "$r" ]; then
            ref="$rlabel $(num "$r")"
            ratio=$(awk -v a="${v#>}" -v b="$r" 'BEGIN {if (b + 0 > 0) { x = a / b
                printf (x >= 100 ? "%.0f" : x >= 10 ? "%.1f" : x >= 1 ? "%.2f" : "%.3f"), x } }')
        fi
    fi
    if [ -n "$rop" ]; then
        if [ "$tgt" = "—" ]; then tgt="ratio $rop $rt"; else tgt="$tgt and ratio $rop $rt"; fi
        local m2; m2=$([ -n "${ratio:-}" ] && meets "$ratio" "$rop" "$rt" || echo "**no**")
        met=$([ "$met" = "**no**" ] || [ "$m2" = "**no**" ] && echo "**no**" || echo yes)
    fi
    echo "| $label | ${n:-} | $(num "$v") | ${spread:-—} | $ref | ${ratio:-—} | $tgt | $met |"
}

table() {
    echo "| figure | runs | median | spread (min – max) | reference (same run) | ratio | target | met? |"
    echo "|---|---|---|---|---|---|---|---|"
    row "intake: leads committed/s, wrk -c32, whole stack" stack.intake_committed_per_sec ">=" 20000 stack.reference_req_per_sec "mhd_null req/s" ">=" 0.35 stack
    row "router: leads assigned/s in PostgreSQL, 200 reps, whole stack" stack.router_assigned_per_sec ">=" 20000 router.grade_assign_per_sec "in memory/s" "" "" stack
    row "router: grade+assign/s in memory, 200 reps (bench_router)" router.grade_assign_per_sec ">=" 50000 "" "" "" "" router
    row "intake: 2xx answers/s at 5,000/s offered (sustained = 99%)" intake.achieved_rate ">=" 4950 "" "" "" "" latency
    row "intake: ack p99 at 5,000/s, ms" intake.ack_p99_ms "<=" 20 intake.reference_ack_p99_ms "mhd_null p99 ms" "" "" latency
    row "end-to-end p99 (POST → assignment committed) at 5,000/s, ms" e2e.assigned_committed_p99_ms "<=" 100 "" "" "" "" latency
    row "end-to-end p99 (POST → assigned_at) at 5,000/s, ms" e2e.assigned_p99_ms "" "" "" "" "" "" latency
    row "scheduler: timers fired/s (committed), up to $(num "$SCHED_N") due at once, whole stack" scheduler.burst_committed_fire_rate "" "" scheduler.burst_bullmq_fire_rate "BullMQ jobs/s" ">=" 5 latency
    row "scheduler: same, by fired_at" scheduler.burst_fire_rate "" "" scheduler.burst_bullmq_fire_rate "BullMQ jobs/s" "" "" latency
    row "scheduler: same, seconds until every effect is committed" scheduler.burst_all_effects_s "" "" "" "" "" "" latency
    row "scheduler: same, lateness p99, ms" scheduler.burst_lateness_p99_ms "" "" scheduler.burst_bullmq_lateness_p99_ms "BullMQ ms" "" "" latency
    row "scheduler: lateness p99 at a steady 5,000 timers/s, whole stack, ms" scheduler.steady_lateness_p99_ms "<=" 100 "" "" "" "" latency
    row "scheduler: same, to the commit of the firing, ms" scheduler.steady_lateness_committed_p99_ms "" "" "" "" "" "" latency
    row "scheduler alone (bench/scheduler.sh): fire rate, $(num "$SCHED_N") timers due at once" scheduler.fire_rate "" "" "bullmq.n$SCHED_N.fire_rate" "BullMQ jobs/s" ">=" 5 scheduler
    row "scheduler alone: lateness p99, $(num "$SCHED_N") due at once, ms" scheduler.lateness_p99 "" "" "bullmq.n$SCHED_N.lateness_p99" "BullMQ ms" "" "" scheduler
    row "analytics: events folded/s" analytics.fold_events_per_sec ">=" 50000 "" "" "" "" analytics
    row "analytics: funnel query over $(num "$FUNNEL_LEADS") leads, ms" analytics.funnel_ms_median "<=" 200 analytics.funnel_scan_ms_median "scan of leads ms" "" "" analytics
    local s
    for s in intake router scheduler analytics; do
        row "memory: $s idle, KiB" memory.$s.idle_kib "<=" 16384 memory.reference_mhd_null.idle_kib "mhd_null KiB" "" "" memory
    done
    for s in intake router scheduler analytics; do
        row "memory: $s peak under 5,000 leads/s, KiB" memory.$s.peak_kib "<=" 131072 memory.reference_mhd_null.peak_kib "mhd_null KiB" "" "" memory
    done
    backpressure_rows
}

# bench/backpressure.sh (intake alone, one run): its own checks decide "no 2xx lost"
# (exit 0); memory is flat when the highest RSS after the first third of the run is
# within 10% of the highest in the first third.
backpressure_rows() {
    local label="backpressure: intake offered 2× its sustainable rate (intake alone, 1 run)"
    if [ -z "${CMD[backpressure]:-}" ]; then echo "| $label | | not run | | | | | |"; return; fi
    if [ "${RC[backpressure]}" = absent ]; then echo "| $label | | not measured: bench/backpressure.sh does not exist yet | | | | | |"; return; fi
    local off sus a2 a5 st m rss first rest
    off=$(val backpressure.offered_leads_per_sec); sus=$(val backpressure.sustainable_leads_per_sec)
    a2=$(val backpressure.answered_2xx); a5=$(val backpressure.answered_5xx); st=$(val backpressure.stored_leads)
    if [ -z "$off" ] || [ -z "$a2" ]; then
        echo "| $label | | not measured (exit ${RC[backpressure]}, build/bench/backpressure.err) | | | | | |"; return
    fi
    m=$([ "${RC[backpressure]}" -eq 0 ] && echo yes || echo "**no**")
    echo "| backpressure: leads/s offered, open loop (intake alone) | 1 | $(num "$off") | — | sustainable $(num "${sus:-?}")/s | $(awk -v a="$off" -v b="${sus:-0}" 'BEGIN {if (b > 0) printf "%.2f", a / b}') | 2× | — |"
    echo "| backpressure: 2xx answered / leads stored / 5xx answered | 1 | $(num "$a2") / $(num "${st:-?}") / $(num "${a5:-?}") | — | — | — | no 2xx lost, 503s seen | $m |"
    rss=$(fig backpressure.intake_rss_kib)
    first=$(sed -n 's/.*first_third_max \([0-9]*\).*/\1/p' <<<"$rss"); rest=$(sed -n 's/.*rest_max \([0-9]*\).*/\1/p' <<<"$rss")
    if [ -n "$first" ] && [ -n "$rest" ]; then
        echo "| backpressure: intake RSS, KiB, highest in the first third / after | 1 | $(num "$first") / $(num "$rest") | — | — | $(awk -v a="$rest" -v b="$first" 'BEGIN {if (b > 0) printf "%.2f", a / b}') | flat (≤ 1.10) | $(awk -v a="$rest" -v b="$first" 'BEGIN {print (b > 0 && a <= 1.1 * b) ? "yes" : "**no**"}') |"
    fi
}

machine() {
    local bull=-
    [ -f bench/bullmq/node_modules/bullmq/package.json ] &&
        bull=$(awk -F'"' '$2 == "version" {print $4; exit}' bench/bullmq/node_modules/bullmq/package.json)
    echo "| | |"
    echo "|---|---|"
    echo "| CPUs | $(nproc) (\`nproc\`), $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo) |"
    echo "| memory | $(num "$(free -m | awk '/^Mem:/ {print $2}')") MiB, swap $(num "$(free -m | awk '/^Swap:/ {print $2}')") MiB (\`free -m\`) |"
    echo "| kernel, OS | $(uname -r), Debian $(cat /etc/debian_version 2>/dev/null) |"
    echo "| PostgreSQL's shared memory | $([ "${LEADFLOW_PG_HUGEPAGES:-1}" = 0 ] && echo "ordinary 4 KiB pages (\`LEADFLOW_PG_HUGEPAGES=0\`)" || echo "huge pages of 2 MiB, the pool made large enough at each start when root (scripts/lib.sh, \`lf_pg_hugepages\`)") |"
    echo "| software | PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}'), Redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), libmicrohttpd $(pkg-config --modversion libmicrohttpd), libpq $(pkg-config --modversion libpq), ZeroMQ $(pkg-config --modversion libzmq), wrk $(wrk -v 2>&1 | awk 'NR == 1 {print $2}'), Node.js $(node --version 2>/dev/null), BullMQ $bull, gcc $(gcc -dumpfullversion) |"
}

runs_table() {
    echo "| benchmark | command | exit | time | load avg before → after (1/5/15 min) |"
    echo "|---|---|---|---|---|"
    local b name limit cmd
    for b in "${BENCHES[@]}"; do
        IFS='|' read -r name limit cmd <<<"$b"
        [ -n "${CMD[$name]:-}" ] || continue
        if [ "${RC[$name]}" = absent ]; then echo "| $name | \`$cmd\` | not run: no such script | | |"; continue; fi
        echo "| $name | \`$cmd\` | ${RC[$name]}$([ "${RC[$name]}" = 124 ] && echo " (time limit ${limit}s)") | ${SECS[$name]} s | ${LOAD0[$name]} → ${LOAD1[$name]} |"
    done
}

block() {
    local commit; commit=$(git rev-parse --short HEAD 2>/dev/null)
    [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && commit="$commit (with uncommitted changes)"
    echo "<!-- bench:results begin: written by \`make bench\` (bench/all.sh); edit outside the markers -->"
    echo "## Results"
    echo
    if [ -n "$QUICK" ]; then
        echo "**BENCH_QUICK=1: one short run of each, a smoke test of the harness; these are not results.**"
        echo
    fi
    local env; env=$( ([ -n "$QUICK" ] && echo "BENCH_QUICK=1"; [ "$ONLY" != "  " ] && echo "BENCH_ONLY=\"${BENCH_ONLY}\"") | paste -sd' ')
    echo "\`${env:+$env }make bench\`, $(date -u -d @"$t_start" '+%Y-%m-%d %H:%M')–$(date -u -d @"$t_end" '+%H:%M') UTC ($(( (t_end - t_start + 59) / 60 )) min), commit $commit; $RUNS run(s) per figure."
    echo
    machine
    echo
    table
    echo
    runs_table
    echo
    echo "The figure lines as the benchmarks printed them (per-run details: build/bench/NAME.err):"
    echo
    echo '```'
    local b name
    for b in "${BENCHES[@]}"; do
        name=${b%%|*}
        [ -s "$OUT/$name.out" ] && [ -n "${CMD[$name]:-}" ] && cat "$OUT/$name.out"
    done
    echo '```'
    echo "<!-- bench:results end -->"
}

block >"$OUT/block.md"
if [ -f "$DOC" ] && grep -q '^<!-- bench:results begin' "$DOC" && grep -q '^<!-- bench:results end' "$DOC"; then
    awk -v f="$OUT/block.md" '
        /^<!-- bench:results begin/ { while ((getline l < f) > 0) print l; skip = 1; next }
        /^<!-- bench:results end/ { skip = 0; next }
        !skip' "$DOC" >"$DOC.tmp" && mv "$DOC.tmp" "$DOC"
else
    { [ -f "$DOC" ] && cat "$DOC" && echo; cat "$OUT/block.md"; } >"$DOC.tmp" && mv "$DOC.tmp" "$DOC"
fi
lf_say "results written to $DOC ($(( (t_end - t_start + 59) / 60 )) min)"
fail=0
for k in "${!RC[@]}"; do [ "${RC[$k]}" = absent ] || [ "${RC[$k]}" -eq 0 ] || fail=1; done
exit $fail
