#!/usr/bin/env bash
# bench/backpressure.sh [SECONDS] [RATE]: intake offered twice what PostgreSQL can take.
#
# Starts its own PostgreSQL on a free loopback port, migrates and starts intake (release
# build, build/bin), then
#   1. measures the sustainable rate: leads committed per second under a closed loop
#      (wrk, 32 connections, bench/post_lead.lua; after a 1 s warm-up, the median of
#      LF_BENCH_PROBES (3) runs of 5 s) - unless RATE is given;
#   2. offers 2x that rate for SECONDS (default 20) with build/bench/loadgen, open loop
#      (every request at its scheduled instant, whatever happened to the earlier ones),
#      on 2,048 connections - more than the commit queue holds (LF_BENCH_QUEUE, 512
#      leads for this run), so a slow database shows as a full queue;
#   3. checks from PostgreSQL that no 2xx was lost: every request is a new person (a
#      unique phone), so the leads stored during the run must equal the 2xx answers
#      (plus, at most, the requests loadgen gave up waiting for at the end); the 503s
#      (error "busy", Retry-After) stored nothing;
#   4. samples intake's resident memory (VmRSS) every second: flat means the queue is
#      bounded (LEADFLOW_COMMIT_QUEUE, LEADFLOW_COMMIT_QUEUE_BYTES).
# Settings it names for the run: LEADFLOW_RATE_PER_ADDR=0 and
# LEADFLOW_MAX_CONNECTIONS_PER_ADDR=0 (one client address sends everything),
# LEADFLOW_COMMIT_QUEUE=${LF_BENCH_QUEUE:-512} (the default, 2,048, fills only with more
# requests in flight than one loadgen keeps open here).
# Prints one line per figure; exits 1 when a 2xx lead is missing or no 503 was seen.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
lf_bench_pkgs
SECS=${1:-20}; RATE=${2:-}
make -s WERROR=1 bins benches >/dev/null
W=$(mktemp -d /tmp/leadflow-bench.XXXXXX); chmod 755 "$W"
PG=$(lf_free_port); HTTP=$(lf_free_port); Z=$(lf_free_port)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true
            lf_pg_stop "$W/pg"; rm -rf "$W"; }
trap cleanup EXIT
lf_pg_start "$W/pg" "$PG" >/dev/null
export LEADFLOW_DATABASE_URL=postgresql://leadflow@127.0.0.1:$PG/leadflow
export LEADFLOW_ADMIN_KEY=bench-key LEADFLOW_ALLOW_SHORT_ADMIN_KEY=1 LEADFLOW_INTAKE_PORT=$HTTP LEADFLOW_LOG_LEVEL=warn
export LEADFLOW_INTAKE_EVENTS_BIND=tcp://127.0.0.1:$Z
export LEADFLOW_RATE_PER_ADDR=0 LEADFLOW_MAX_CONNECTIONS_PER_ADDR=0
export LEADFLOW_COMMIT_QUEUE=${LF_BENCH_QUEUE:-512}
build/bin/leadflow-migrate >/dev/null 2>&1
build/bin/leadflow-intake & ip=$!; pids+=($ip)
sleep 1
count() { psql -qtAX "$LEADFLOW_DATABASE_URL" -c "SELECT count(*) FROM leads"; }
if [ -z "$RATE" ]; then
    # A warm-up second (connections, cached plans, libphonenumber's metadata), then the
    # median of LF_BENCH_PROBES (3) closed-loop runs: one run right after the start, on
    # an empty database, gave 6,841 and 4,515 leads/s for code that measured the other
    # way round when compared run against run (docs/benchmarks.md, "Intake, second pass").
    wrk -t2 -c32 -d1s -s bench/post_lead.lua "http://127.0.0.1:$HTTP" >/dev/null
    probes=()
    for _ in $(seq 1 "${LF_BENCH_PROBES:-3}"); do
        n0=$(count); t0=$(date +%s.%N)
        wrk -t2 -c32 -d5s -s bench/post_lead.lua "http://127.0.0.1:$HTTP" >/dev/null
        t1=$(date +%s.%N); n1=$(count)
        probes+=("$(awk -v n=$((n1 - n0)) -v a="$t0" -v b="$t1" 'BEGIN {print int(n / (b - a))}')")
    done
    sustained=$(printf '%s\n' "${probes[@]}" | sort -n | awk '{v[++k] = $1} END {print v[int((k + 1) / 2)]}')
    RATE=$((2 * sustained))
    echo "backpressure.sustainable_leads_per_sec $sustained (closed loop, 32 connections, median of ${#probes[@]} runs of 5 s: ${probes[*]})"
fi
rss() { awk '/VmRSS/ {print $2}' "/proc/$ip/status"; }
before=$(count)
build/bench/loadgen --port "$HTTP" --rate "$RATE" --duration "$SECS" --connections 2048 \
    --phone-base 70000000 --drain 10 >"$W/loadgen" &
lg=$!
samples=()
while kill -0 "$lg" 2>/dev/null; do samples+=("$(rss)"); sleep 1; done
wait "$lg" || true
sleep 2 # what intake still holds is answered or refused by now
after=$(count)
cat "$W/loadgen"
ok2xx=$(sed -n 's/^loadgen.status 2xx=\([0-9]*\) .*/\1/p' "$W/loadgen")
n5xx=$(sed -n 's/^loadgen.status .* 5xx=\([0-9]*\) .*/\1/p' "$W/loadgen")
unanswered=$(sed -n 's/^loadgen.status .* unanswered=\([0-9]*\) .*/\1/p' "$W/loadgen")
stored=$((after - before))
echo "backpressure.offered_leads_per_sec $RATE (open loop, $SECS s, 2048 connections)"
echo "backpressure.answered_2xx $ok2xx"
echo "backpressure.answered_5xx $n5xx"
echo "backpressure.stored_leads $stored (must be answered_2xx, plus at most the $unanswered requests loadgen stopped waiting for)"
n=${#samples[@]}; third=$((n / 3))
printf '%s\n' "${samples[@]}" | awk -v t="$third" '
    NR <= t || t == 0 {if (!a || $1 > a) a = $1}
    NR > t {if (!b || $1 > b) b = $1; if (!lo || $1 < lo) lo = $1}
    END {printf "backpressure.intake_rss_kib first_third_max %d, rest_max %d, rest_min %d\n", a, b, lo}'
echo "backpressure.intake_rss_kib_samples ${samples[*]}"
echo "backpressure.load_average $(cut -d' ' -f1-3 /proc/loadavg)"
rc=0
[ "$stored" -ge "$ok2xx" ] && [ "$stored" -le $((ok2xx + unanswered)) ] ||
    { echo "backpressure: FAIL $ok2xx answered 2xx but $stored stored" >&2; rc=1; }
[ "${n5xx:-0}" -gt 0 ] || { echo "backpressure: FAIL no 503 at 2x the sustainable rate" >&2; rc=1; }
exit $rc
