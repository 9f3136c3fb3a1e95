#!/usr/bin/env bash
# bench/intake.sh [RUNS] [SECONDS]: intake→stored throughput against the do-nothing
# libmicrohttpd reference, measured in the same run (docs/benchmarks.md). Starts its own
# PostgreSQL and Redis on free loopback ports; prints one line per figure.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
lf_bench_pkgs
RUNS=${1:-3}; SECS=${2:-10}
make -s WERROR=1 bins benches >/dev/null
W=$(mktemp -d /tmp/leadflow-bench.XXXXXX); chmod 755 "$W"
PG=$(lf_free_port); HTTP=$(lf_free_port); NULLP=$(lf_free_port); Z=$(lf_free_port)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true
            lf_pg_stop "$W/pg"; rm -rf "$W"; }
trap cleanup EXIT
lf_pg_start "$W/pg" "$PG" >/dev/null
export LEADFLOW_DATABASE_URL=postgresql://leadflow@127.0.0.1:$PG/leadflow
export LEADFLOW_ADMIN_KEY=bench-key LEADFLOW_ALLOW_SHORT_ADMIN_KEY=1 LEADFLOW_INTAKE_PORT=$HTTP LEADFLOW_LOG_LEVEL=warn
export LEADFLOW_INTAKE_EVENTS_BIND=tcp://127.0.0.1:$Z
# One client address sends everything: the per-address rate limit (12,000 a minute by
# default) would answer 429 past 200 leads/s.
export LEADFLOW_RATE_PER_ADDR=0
build/bin/leadflow-migrate >/dev/null 2>&1
build/bench/mhd_null "$NULLP" & pids+=($!)
build/bin/leadflow-intake & pids+=($!)
sleep 1
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
rps() { wrk -t2 -c32 -d"${SECS}s" -s bench/post_lead.lua "$1" | awk '/Requests\/sec/ {print int($2)}'; }
ref=(); got=()
for i in $(seq 1 "$RUNS"); do
    ref+=("$(rps "http://127.0.0.1:$NULLP")")
    before=$(psql -qtAX "$LEADFLOW_DATABASE_URL" -c "SELECT count(*) FROM leads")
    t0=$(date +%s.%N)
    wrk -t2 -c32 -d"${SECS}s" -s bench/post_lead.lua "http://127.0.0.1:$HTTP" >"$W/wrk.$i" &
    [ -n "${LF_BENCH_TOP:-}" ] && { sleep 3; top -b -n 1 -w 200 | head -25 >&2; }
    wait $!
    t1=$(date +%s.%N)
    after=$(psql -qtAX "$LEADFLOW_DATABASE_URL" -c "SELECT count(*) FROM leads")
    non2xx=$(awk '/Non-2xx/ {print $NF}' "$W/wrk.$i"); non2xx=${non2xx:-0}
    got+=("$(awk -v n=$((after - before)) -v a="$t0" -v b="$t1" 'BEGIN {print int(n / (b - a))}')")
    echo "run $i: reference ${ref[-1]} req/s, intake ${got[-1]} leads committed/s, non-2xx $non2xx" >&2
done
r=$(printf '%s\n' "${ref[@]}" | median); g=$(printf '%s\n' "${got[@]}" | median)
echo "intake.reference_req_per_sec $r (runs: ${ref[*]})"
echo "intake.committed_leads_per_sec $g (runs: ${got[*]})"
awk -v g="$g" -v r="$r" 'BEGIN {printf "intake.ratio_to_reference %.3f (target >= 0.35)\n", g / r}'
for p in "${pids[@]}"; do
    [ -r /proc/$p/status ] && awk -v p=$p '/VmHWM/ {print "intake.rss_peak_kib(pid " p ") " $2}' /proc/$p/status
done
