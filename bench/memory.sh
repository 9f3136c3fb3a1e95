#!/usr/bin/env bash
# bench/memory.sh [RUNS] [RATE] [SECONDS]: resident memory of each service, idle and
# under load (docs/benchmarks.md targets: ≤ 16 MiB idle, ≤ 128 MiB under load).
#
# Starts its own PostgreSQL and Redis on free loopback ports, migrates, loads the demo
# reps with unlimited capacity, then per run starts the four services (release build,
# build/bin) fresh, waits 3 s and reads VmRSS from /proc/<pid>/status (idle), drives
# build/bench/loadgen at RATE (default 5,000 leads/s) for SECONDS (default 15) with
# 32 connections, waits 5 s and reads VmHWM (the peak RSS of the process's life).
# Prints one line per figure: median over RUNS (default 3), the runs and the spread,
# in KiB. The do-nothing libmicrohttpd server (bench/mhd_null.c) is the reference.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. bench/lib.sh
RUNS=${1:-3}; RATE=${2:-5000}; SECS=${3:-15}
make -s WERROR=1 bins benches >/dev/null
W=$(mktemp -d /tmp/leadflow-bench.XXXXXX); chmod 755 "$W"
PG=$(lf_free_port); RP=$(lf_free_port); HTTP=$(lf_free_port); NULLP=$(lf_free_port)
Z1=$(lf_free_port); Z2=$(lf_free_port); Z3=$(lf_free_port)
SVCS=(intake router scheduler analytics)
pids=()
stop_services() {
    for ((k = ${#pids[@]} - 1; k >= 0; k--)); do kill -TERM "${pids[$k]}" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    pids=()
}
cleanup() {
    stop_services
    lf_redis_stop "$W/redis" "$RP"; lf_pg_stop "$W/pg"
    [ -n "${LF_BENCH_KEEP:-}" ] && echo "kept $W" >&2 || rm -rf "$W"
}
trap cleanup EXIT
lf_pg_start "$W/pg" "$PG" >/dev/null
lf_redis_start "$W/redis" "$RP"
export LEADFLOW_DATABASE_URL=postgresql://leadflow@127.0.0.1:$PG/leadflow
lf_bench_stack_env "$HTTP" "$RP" "$Z1" "$Z2" "$Z3"
kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
spread() { sort -n | awk '{a[NR]=$1} END {printf "min %s max %s", a[1], a[NR]}'; }
declare -A idle peak
for i in $(seq 1 "$RUNS"); do
    build/bench/mhd_null "$NULLP" & pids+=($!)
    for s in "${SVCS[@]}"; do build/bin/leadflow-$s 2>>"$W/$s.log" & pids+=($!); done
    for _ in $(seq 1 100); do
        curl -fs "http://127.0.0.1:$HTTP/healthz" >/dev/null 2>&1 && break; sleep 0.1
    done
    sleep 3
    names=(mhd_null "${SVCS[@]}")
    for k in "${!names[@]}"; do
        kill -0 "${pids[$k]}" 2>/dev/null || { echo "${names[$k]} is not running" >&2; exit 1; }
        idle[${names[$k]}]+="$(kib "${pids[$k]}" VmRSS) "
    done
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    build/bench/loadgen --port "$NULLP" --rate "$RATE" --duration 3 >/dev/null || true
    build/bench/loadgen --port "$HTTP" --rate "$RATE" --duration "$SECS" --key bench-key \
        --phone-base $((i * 10000000)) >"$W/lg.$i" || true
    sleep 5
    for k in "${!names[@]}"; do
        kill -0 "${pids[$k]}" 2>/dev/null || { echo "${names[$k]} died under load" >&2; exit 1; }
        peak[${names[$k]}]+="$(kib "${pids[$k]}" VmHWM) "
    done
    echo "run $i (load avg before: $load, after: $(cut -d' ' -f1-3 /proc/loadavg)):" \
        "loadgen $(awk '/achieved_rate/ {print $2}' "$W/lg.$i")/s $(awk '/loadgen.status/ {print $2, $5}' "$W/lg.$i");" \
        "idle KiB: $(for n in "${names[@]}"; do printf '%s=%s ' "$n" "$(echo ${idle[$n]} | awk '{print $NF}')"; done)" \
        "peak KiB: $(for n in "${names[@]}"; do printf '%s=%s ' "$n" "$(echo ${peak[$n]} | awk '{print $NF}')"; done)" >&2
    stop_services
done
for n in mhd_null "${SVCS[@]}"; do
    tag=memory.$n; [ "$n" = mhd_null ] && tag=memory.reference_mhd_null
    v=$(printf '%s\n' ${idle[$n]} | median)
    echo "$tag.idle_kib $v (runs: ${idle[$n]% }; $(printf '%s\n' ${idle[$n]} | spread); target <= 16384)"
done
for n in mhd_null "${SVCS[@]}"; do
    tag=memory.$n; [ "$n" = mhd_null ] && tag=memory.reference_mhd_null
    v=$(printf '%s\n' ${peak[$n]} | median)
    echo "$tag.peak_kib $v (runs: ${peak[$n]% }; $(printf '%s\n' ${peak[$n]} | spread); target <= 131072)"
done
