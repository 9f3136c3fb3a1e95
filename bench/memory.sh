#!/usr/bin/env bash
# bench/memory.sh [RUNS=3] [RATE=5000] [SECONDS=15]: resident memory of each of the four
# services, idle and under load, whole stack up (docs/benchmarks.md targets: <= 16 MiB
# idle, <= 128 MiB under load, per service).
#
# Starts its own PostgreSQL and Redis (bench/lib.sh: 200 reps, the intake key, the
# raised limits), then per run starts the four services fresh, waits 3 s and reads
# VmRSS from /proc/<pid>/status (idle), drives build/bench/loadgen at RATE leads/s for
# SECONDS with 32 connections (the router, scheduler and analytics consume what intake
# commits), waits 5 s and reads VmHWM (the peak RSS of the process's life).
# Prints one line per figure: median over RUNS, the runs and the spread, in KiB. The
# do-nothing libmicrohttpd server (bench/mhd_null.c), loaded for 3 s at the same rate,
# is the reference. LF_BENCH_SMAPS=DIR keeps each service's /proc smaps and status at the
# idle reading (DIR/NAME.RUN.smaps), to see where the memory is.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. bench/lib.sh
RUNS=${1:-3}; RATE=${2:-5000}; SECS=${3:-15}
make -s WERROR=1 bins benches >/dev/null
trap lf_bench_down EXIT
lf_bench_up
SVCS=(intake router scheduler analytics)
names=(mhd_null "${SVCS[@]}")
declare -A idle peak
for i in $(seq 1 "$RUNS"); do
    lf_bench_start "${names[@]}"
    sleep 3
    for n in "${names[@]}"; do
        lf_bench_alive "$n"
        idle[$n]+="$(lf_bench_kib "${LF_BENCH_PID[$n]}" VmRSS) "
        if [ -n "${LF_BENCH_SMAPS:-}" ]; then
            mkdir -p "$LF_BENCH_SMAPS"
            cp "/proc/${LF_BENCH_PID[$n]}/smaps" "$LF_BENCH_SMAPS/$n.$i.smaps"
            cp "/proc/${LF_BENCH_PID[$n]}/status" "$LF_BENCH_SMAPS/$n.$i.status"
        fi
    done
    load=$(lf_bench_load)
    build/bench/loadgen --port "$NULLP" --rate "$RATE" --duration 3 >/dev/null || true
    build/bench/loadgen --port "$HTTP" --rate "$RATE" --duration "$SECS" --key "$LF_BENCH_KEY" \
        --phone-base $((i * 10000000)) >"$W/lg.$i" || true
    sleep 5
    for n in "${names[@]}"; do
        lf_bench_alive "$n"
        peak[$n]+="$(lf_bench_kib "${LF_BENCH_PID[$n]}" VmHWM) "
    done
    echo "run $i (load avg before: $load, after: $(lf_bench_load)):" \
        "loadgen $(awk '/achieved_rate/ {print $2}' "$W/lg.$i")/s $(awk '/loadgen.status/ {print $2, $5}' "$W/lg.$i");" \
        "idle KiB: $(for n in "${names[@]}"; do printf '%s=%s ' "$n" "$(echo ${idle[$n]} | awk '{print $NF}')"; done)" \
        "peak KiB: $(for n in "${names[@]}"; do printf '%s=%s ' "$n" "$(echo ${peak[$n]} | awk '{print $NF}')"; done)" >&2
    lf_bench_stop "${names[@]}"
done
for n in "${names[@]}"; do
    tag=memory.$n t="target <= 16384"; [ "$n" = mhd_null ] && tag=memory.reference_mhd_null t=reference
    echo "$tag.idle_kib $(printf '%s\n' ${idle[$n]} | lf_bench_median) (runs: ${idle[$n]% }; $(printf '%s\n' ${idle[$n]} | lf_bench_spread); $t)"
done
for n in "${names[@]}"; do
    tag=memory.$n t="target <= 131072"; [ "$n" = mhd_null ] && tag=memory.reference_mhd_null t=reference
    echo "$tag.peak_kib $(printf '%s\n' ${peak[$n]} | lf_bench_median) (runs: ${peak[$n]% }; $(printf '%s\n' ${peak[$n]} | lf_bench_spread); $t)"
done
